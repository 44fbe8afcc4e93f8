package hub

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingConn is a socket with no raw connection to wait on, as a TLS
// connection: each Read blocks until the test hands it bytes, and reports
// the size of the buffer it was given.
type blockingConn struct {
	net.Conn
	sizes chan int
	data  chan []byte
}

func (c *blockingConn) Read(p []byte) (int, error) {
	c.sizes <- len(p)
	d, ok := <-c.data
	if !ok {
		return 0, io.EOF
	}
	return copy(p, d), nil
}

// A connection that cannot be waited on without a read (TLS) waits in a
// read into a small buffer, not one of the pooled 4 KiB ones: an idle
// connection spends its life there.
func TestBlockingReadBuffer(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	conn := &blockingConn{Conn: a, sizes: make(chan int, 16), data: make(chan []byte)}
	ws := &wsConn{Conn: conn, raw: conn, timeout: 5 * time.Second}
	c := newPlainConn(ws, conn, nil, 1<<16, func() bool { return true })
	require.Nil(t, c.rc, "no raw connection to wait on")
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.serve(context.Background(), func(_ websocket.MessageType, p []byte) bool {
			got <- string(p)
			return true
		})
	}()
	frame := func(s string) []byte {
		f := []byte{0x81, 0x80 | byte(len(s)), 1, 2, 3, 4}
		for i := range len(s) {
			f = append(f, s[i]^f[2+i%4])
		}
		return f
	}
	for _, msg := range []string{"hello", "again"} {
		assert.LessOrEqual(t, <-conn.sizes, readBufferSize, "the idle read's buffer")
		conn.data <- frame(msg)
		assert.Equal(t, msg, <-got)
	}
	assert.LessOrEqual(t, <-conn.sizes, readBufferSize)
	close(conn.data)
	require.ErrorIs(t, <-done, io.EOF)
}

// acceptPlainConn serves one WebSocket through the hub's own handshake
// and reader, and hands the test the transport and the socket under it.
// The reader's end is reported on served.
func acceptPlainConn(t *testing.T) (client *websocket.Conn, pc *plainConn, raw *wsConn, served <-chan error) {
	t.Helper()
	got := make(chan *plainConn, 1)
	done := make(chan error, 1)
	finished := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if admitHandshake(w, r, &originPolicy{}) != nil {
			return
		}
		ws, prefix, err := acceptPlain(w, r, 5*time.Second)
		if err != nil {
			return
		}
		pc := newPlainConn(ws, ws.Conn, prefix, 1<<16, func() bool { return true })
		got <- pc
		go func() {
			defer close(finished)
			done <- pc.serve(context.Background(), func(websocket.MessageType, []byte) bool { return true })
		}()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.CloseNow() })
	pc = <-got
	t.Cleanup(func() {
		_ = pc.closeNow()
		<-finished
	})
	return client, pc, pc.ws, done
}

// On a connection the hub reads itself, a client's close that arrives
// while the session is corked is answered at once, after the frames
// gathered before it: gathered, the answer would be lost with the socket
// closed right after it.
func TestPlainCloseAnsweredWhileCorked(t *testing.T) {
	client, _, raw, served := acceptPlainConn(t)
	raw.cork()
	require.NoError(t, raw.writeText([]byte("before")))
	assert.NoError(t, client.Close(websocket.StatusNormalClosure, "bye"), "a clean close handshake")
	assert.ErrorIs(t, <-served, errClientClosed)
	_ = raw.uncork()
}

// A close waiting for the client's close frame ends when the connection
// is closed at once, also where the reader never ran (a session refused
// while a Disconnect or a drain was closing it): it does not wait out
// closeTimeout with nobody to wait for.
func TestCloseNowEndsAWaitingClose(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() { _, _ = io.Copy(io.Discard, b) }() // the client reads, never answers
	ws := &wsConn{Conn: a, raw: a, timeout: 5 * time.Second}
	c := newPlainConn(ws, a, nil, 1<<16, func() bool { return true })
	closed := make(chan error, 1)
	go func() { closed <- c.close(CloseDisconnected, "token revoked") }()
	// The close frame is written before close waits; the wait starts
	// right after, under c.mu.
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.ended != nil
	}, 2*time.Second, time.Millisecond, "close waits for the client's close frame")
	start := time.Now()
	require.NoError(t, c.closeNow())
	select {
	case <-closed:
		assert.Less(t, time.Since(start), closeTimeout/2, "closeNow ended the wait")
	case <-time.After(closeTimeout - time.Second):
		t.Fatal("close waited out its timeout after closeNow")
	}
}
