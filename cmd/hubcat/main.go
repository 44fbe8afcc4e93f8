// Command hubcat connects to an imhub WebSocket, subscribes to channels,
// and prints every frame it receives as one JSON line; lines typed on
// standard input are sent as frames. It is websocat for imhub:
//
//	hubcat -url ws://127.0.0.1:8080/ws -token "$TOKEN" -subscribe group:@TGS#2J4SZEAEL
//	hubcat -dev http://127.0.0.1:8080 -subscribe app
//
// With -dev it fetches a token from a -dev hub's /dev/token.
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
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "publish" || os.Args[1] == "presence") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := apiCommand(ctx, os.Args[1], os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	var (
		wsURL = flag.String("url", "", "WebSocket URL of the hub, ws://host:port/ws")
		token = flag.String("token", "", "JWT (or $HUB_TOKEN)")
		dev   = flag.String("dev", "", "base URL of a -dev hub to fetch a token from, such as http://127.0.0.1:8080")
		subs  = flag.String("subscribe", "", "channels to subscribe to, comma-separated")
		count = flag.Int("n", 0, "exit after this many event frames (0: run until interrupted)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *wsURL, *token, *dev, *subs, *count, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hubcat: "+err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, wsURL, token, dev, subs string, count int, in io.Reader, out io.Writer) error {
	if token == "" {
		token = os.Getenv("HUB_TOKEN")
	}
	if dev != "" {
		t, err := devToken(ctx, dev)
		if err != nil {
			return err
		}
		token = t
		if wsURL == "" {
			wsURL = "ws" + strings.TrimPrefix(strings.TrimSuffix(dev, "/"), "http") + "/ws"
		}
	}
	if wsURL == "" {
		return errors.New("-url or -dev is required")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		return fmt.Errorf("connect %s: %w", wsURL, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)

	for i, ch := range strings.Split(subs, ",") {
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
			if count > 0 && events >= count {
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
