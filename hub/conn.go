package hub

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"time"
)

// Buffer sizes of a WebSocket connection. net/http hands a hijacked
// connection its own 4 KiB reader and 4 KiB writer, a third of an idle
// connection's memory. Client frames are small (subscribe, refresh, ping),
// and a frame larger than a buffer is still read or written whole, in more
// than one system call.
const (
	readBufferSize = 512
	// writeBufferSize holds a typical event frame with its header in one
	// write; a larger frame takes two.
	writeBufferSize = 2048
)

// hijacker wraps the ResponseWriter given to websocket.Accept: its Hijack
// returns buffers of this hub's sizes and keeps the connection, so that
// the session can set write deadlines on it directly instead of through a
// context and a timer per frame.
type hijacker struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent more after its request (its first frames):
		// those bytes are read before the connection's.
		b, _ := brw.Reader.Peek(n)
		c = &prefixedConn{Conn: c, prefix: io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)}
	}
	h.conn = c
	return c, bufio.NewReadWriter(bufio.NewReaderSize(c, readBufferSize), bufio.NewWriterSize(c, writeBufferSize)), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// prefixedConn is a connection with bytes already read from it put back.
type prefixedConn struct {
	net.Conn
	prefix io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.prefix.Read(p) }

// deadline sets or clears (zero t) the write deadline of a hijacked
// connection.
func setWriteDeadline(c net.Conn, t time.Time) error {
	if c == nil {
		return nil
	}
	return c.SetWriteDeadline(t)
}
