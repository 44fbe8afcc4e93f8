package main

// Centrifugo as a target (-target centrifugo): the same load as the hub's,
// through Centrifugo's own interfaces. Clients speak its JSON protocol over
// a WebSocket at /connection/websocket (a connect command with an HS256
// token, then a subscribe command); the publisher posts each message to its
// HTTP API, /api/publish, with the API key. It is configured for the hub's
// guarantees: Redis engine, history of 100 publications for 10 minutes per
// channel, and recovery forced on every subscription.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imhub/imhub/internal/childproc"
	"github.com/imhub/imhub/internal/hubload"
)

// centrifugoAPIKey is the HTTP API key of the Centrifugo hubbench starts.
const centrifugoAPIKey = "hubbench-api-key"

// centrifugoConfig is Centrifugo v6's configuration with the hub's
// guarantees. Channels are named as the hub's are: group:G<n> in the
// namespace group; each connection is also subscribed by the server to
// its personal channel user:#<sub>, as the hub subscribes each to
// user:<sub>.
func centrifugoConfig(addr, redisSock, secret string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("centrifugo address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("centrifugo port %q: %w", port, err)
	}
	history := map[string]any{
		"history_size":               100,
		"history_ttl":                "10m",
		"force_recovery":             true,
		"allow_subscribe_for_client": true,
	}
	ns := func(name string) map[string]any {
		m := map[string]any{"name": name}
		for k, v := range history {
			m[k] = v
		}
		return m
	}
	cfg := map[string]any{
		"http_server": map[string]any{"address": host, "port": p},
		"log":         map[string]any{"level": "error"},
		"engine": map[string]any{"type": "redis", "redis": map[string]any{
			"address": []string{"unix://" + redisSock},
		}},
		"client": map[string]any{
			"token": map[string]any{"hmac_secret_key": secret},
			"subscribe_to_user_personal_channel": map[string]any{
				"enabled": true, "personal_channel_namespace": "user",
			},
		},
		"channel": map[string]any{
			"without_namespace": history,
			"namespaces":        []any{ns("group"), ns("user")},
		},
		"http_api":    map[string]any{"key": centrifugoAPIKey},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// startCentrifugo starts bin with centrifugoConfig on a free loopback
// port, its output in dir, and waits until its health check answers. It
// dies with hubbench.
func startCentrifugo(ctx context.Context, bin, dir, redisSock, secret string) (*exec.Cmd, string, error) {
	addr, err := hubload.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf, err := centrifugoConfig(addr, redisSock, secret)
	if err != nil {
		return nil, "", err
	}
	confPath := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, "", fmt.Errorf("write the centrifugo config: %w", err)
	}
	logPath := filepath.Join(dir, "centrifugo.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer log.Close()
	cmd := exec.Command(bin, "--config", confPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s (make bench-compare installs it): %w", bin, err)
	}
	url := "http://" + addr
	if err := hubload.WaitHealthy(ctx, url+"/health"); err != nil {
		b, _ := os.ReadFile(logPath)
		hubload.Stop(cmd)
		return nil, "", fmt.Errorf("%w\n%s", err, b)
	}
	return cmd, url, nil
}

// centrifugoToken is a connection token for user sub, HS256 with secret.
func centrifugoToken(secret, sub string) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   sub,
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour)),
	})
	s, _ := t.SignedString([]byte(secret))
	return s
}

// The commands a client sends: one JSON object per command.
func cfConnectCmd(id uint32, token string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "connect": map[string]any{"token": token, "name": "hubbench"}})
	return b
}

func cfSubscribeCmd(id uint32, channel string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "subscribe": map[string]any{"channel": channel}})
	return b
}

// cfReply is what the handshake reads of a reply: whose command it
// answers, and the error if the command failed.
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
	Push      json.RawMessage `json:"push"`
}

// cfLines calls fn with each reply of a message: the server may put
// several in one WebSocket message, one per line.
func cfLines(msg []byte, fn func(line []byte)) {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if len(line) > 0 {
			fn(line)
		}
	}
}

// cfIsPing tells the server's ping, an empty object, which the client
// answers with one of its own.
func cfIsPing(line []byte) bool { return bytes.Equal(bytes.TrimSpace(line), []byte("{}")) }

var (
	cfPubMarker    = []byte(`{"push":{"channel":"`)
	cfOffsetMarker = []byte(`"offset":`)
	cfUserChannel  = []byte(`{"push":{"channel":"user:`)
)

