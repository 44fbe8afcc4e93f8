package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// acceptCorked serves one WebSocket through the hub's hijacker and hands
// the test the server side: the library's connection and the socket under
// it, counted.
func acceptCorked(t *testing.T) (client *websocket.Conn, server *websocket.Conn, raw *wsConn, counted *countingConn) {
	t.Helper()
	type accepted struct {
		c   *websocket.Conn
		raw *wsConn
	}
	got := make(chan accepted, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacker{ResponseWriter: w, timeout: 5 * time.Second}
		c, err := websocket.Accept(hj, r, nil)
		if err != nil {
			return
		}
		got <- accepted{c, hj.conn}
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	client.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = client.CloseNow() })
	a := <-got
	// Nothing but the handshake was written yet: count from here.
	counted = &countingConn{Conn: a.raw.Conn}
	a.raw.Conn = counted
	return client, a.c, a.raw, counted
}

// Frames written while the connection is corked leave in one write, whole
// and in order, though the library writes each frame larger than its small
// buffer in two pieces.
func TestCorkedFramesLeaveInOneWrite(t *testing.T) {
	client, server, raw, counted := acceptCorked(t)
	ctx := context.Background()
	var want []string
	raw.cork()
	for i := range 50 {
		msg := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", i*20))
		want = append(want, msg)
		require.NoError(t, server.Write(ctx, websocket.MessageText, []byte(msg)))
	}
	assert.Zero(t, counted.writes.Load(), "nothing reaches the socket while corked")
	require.NoError(t, raw.uncork())
	assert.EqualValues(t, 1, counted.writes.Load(), "one write for the whole backlog")
	for i, w := range want {
		_, got, err := client.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, w, string(got), "frame %d", i)
	}

	// Uncorked, each frame is written at once.
	require.NoError(t, server.Write(ctx, websocket.MessageText, []byte(`{"n":"alone"}`)))
	assert.EqualValues(t, 2, counted.writes.Load())
	_, got, err := client.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, `{"n":"alone"}`, string(got))
}

// A backlog larger than the cork's limit goes out in pieces of about that
// size, never held whole in memory.
func TestCorkFlushesPastItsLimit(t *testing.T) {
	client, server, raw, counted := acceptCorked(t)
	ctx := context.Background()
	msg := bytes.Repeat([]byte("y"), 1000)
	const n = 200 // about 200 KiB
	raw.cork()
	for range n {
		require.NoError(t, server.Write(ctx, websocket.MessageText, msg))
	}
	mid := counted.writes.Load()
	assert.GreaterOrEqual(t, mid, int64(n*1000/corkFlushSize), "flushed at the limit while corked")
	assert.Less(t, mid, int64(n/10), "but still in pieces of many frames")
	require.NoError(t, raw.uncork())
	for range n {
		_, got, err := client.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
}

// Frames written uncorked (as the library writes pongs and close frames)
// while a batch is corked and flushed reach the client whole: a frame the
// library writes in two pieces is never split by a flush.
func TestCorkWithConcurrentWrites(t *testing.T) {
	client, server, raw, _ := acceptCorked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 400
	pad := strings.Repeat("z", 3*writeBufferSize) // written in two pieces
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < n; i += 10 {
			raw.cork()
			for j := i; j < i+10; j++ {
				if err := server.Write(ctx, websocket.MessageText, []byte(fmt.Sprint("a", j))); err != nil {
					t.Error(err)
				}
			}
			if err := raw.uncork(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for j := range n {
			if err := server.Write(ctx, websocket.MessageText, []byte(fmt.Sprint("b", j, pad))); err != nil {
				t.Error(err)
			}
		}
	})
	var a, b int
	for range 2 * n {
		_, got, err := client.Read(ctx)
		require.NoError(t, err)
		switch s := string(got); {
		case s == fmt.Sprint("a", a):
			a++
		case s == fmt.Sprint("b", b, pad):
			b++
		default:
			t.Fatalf("frame out of order or torn after a%d, b%d: %.40q", a, b, s)
		}
	}
	wg.Wait()
}

// A write the peer does not take is ended by the deadline the connection
// sets, also for writes the library makes on its own (not corked).
func TestConnWriteDeadline(t *testing.T) {
	a, b := net.Pipe() // a write blocks until the other side reads
	defer a.Close()
	defer b.Close()
	c := &wsConn{Conn: a, timeout: 100 * time.Millisecond}
	_, err := c.Write([]byte("x"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "timed out: %v", err)

	c.cork()
	_, err = c.Write([]byte("y"))
	require.NoError(t, err, "gathered, not written")
	assert.ErrorIs(t, c.uncork(), os.ErrDeadlineExceeded, "the flush is bounded too")
}

// The session's own text frames are read whole by a WebSocket client at
// every length encoding (7-bit, 16-bit, 64-bit), corked or not, and
// interleave cleanly with the library's control frames.
func TestWriteText(t *testing.T) {
	client, server, raw, counted := acceptCorked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sizes := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}
	msg := func(n int) []byte { return bytes.Repeat([]byte{'a' + byte(n%26)}, n) }
	for _, n := range sizes {
		require.NoError(t, raw.writeText(msg(n)))
	}
	raw.cork()
	for _, n := range sizes {
		require.NoError(t, raw.writeText(msg(n)))
	}
	before := counted.writes.Load()
	require.NoError(t, raw.uncork())
	assert.LessOrEqual(t, counted.writes.Load()-before, int64(3), "the corked frames leave in a few writes")
	for round := range 2 {
		for _, n := range sizes {
			typ, got, err := client.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, websocket.MessageText, typ)
			require.Equal(t, msg(n), got, "round %d, %d bytes", round, n)
		}
	}

	// With pings from the client answered by the library meanwhile.
	go func() { _, _, _ = server.Read(ctx) }() // answers pings
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 500; i += 10 {
			raw.cork()
			for j := i; j < i+10; j++ {
				if err := raw.writeText([]byte(fmt.Sprint(j))); err != nil {
					t.Error(err)
				}
			}
			if err := raw.uncork(); err != nil {
				t.Error(err)
			}
		}
	})
	pings := make(chan error, 1)
	go func() {
		for range 20 {
			if err := client.Ping(ctx); err != nil {
				pings <- err
				return
			}
		}
		pings <- nil
	}()
	for i := range 500 {
		_, got, err := client.Read(ctx) // reading also takes the pongs
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(got))
	}
	wg.Wait()
	go func() { _, _, _ = client.Read(ctx) }() // takes the pongs still due
	require.NoError(t, <-pings)
}

