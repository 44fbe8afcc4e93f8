// Command hubcat connects to an imhub WebSocket, subscribes to channels,
// and prints every frame it receives as one JSON line; lines typed on
// standard input are sent as frames. It is websocat for imhub:
//
//	hubcat -url ws://127.0.0.1:8080/ws -token "$TOKEN" -subscribe group:@TGS#2J4SZEAEL
//	hubcat -dev http://127.0.0.1:8080 -subscribe app
//	hubcat -sse -dev http://127.0.0.1:8080 -subscribe group:G1,user:jared
//
// With -sse it tails GET /sse instead, printing each message's frame and
// opening the stream again from its last id when the hub ends it.
// With -dev it fetches a token from a -dev hub's /dev/token. For an app
// whose IM secret key the hub holds, it connects with an IM login instead:
//
//	hubcat -url wss://hub.example.com/ws -sdkappid 1400000000 -userid jared -usersig "$USERSIG"
//	HUB_IM_KEY=… hubcat -url ws://127.0.0.1:8080/ws -sdkappid 1400000000 -userid jared
//
// the second signing a UserSig for the user with the app's key, which is
// never printed.
//
// It also calls the server API, with an API key:
//
//	hubcat publish -key "$KEY" -channel user:jared '{"text":"your order shipped"}'
//	hubcat presence -key "$KEY" -channel group:@TGS#2J4SZEAEL
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "publish" || os.Args[1] == "presence") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := apiCommand(ctx, os.Args[1], os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	o, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hubcat: "+err.Error())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hubcat: "+err.Error())
		os.Exit(1)
	}
}

// options are hubcat's command line.
type options struct {
	url, token, dev, subs string
	count                 int
	sse                   bool // tail GET /sse instead of a WebSocket
	// An IM login instead of a token: userSig as given, or signed with
	// imKey (the app's IM secret key) for userID, living sigTTL.
	sdkAppID, userID, userSig, imKey string
	sigTTL                           time.Duration
}

// parseFlags reads hubcat's command line; credentials left off it come
// from env ($HUB_TOKEN, $HUB_USERSIG, $HUB_IM_KEY). No error, and no line
// of -h, repeats a credential: none is a default, and each is checked
// after parsing by whether it is given, never by what it is.
func parseFlags(args []string, env func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hubcat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "WebSocket URL of the hub, ws://host:port/ws (with -sse: http://host:port/sse)")
	fs.BoolVar(&o.sse, "sse", false, "tail the -subscribe channels as a Server-Sent Events stream (GET /sse) instead of a WebSocket")
	fs.StringVar(&o.token, "token", "", "JWT (or $HUB_TOKEN)")
	fs.StringVar(&o.dev, "dev", "", "base URL of a -dev hub to fetch a token from, such as http://127.0.0.1:8080")
	fs.StringVar(&o.subs, "subscribe", "", "channels to subscribe to, comma-separated")
	fs.IntVar(&o.count, "n", 0, "exit after this many event frames (0: run until interrupted)")
	fs.StringVar(&o.sdkAppID, "sdkappid", "", "with -usersig or -im-key: the SdkAppid of the IM login")
	fs.StringVar(&o.userID, "userid", "", "with -usersig or -im-key: the UserID of the IM login")
	fs.StringVar(&o.userSig, "usersig", "", "connect with this UserSig of -userid instead of a token (or $HUB_USERSIG)")
	fs.StringVar(&o.imKey, "im-key", "", "the app's IM secret key, to sign a UserSig for -userid (or $HUB_IM_KEY); never printed")
	fs.DurationVar(&o.sigTTL, "usersig-ttl", 24*time.Hour, "lifetime of the UserSig signed with -im-key")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hubcat (-url URL (-token JWT | -sdkappid APP -userid USER (-usersig SIG | -im-key KEY)) | -dev URL) [-subscribe CHANNELS]\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.userSig == "" && o.imKey == "" {
		o.userSig, o.imKey = env("HUB_USERSIG"), env("HUB_IM_KEY")
	}
	imLogin := o.userSig != "" || o.imKey != ""
	switch {
	case o.userSig != "" && o.imKey != "":
		return options{}, errors.New("-usersig and -im-key are exclusive: give a UserSig, or the key to sign one")
	case imLogin && (o.sdkAppID == "" || o.userID == ""):
		return options{}, errors.New("a UserSig (-usersig or -im-key) needs -sdkappid and -userid")
	case imLogin && (o.token != "" || o.dev != ""):
		return options{}, errors.New("-token and -dev do not go with a UserSig (-usersig or -im-key): give one credential")
	case !imLogin && (o.sdkAppID != "" || o.userID != ""):
		return options{}, errors.New("-sdkappid and -userid go with -usersig or -im-key")
	}
	if o.token == "" && !imLogin {
		o.token = env("HUB_TOKEN")
	}
	return o, nil
}

// dial is the URL and header of the connection o asks for.
func (o options) dial() (string, http.Header, error) {
	if o.userSig == "" && o.imKey == "" {
		return o.url, http.Header{"Authorization": {"Bearer " + o.token}}, nil
	}
	sig := o.userSig
	if o.imKey != "" {
		var err error
		if sig, err = auth.SignUserSig([]byte(o.imKey), o.sdkAppID, o.userID, time.Now(), o.sigTTL); err != nil {
			return "", nil, err
		}
	}
	u, err := url.Parse(o.url)
	if err != nil {
		return "", nil, fmt.Errorf("-url: %w", err)
	}
	q := u.Query()
	q.Set("sdkappid", o.sdkAppID)
	q.Set("userid", o.userID)
	u.RawQuery = q.Encode()
	return u.String(), http.Header{"Authorization": {"UserSig " + sig}}, nil
}

func run(ctx context.Context, o options, in io.Reader, out io.Writer) error {
	if o.dev != "" {
		t, err := devToken(ctx, o.dev)
		if err != nil {
			return err
		}
		o.token = t
		if o.url == "" && !o.sse {
			o.url = "ws" + strings.TrimPrefix(strings.TrimSuffix(o.dev, "/"), "http") + "/ws"
		}
	}
	if o.url == "" && o.dev == "" {
		return errors.New("-url or -dev is required")
	}
	if o.sse {
		return tailStream(ctx, o, out)
	}
	wsURL, header, err := o.dial()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return fmt.Errorf("connect %s: %w", wsURL, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)

	for i, ch := range strings.Split(o.subs, ",") {
		if ch = strings.TrimSpace(ch); ch == "" {
			continue
		}
		frame, _ := json.Marshal(map[string]any{"op": "subscribe", "channel": ch, "id": i + 1})
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			return fmt.Errorf("subscribe %s: %w", ch, err)
		}
	}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				if conn.Write(ctx, websocket.MessageText, []byte(line)) != nil {
					return
				}
			}
		}
	}()
	events := 0
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if s := websocket.CloseStatus(err); s != -1 {
				return fmt.Errorf("closed by the hub: %w", err)
			}
			return err
		}
		fmt.Fprintf(out, "%s\n", b)
		var f struct{ Op string }
		if json.Unmarshal(b, &f) == nil && f.Op == "event" {
			events++
			if o.count > 0 && events >= o.count {
				return conn.Close(websocket.StatusNormalClosure, "")
			}
		}
	}
}

func devToken(ctx context.Context, base string) (string, error) {
	u, err := url.JoinPath(base, "/dev/token")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch dev token: %w", err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Token == "" {
		return "", fmt.Errorf("fetch dev token: %s answered %s (is the hub running with -dev?)", u, resp.Status)
	}
	return body.Token, nil
}
