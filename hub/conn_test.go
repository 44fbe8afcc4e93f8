package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
)

// clientFrame encodes a masked client text frame.
func clientFrame(payload []byte) []byte {
	f := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// readServerFrame reads one unmasked server frame's payload.
func readServerFrame(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	_, err := io.ReadFull(r, h[:])
	require.NoError(t, err)
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	require.NoError(t, err)
	p := make([]byte, n)
	_, err = io.ReadFull(r, p)
	require.NoError(t, err)
	return p
}

// rawUpgrade opens a WebSocket to e by hand, with the request headers
// extra and the bytes after sent in the same write as the request, and
// returns the reader positioned after the 101 response.
func rawUpgrade(t *testing.T, e *env, extra string, after []byte) *bufio.Reader {
	t.Helper()
	_, r := rawDial(t, e, &net.Dialer{}, extra, after)
	return r
}

// rawDial is rawUpgrade through d, with the socket to write more frames
// to.
func rawDial(t *testing.T, e *env, d *net.Dialer, extra string, after []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := d.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	req := "GET /ws?token=" + e.token(groups("G")) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	_, err = c.Write(append([]byte(req), after...))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return c, r
}

// A client that sends its first frames in the same packet as its upgrade
// request has them read, not lost in the buffer of the HTTP server that
// read the request; and an event larger than a write buffer arrives whole.
func TestFramesWithTheHandshake(t *testing.T) {
	e := newEnv(t, hub.Config{})
	first := append(clientFrame([]byte(`{"op":"ping","id":1}`)), clientFrame([]byte(`{"op":"subscribe","channel":"group:G","id":2}`))...)
	r := rawUpgrade(t, e, "", first)
	var ops []string
	for len(ops) < 4 {
		var f struct{ Op string }
		require.NoError(t, json.Unmarshal(readServerFrame(t, r), &f))
		ops = append(ops, f.Op)
	}
	assert.Equal(t, []string{"connected", "subscribed", "pong", "subscribed"}, ops)

	big := fmt.Sprintf(`{"id":"big","type":"group.message.sent","text":%q}`, strings.Repeat("x", 20000))
	_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: "big", Channels: []string{"group:G"}, Data: []byte(big)})
	require.NoError(t, err)
	var ev struct {
		Op    string
		Event json.RawMessage
	}
	require.NoError(t, json.Unmarshal(readServerFrame(t, r), &ev))
	assert.Equal(t, "event", ev.Op)
	assert.JSONEq(t, big, string(ev.Event))
}

// A client that stops reading while events flow fills the socket's
// buffers; the write then blocked is ended by the write deadline, and the
// session with it, long before any ping would notice.
func TestStuckWriteTimesOut(t *testing.T) {
	e := newEnv(t, hub.Config{PingInterval: time.Hour, WriteTimeout: 300 * time.Millisecond, SendQueue: 100000})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	// c reads nothing from now on.
	big := fmt.Sprintf(`{"id":"big","type":"group.message.sent","text":%q}`, strings.Repeat("x", 100<<10))
	for i := range 300 { // 30 MiB: more than loopback socket buffers hold
		_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint(i), Channels: []string{"group:G"}, Data: []byte(big)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 20*time.Second, 20*time.Millisecond,
		"the blocked write timed out and the session ended")
}

// rawFrame reads one server frame and returns its first header byte and
// payload.
func rawFrame(t *testing.T, r *bufio.Reader) (first byte, payload []byte) {
	t.Helper()
	first, err := r.ReadByte()
	require.NoError(t, err)
	require.NoError(t, r.UnreadByte())
	return first, readServerFrame(t, r)
}

// With -compression, event frames to a client that agreed permessage-deflate
// are compressed (RSV1 set); without it, when the client did not offer it,
// or when its offer was declined (a window the library cannot keep to),
// they are plain text frames.
func TestFramesCompressedOnlyWhenAgreed(t *testing.T) {
	const (
		offer     = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
		declined  = "permessage-deflate; server_max_window_bits=10"
		offerLine = "Sec-WebSocket-Extensions: "
	)
	for _, tc := range []struct {
		hubOn      bool
		offer      string
		compressed bool
	}{{true, offer, true}, {true, "", false}, {false, offer, false}, {true, declined, false}} {
		t.Run(fmt.Sprintf("hub=%v,offer=%q", tc.hubOn, tc.offer), func(t *testing.T) {
			e := newEnv(t, hub.Config{Compression: tc.hubOn})
			extra := ""
			if tc.offer != "" {
				extra = offerLine + tc.offer + "\r\n"
			}
			r := rawUpgrade(t, e, extra, clientFrame([]byte(`{"op":"subscribe","channel":"group:G","id":1}`)))
			for range 3 { // connected, subscribed user and group: short, never compressed
				rawFrame(t, r)
			}
			big := fmt.Sprintf(`{"id":"big","type":"group.message.sent","text":%q}`, strings.Repeat("compressible ", 200))
			_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: "big", Channels: []string{"group:G"}, Data: []byte(big)})
			require.NoError(t, err)
			first, payload := rawFrame(t, r)
			assert.Equal(t, byte(0x1), first&0x0f, "a text frame")
			assert.Equal(t, tc.compressed, first&0x40 != 0, "RSV1 (compressed)")
			if !tc.compressed {
				assert.Contains(t, string(payload), `"id":"big"`)
			} else {
				assert.Less(t, len(payload), len(big)/2, "compressed")
			}
		})
	}
}

// A client the library serves (one that offers compression to a hub with
// it on) and that is refused is refused through the library: its close
// frame, with the code, comes whole, and the socket is closed though the
// client never answers it.
func TestRefusalOfALibraryConnection(t *testing.T) {
	e := newEnv(t, hub.Config{Compression: true})
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("GET /ws?token=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate", "the library serves it")
	first, p := rawFrame(t, r)
	require.Equal(t, byte(0x88), first, "a close frame")
	require.GreaterOrEqual(t, len(p), 2)
	assert.EqualValues(t, hub.CloseInvalidToken, binary.BigEndian.Uint16(p))
	_, err = io.ReadAll(r)
	require.NoError(t, err, "the hub closes the socket without the client's answer")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4001")))
	assert.Zero(t, e.hub.Sessions())
}