// Once the library has written a close frame (here, closing on its own as
// it does on a protocol error), the session's frames are refused: the
// library writes them all, and writes none after its close frame.
func TestNoDataAfterTheLibrarysClose(t *testing.T) {
	client, server, raw, _ := acceptCorked(t)
	l := &libConn{c: server, ws: raw}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() { // waits for the client's answer
		defer close(closed)
		_ = server.Close(websocket.StatusPolicyViolation, "bye")
	}()
	_, _, err := client.Read(ctx)
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "the close comes first: %v", err)
	assert.Error(t, l.write([]byte("late")), "and no frame after it")
	<-closed
}

// A client's close that arrives while the session is corked is answered:
// the library closes the socket right after its answer, which waits in
// the cork, and the close of the socket writes what the cork holds first.
func TestCloseAnsweredWhileCorked(t *testing.T) {
	client, server, raw, _ := acceptCorked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _, _, _ = server.Read(ctx) }() // reads the close and answers it
	raw.cork()
	require.NoError(t, server.Write(ctx, websocket.MessageText, []byte("before")))
	assert.NoError(t, client.Close(websocket.StatusNormalClosure, "bye"), "a clean close handshake")
	_ = raw.uncork()
}

// What the library writes while corked, however it cuts its frames into
// writes, reaches the client before the socket closes: here a text frame
// with the first byte of a close frame in one write, the rest of it in
// another, as a library with another buffer could write them.
func TestLibraryBytesLeaveBeforeTheClose(t *testing.T) {
	client, _, raw, counted := acceptCorked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	frame := []byte{0x81, 3, 'o', 'n', 'e', 0x88, 5, 0x0f, 0xa1, 'b', 'y', 'e'}
	raw.cork()
	for _, piece := range [][]byte{frame[:6], frame[6:]} {
		_, err := raw.Write(piece)
		require.NoError(t, err)
	}
	assert.Zero(t, counted.writes.Load(), "gathered, whatever the bytes")
	require.NoError(t, raw.Close())
	_, got, err := client.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))
	_, _, err = client.Read(ctx)
	assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err), "then the close frame: %v", err)
}

// A close frame the hub writes to refuse a client (as it does when the
// client breaks the protocol) while the session's writer is corked
// mid-batch comes after the frames already accepted, whole, and on a frame
// boundary: the cork's early flush must not leave half a frame gathered
// for the close frame to be written into.
func TestRefuseWhileCorked(t *testing.T) {
	client, _, raw, _ := acceptCorked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := bytes.Repeat([]byte("a"), 30000)
	second := bytes.Repeat([]byte("b"), 5000) // passes corkFlushSize with the first
	raw.cork()
	require.NoError(t, raw.writeText(first))
	require.NoError(t, raw.writeText(second))
	refused := make(chan struct{})
	go func() {
		defer close(refused)
		raw.refuse(websocket.StatusProtocolError, "bad frame")
	}()
	for _, want := range [][]byte{first, second} {
		_, got, err := client.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, len(want), len(got))
		require.Equal(t, want, got)
	}
	_, _, err := client.Read(ctx)
	assert.Equal(t, websocket.StatusProtocolError, websocket.CloseStatus(err), "then the close frame: %v", err)
	<-refused
}
