package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
)

// maskedFrame encodes a client frame with the first header byte given
// (final bit, reserved bits, opcode) and a short payload.
func maskedFrame(first byte, payload string) []byte {
	f := []byte{first, 0x80 | byte(len(payload)), 9, 8, 7, 6}
	for i := range len(payload) {
		f = append(f, payload[i]^f[2+i%4])
	}
	return f
}

// untilClose reads server frames until a close frame and returns its
// payload, and the text frames before it.
func untilClose(t *testing.T, r *bufio.Reader) (closePayload []byte, texts []string) {
	t.Helper()
	for {
		first, p := rawFrame(t, r)
		switch first {
		case 0x88:
			return p, texts
		case 0x81:
			texts = append(texts, string(p))
		}
	}
}

// A frame that breaks RFC 6455 closes the connection with 1002, and one
// larger than MaxFrame with 1009; then the socket is closed.
func TestProtocolViolationsClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"unmasked", []byte{0x81, 2, '{', '}'}, 1002},
		{"reserved bit", maskedFrame(0x80|0x40|0x1, "{}"), 1002},
		{"reserved opcode", maskedFrame(0x80|0x3, "{}"), 1002},
		{"fragmented ping", maskedFrame(0x9, "p"), 1002},
		{"ping longer than 125 bytes", clientFramePing(126), 1002},
		{"continuation without a message", maskedFrame(0x80|0x0, "{}"), 1002},
		{"close code that may not be sent", maskedFrame(0x88, "\x03\xed"), 1002},
		{"close reason not UTF-8", maskedFrame(0x88, "\x03\xe8\xff"), 1007},
		{"larger than MaxFrame", clientFrame([]byte(`{"op":"ping","pad":"` + strings.Repeat("x", 2000) + `"}`)), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, hub.Config{MaxFrame: 1024})
			r := rawUpgrade(t, e, "", tc.frame)
			p, _ := untilClose(t, r)
			require.GreaterOrEqual(t, len(p), 2)
			assert.Equal(t, tc.code, binary.BigEndian.Uint16(p), "close code; reason %q", p[2:])
			_, err := io.ReadAll(r)
			require.NoError(t, err, "the hub closes the socket")
			require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
			if tc.code == 1009 {
				assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "1009")))
			}
		})
	}
}

func clientFramePing(n int) []byte {
	f := []byte{0x89, 0x80 | 126, 0, byte(n), 1, 2, 3, 4}
	return append(f, make([]byte, n)...)
}

// A message sent in fragments, with a ping between them, is read whole;
// the ping is answered with its payload.
func TestFragmentedMessage(t *testing.T) {
	e := newEnv(t, hub.Config{})
	msg := `{"op":"ping","id":"frag"}`
	in := append(maskedFrame(0x1, msg[:5]), maskedFrame(0x89, "hi")...)
	in = append(in, maskedFrame(0x0, msg[5:12])...)
	in = append(in, maskedFrame(0x80, msg[12:])...)
	r := rawUpgrade(t, e, "", in)
	pong := false
	for {
		first, p := rawFrame(t, r)
		if first == 0x8a {
			assert.Equal(t, "hi", string(p))
			pong = true
			continue
		}
		var f struct{ Op, ID string }
		require.NoError(t, json.Unmarshal(p, &f))
		if f.Op == "pong" {
			assert.Equal(t, "frag", f.ID)
			break
		}
	}
	assert.True(t, pong, "the ping between the fragments was answered")
}