// cfPub reads a publication push: its send time (the "t=<ns>" in the text
// the publisher sent), its offset in its channel, and whether it is on the
// connection's personal channel. ok is false for any other reply.
func cfPub(line []byte) (sent, offset int64, user, ok bool) {
	if !bytes.HasPrefix(line, cfPubMarker) {
		return 0, 0, false, false
	}
	at := bytes.Index(line, sentMarker)
	if at < 0 {
		return 0, 0, false, false
	}
	sent = hubload.Number(line[at+len(sentMarker):])
	// The offset follows the data, which the publisher wrote without one.
	if k := bytes.LastIndex(line, cfOffsetMarker); k > at {
		offset = hubload.Number(line[k+len(cfOffsetMarker):])
	}
	return sent, offset, bytes.HasPrefix(line, cfUserChannel), true
}

// dialCentrifugo connects client i: the WebSocket, the connect command
// with its token, and a subscribe command for its group.
func dialCentrifugo(ctx context.Context, cfg Config, host string, d *net.Dialer, i int) (*hubload.WSConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := hubload.DialWSPath(dctx, d, host, "/connection/websocket", "")
	if err != nil {
		return nil, err
	}
	dl, _ := dctx.Deadline()
	_ = c.SetDeadline(dl)
	if err := cfCall(c, 1, cfConnectCmd(1, centrifugoToken(cfg.Secret, "u"+strconv.Itoa(i)))); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if cfg.Channels > 0 {
		if err := cfCall(c, 2, cfSubscribeCmd(2, "group:G"+strconv.Itoa(i%cfg.Channels))); err != nil {
			c.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// cfCall sends cmd and reads until the reply to id, answering pings on
// the way.
func cfCall(c *hubload.WSConn, id uint32, cmd []byte) error {
	if err := c.Write(hubload.OpText, cmd); err != nil {
		return err
	}
	for {
		msg, err := c.Next()
		if err != nil {
			return err
		}
		var found, ping bool
		var rerr error
		cfLines(msg, func(line []byte) {
			if cfIsPing(line) {
				ping = true
				return
			}
			var r cfReply
			if err := json.Unmarshal(line, &r); err != nil {
				rerr = fmt.Errorf("reply %q: %w", line, err)
				return
			}
			if r.ID != id {
				return
			}
			found = true
			if r.Error != nil {
				rerr = fmt.Errorf("centrifugo refused: %d %s", r.Error.Code, r.Error.Message)
			}
		})
		if ping {
			if err := c.Write(hubload.OpText, []byte("{}")); err != nil {
				return err
			}
		}
		if rerr != nil {
			return rerr
		}
		if found {
			return nil
		}
	}
}

// cfPublishBody is the HTTP API's publish request: the event the hub would
// have delivered for the same callback, as the data of a publication to
// the same channel, so that both servers send frames of about one size.
func cfPublishBody(channel, group string, seq int64, text string, now time.Time) []byte {
	ms := now.UnixMilli()
	data := map[string]any{
		"id":       fmt.Sprintf("%032x", seq),
		"type":     "group.message.sent",
		"app":      "1400000000",
		"time":     ms,
		"group_id": group,
		"from":     "bench",
		"messages": []any{map[string]any{"seq": seq, "random": seq}},
		"body":     []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}},
		"command":  "Group.CallbackAfterSendMsg",
		"received": ms,
	}
	if group == "" {
		delete(data, "group_id")
		data["type"], data["command"] = "c2c.message.sent", "C2C.CallbackAfterSendMsg"
	}
	b, _ := json.Marshal(map[string]any{"channel": channel, "data": data})
	return b
}

// cfPublishOK tells a successful answer of the HTTP API: a result, no
// error.
func cfPublishOK(body []byte) error {
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("publish answer %q: %w", body, err)
	}
	if r.Error != nil {
		return fmt.Errorf("publish refused: %d %s", r.Error.Code, r.Error.Message)
	}
	if r.Result == nil {
		return errors.New("publish answer without a result")
	}
	return nil
}

// cfChannel is the Centrifugo name of the hub's channel: the same, but a
// user's channel is the personal channel user:#<sub>.
func cfChannel(hubChannel string) string {
	if u, ok := strings.CutPrefix(hubChannel, "user:"); ok {
		return "user:#" + u
	}
	return hubChannel
}

// centrifugoVersion is the Centrifugo measured; the Makefile installs the
// same.
const centrifugoVersion = "v6.9.1"

// defaultCentrifugoBin is where `make bench-compare` installs Centrifugo:
// $XDG_CACHE_HOME/imhub/centrifugo/<version>/centrifugo, or under ~/.cache.
func defaultCentrifugoBin() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "centrifugo"
	}
	return filepath.Join(dir, "imhub", "centrifugo", centrifugoVersion, "centrifugo")
}
