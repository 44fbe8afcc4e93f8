// Package wstest is a WebSocket client for tests of the hub: it dials,
// sends frames, and reads them back decoded, with timeouts that fail the
// test instead of hanging it.
package wstest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Frame is any frame the hub sends, decoded.
type Frame struct {
	Op        string          `json:"op"`
	User      string          `json:"user"`
	App       string          `json:"app"`
	Node      string          `json:"node"`
	Channels  []string        `json:"channels"`
	Channel   string          `json:"channel"`
	Offset    string          `json:"offset"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Expires   int64           `json:"expires"`
	Reason    string          `json:"reason"`
	ID        json.RawMessage `json:"id"`
	Event     json.RawMessage `json:"event"`
	Users     map[string]int  `json:"users"`
	Raw       string          `json:"-"`
}

// Conn is one client connection.
type Conn struct {
	t    testing.TB
	C    *websocket.Conn
	Resp *http.Response
}

// Timeout is how long Read waits for a frame.
var Timeout = 10 * time.Second

// Dial connects to the hub's ws URL (ws://host/ws) with token given as a
// query parameter; it fails the test if the handshake fails.
func Dial(t testing.TB, wsURL, token string) *Conn {
	t.Helper()
	c, err := TryDial(t, wsURL, token, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	return c
}

// TryDial connects like Dial with optional headers and returns the error.
func TryDial(t testing.TB, wsURL, token string, header http.Header) (*Conn, error) {
	t.Helper()
	if token != "" {
		u, err := url.Parse(wsURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("token", token)
		u.RawQuery = q.Encode()
		wsURL = u.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(16 << 20)
	conn := &Conn{t: t, C: c, Resp: resp}
	t.Cleanup(func() { _ = c.CloseNow() })
	return conn, nil
}

// Send writes v as a JSON text frame.
func (c *Conn) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(websocket.MessageText, b)
}

// SendRaw writes one frame as it is.
func (c *Conn) SendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.C.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// Read reads the next frame.
func (c *Conn) Read() Frame {
	c.t.Helper()
	f, err := c.TryRead(Timeout)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// TryRead reads the next frame or returns the error, such as the close.
func (c *Conn) TryRead(timeout time.Duration) (Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.C.Read(ctx)
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, err
	}
	f.Raw = string(b)
	return f, nil
}

// ReadOp reads the next frame and fails the test unless its op is op.
func (c *Conn) ReadOp(op string) Frame {
	c.t.Helper()
	f := c.Read()
	if f.Op != op {
		c.t.Fatalf("want a %q frame, got %s", op, f.Raw)
	}
	return f
}

// ExpectClose reads until the connection closes and fails the test unless
// it closed with code. Frames before the close are returned.
func (c *Conn) ExpectClose(code websocket.StatusCode) []Frame {
	c.t.Helper()
	var frames []Frame
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		f, err := c.TryRead(time.Until(deadline))
		if err == nil {
			frames = append(frames, f)
			continue
		}
		if got := websocket.CloseStatus(err); got != code {
			c.t.Fatalf("want close %d, got %v (status %d) after %d frames", code, err, got, len(frames))
		}
		return frames
	}
	c.t.Fatalf("connection not closed within %v", Timeout)
	return nil
}