// A client's close frame is answered with its code, and the session ends.
func TestClientCloseIsEchoed(t *testing.T) {
	e := newEnv(t, hub.Config{})
	r := rawUpgrade(t, e, "", maskedFrame(0x88, "\x10\x04bye"))
	p, _ := untilClose(t, r)
	assert.Equal(t, []byte{0x10, 0x04}, p, "the client's code, 4100")
	_, err := io.ReadAll(r)
	require.NoError(t, err, "the hub closes the socket")
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// A client that breaks the protocol while the hub writes it a backlog
// larger than the cork's limit reads whole frames, then the 1002 close:
// the close frame lands on a frame boundary, after the frames before it.
func TestViolationDuringBacklog(t *testing.T) {
	const events = 500 // 10 MiB: more than the sockets take at once
	e := newEnvWith(t, hub.Config{SendQueueBytes: 64 << 20}, broker.Config{DedupeWindow: time.Minute, HistorySize: events, HistoryTTL: time.Minute})
	keep := e.connect(e.token(groups("G"))) // keeps the channel's stream
	subscribe(t, keep, "group:G", 1)
	pad := strings.Repeat("x", 20000)
	var since string
	for i := range events {
		res, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint(i), Channels: []string{"group:G"},
			Data: []byte(fmt.Sprintf(`{"id":"%d","type":"group.message.sent","text":%q}`, i, pad))})
		require.NoError(t, err)
		if i == 0 {
			since = res.Positions[0].String()
		}
	}
	// A small receive buffer keeps the backlog in the hub's writer, not
	// in the sockets, while the client reads its first frames.
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = setReceiveBuffer(fd, 4096) })
		return errors.Join(err, serr)
	}}
	c, r := rawDial(t, e, small, "", clientFrame([]byte(`{"op":"subscribe","channel":"group:G","since":"`+since+`","id":2}`)))
	texts := 0
	for {
		first, p := rawFrame(t, r)
		if first == 0x88 {
			require.GreaterOrEqual(t, len(p), 2)
			assert.EqualValues(t, 1002, binary.BigEndian.Uint16(p), "close code; reason %q", p[2:])
			break
		}
		require.Equal(t, byte(0x81), first, "a text frame")
		require.True(t, json.Valid(p), "a whole frame: %.80q", p)
		texts++
		if texts == 5 { // the backlog is being written
			_, err := c.Write([]byte{0x81, 2, '{', '}'}) // unmasked: a violation
			require.NoError(t, err)
		}
	}
	assert.Less(t, texts, events, "the close came during the backlog")
	_, err := io.ReadAll(r)
	require.NoError(t, err, "the hub closes the socket")
}

// A client that leaves right after the hub's ping ends its session then,
// not once the wait for its pong (WriteTimeout) is over: the session's
// slots, subscriptions and presence are not held for a client gone.
func TestLeaveDuringPing(t *testing.T) {
	e := newEnv(t, hub.Config{PingInterval: 100 * time.Millisecond, WriteTimeout: 30 * time.Second})
	c, r := rawDial(t, e, &net.Dialer{}, "", nil)
	for {
		first, _ := rawFrame(t, r)
		if first == 0x89 {
			break
		}
	}
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the session ended long before the pong's wait (30 s) would")
}

// A connection over TLS, whose socket the hub cannot wait on (it may hold
// decrypted bytes), is read with blocking reads: frames larger than one
// read arrive whole, and the session's frames and events reach the client.
func TestPlainOverTLS(t *testing.T) {
	e := newEnv(t, hub.Config{})
	srv := httptest.NewTLSServer(e.hub)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/ws?token="+e.token(groups("G")),
		&websocket.DialOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	read := func(op, channel string) {
		t.Helper()
		for {
			_, b, err := c.Read(ctx)
			require.NoError(t, err)
			var f struct{ Op, Channel, Code string }
			require.NoError(t, json.Unmarshal(b, &f))
			require.NotEqual(t, "error", f.Op, "%s", b)
			if f.Op == op && f.Channel == channel {
				return
			}
		}
	}
	read("subscribed", "user:jared")
	// Larger than the blocking read's buffer: read in pieces.
	pad := strings.Repeat("p", 3000)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","channel":"group:G","id":2,"pad":"`+pad+`"}`)))
	read("subscribed", "group:G")
	e.publish("1400000000", "group:G")
	read("event", "group:G")
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"), "a clean close handshake")
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// A client that never answers the hub's close frame has its socket closed
// once the wait for its answer (5 s) is over, and its session ends.
func TestCloseUnanswered(t *testing.T) {
	e := newEnv(t, hub.Config{})
	r := rawUpgrade(t, e, "", maskedFrame(0x82, "{}")) // binary: closed by the hub
	p, _ := untilClose(t, r)
	require.GreaterOrEqual(t, len(p), 2)
	assert.EqualValues(t, hub.CloseMalformed, binary.BigEndian.Uint16(p))
	// The client reads on and sends nothing: no close frame.
	_, err := io.ReadAll(r)
	require.NoError(t, err, "the hub closes the socket")
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
}
