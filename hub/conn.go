package hub

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/wsframe"
)

// Buffer sizes of a WebSocket connection the library accepts (one that
// offers permessage-deflate: see acceptPlain for the others, which have no
// buffers of their own). net/http hands a hijacked
// connection its own 4 KiB reader and 4 KiB writer, a third of an idle
// connection's memory. Client frames are small (subscribe, refresh, ping),
// and a frame larger than the reader is still read whole, in more than one
// system call. The writer only has to hold a control frame (a pong, a
// close: at most 125 bytes and a header) so that it leaves in one write:
// the session's own frames are gathered by the connection's cork.
const (
	readBufferSize  = 512
	writeBufferSize = 256
)

// corkFlushSize is how much a corked connection gathers before it writes
// anyway: a replay of thousands of frames goes out in pieces of this size
// rather than being copied whole into memory first.
const corkFlushSize = 32 << 10

// corkBufs are the buffers of corked connections, returned after each
// flush so that an idle connection holds none.
var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// corkBuf is what a connection has gathered to write at once (a
// WebSocket's corked frames, a stream's messages): a buffer of corkBufs,
// held only while there is something in it. Its owner's lock guards it.
type corkBuf struct{ p *[]byte }

// grow is the buffer to append to, taken from corkBufs if none is held.
func (b *corkBuf) grow() *[]byte {
	if b.p == nil {
		b.p = corkBufs.Get().(*[]byte)
	}
	return b.p
}

// size is the bytes gathered.
func (b *corkBuf) size() int {
	if b.p == nil {
		return 0
	}
	return len(*b.p)
}

// take gives up the buffer held, nil for none: the taker writes it and
// gives it back (putCorkBuf).
func (b *corkBuf) take() *[]byte {
	p := b.p
	b.p = nil
	return p
}

// flush has write write what was gathered, if anything, and gives the
// buffer back.
func (b *corkBuf) flush(write func([]byte) error) error {
	p := b.take()
	if p == nil {
		return nil
	}
	var err error
	if len(*p) > 0 {
		err = write(*p)
	}
	putCorkBuf(p)
	return err
}

// hijacker wraps the ResponseWriter given to websocket.Accept: its Hijack
// returns buffers of this hub's sizes over a [wsConn], which the session
// keeps to batch its writes and bound them with socket deadlines.
type hijacker struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *wsConn
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, prefix, err := hijack(h.ResponseWriter)
	if err != nil {
		return nil, nil, err
	}
	c := raw
	if len(prefix) > 0 {
		c = &prefixedConn{Conn: raw, prefix: prefix}
	}
	h.conn = &wsConn{Conn: c, raw: raw, timeout: h.timeout}
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(h.conn, readBufferSize), bufio.NewWriterSize(h.conn, writeBufferSize)), nil
}

// hijack takes the socket of an upgraded request from the HTTP server,
// with the bytes the client sent after its request (its first frames),
// which are to be read before the socket's.
func hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack the connection: %w", err)
	}
	// The server's read deadline bounds the arrival of a request (its
	// ReadTimeout); a WebSocket is not one, and may be silent for as long
	// as it answers pings.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("clear the read deadline: %w", err)
	}
	var prefix []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		prefix = bytes.Clone(b)
	}
	return c, prefix, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// prefixedConn is a connection with bytes already read from it put back.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// wsConn is the socket under a session's WebSocket.
//
// Every write to the socket is bounded by a deadline WriteTimeout ahead,
// set before it (or kept, while the one set is at least half that far
// ahead: moving a deadline costs as much as a small write). So the
// WebSocket library's writes and the hub's own control frames
// (writeControl) are bounded as well as the session's, with no deadline
// to clear afterwards and no context or timer per frame.
//
// While corked, writes are gathered in memory and leave as one write when
// uncorked: the frames queued for a client with a backlog go out in one
// system call. Writes are ordered by mu, held during the socket write
// itself, so that a frame the library writes in two pieces is never split
// by a flush.
//
// A connection has one writer of frames: the library, on a connection it
// accepted (all its bytes come through Write, whatever they are), or the
// hub, on the others (writeText, writeControl, refuse). Nothing here
// reads the library's bytes.
type wsConn struct {
	net.Conn
	raw     net.Conn // the socket itself, under any bytes put back
	timeout time.Duration

	mu       sync.Mutex
	corked   bool
	buf      corkBuf   // gathered while corked
	deadline time.Time // the write deadline set on the socket
	// closeSent: the hub wrote a close frame. No frame may follow it
	// (RFC 6455, section 5.5.1).
	closeSent bool
}

// closeFrame is the first byte of the hub's close frames: final, opcode
// 0x8.
const closeFrame = 0x88

// Write implements net.Conn: the library writes its frames through it,
// gathered while corked.
func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writePartLocked(p)
}

// Close implements net.Conn: it writes what a cork has gathered, then
// closes the socket. The library closes the socket itself (right after
// its close frame, when it answers the client's, and when a read or a
// write fails), and what it wrote before, its close frame among it, may be
// waiting in the cork of the session's writer: it leaves first, so that
// nothing depends on how the library writes. A write under way is waited
// for, bounded by its deadline; drop closes at once.
func (c *wsConn) Close() error {
	c.mu.Lock()
	_ = c.flushLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// drop closes the socket at once, with what a cork holds, and ends a
// write under way.
func (c *wsConn) drop() error { return c.Conn.Close() }

// writeText writes p as one text frame: final, unmasked, uncompressed
// (RFC 6455, section 5.2). A session's events and replies need nothing
// more, and this skips the WebSocket library's locks, contexts and
// buffer per message. It is used only on connections the hub accepted
// itself (plainConn), where the hub writes every frame.
func (c *wsConn) writeText(p []byte) error {
	var h [10]byte
	hdr := appendTextHeader(h[:0], len(p))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if !c.corked {
		if _, err := c.writeLocked(hdr); err != nil {
			return err
		}
		_, err := c.writeLocked(p)
		return err
	}
	// What is gathered always starts and ends on a frame boundary, so
	// that a close frame written in between (refuse, writeControl) never
	// lands inside a frame: the buffer is flushed before a frame that
	// would pass the limit, not in its middle.
	if c.buf.size()+len(hdr)+len(p) > corkFlushSize {
		if err := c.flushLocked(); err != nil {
			return err
		}
	}
	if len(hdr)+len(p) > corkFlushSize {
		// Too large to gather: written at once, under the same lock.
		if _, err := c.writeLocked(hdr); err != nil {
			return err
		}
		_, err := c.writeLocked(p)
		return err
	}
	b := c.buf.grow()
	*b = append(append(*b, hdr...), p...)
	return nil
}

// writeControl writes a control frame built by the hub (a ping, a pong, a
// close: wsframe.AppendControl, AppendClose). A close frame is written at
// once even while corked, and no frame follows it: after it,
// net.ErrClosed.
func (c *wsConn) writeControl(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	closing := frame[0] == closeFrame
	c.closeSent = closing
	_, err := c.writePartLocked(frame)
	if err == nil && closing && c.corked {
		err = c.flushLocked()
	}
	return err
}

// appendTextHeader appends the header of a final, unmasked text frame
// with n bytes of payload.
func appendTextHeader(b []byte, n int) []byte {
	const finText = 0x80 | 0x1
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n < 1<<16:
		return append(b, finText, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
	}
}

// writePartLocked writes p to the socket, or gathers it while corked. An
// early flush may cut a frame written in pieces (the library's) at the
// buffer's end; the hub's own frames (writeText, writeControl) are never
// cut.
func (c *wsConn) writePartLocked(p []byte) (int, error) {
	if !c.corked {
		return c.writeLocked(p)
	}
	if c.buf.size()+len(p) > corkFlushSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > corkFlushSize {
			return c.writeLocked(p)
		}
	}
	b := c.buf.grow()
	*b = append(*b, p...)
	return len(p), nil
}

// cork starts gathering writes; uncork writes what was gathered.
func (c *wsConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *wsConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

// flushLocked writes what was gathered and gives the buffer back.
func (c *wsConn) flushLocked() error {
	return c.buf.flush(func(b []byte) error {
		_, err := c.writeLocked(b)
		return err
	})
}

// putCorkBuf gives a cork's buffer back, unless a frame made it grow.
func putCorkBuf(b *[]byte) {
	if cap(*b) <= 2*corkFlushSize {
		*b = (*b)[:0]
		corkBufs.Put(b)
	}
}

func (c *wsConn) writeLocked(p []byte) (int, error) {
	now := time.Now()
	if c.deadline.Sub(now) < c.timeout/2 {
		d := now.Add(c.timeout)
		if err := c.Conn.SetWriteDeadline(d); err != nil {
			return 0, err
		}
		c.deadline = d
	}
	return c.Conn.Write(p)
}

// refuseTimeout bounds the refusal of a connection the hub does not admit:
// the write of its close frame, then the wait for the client to close too.
const refuseTimeout = time.Second

// refuse writes a close frame with code and reason, shuts the sending side
// of the socket, and reads what the client still sends until it closes
// too, for refuseTimeout in all: a refused client, or one that broke the
// protocol, may never send its close frame, and is not waited for
// longer. Reading before the socket is closed is what lets the close frame
// arrive: closing a socket with unread input resets the connection, and a
// reset can destroy the close frame before the client has read it. It is
// for connections the hub writes itself (plainConn); on the library's, the
// library writes the close frame (libConn.refuse).
func (c *wsConn) refuse(code websocket.StatusCode, reason string) {
	frame := wsframe.AppendClose(nil, uint16(code), reason)
	deadline := time.Now().Add(refuseTimeout)
	c.mu.Lock()
	if c.closeSent {
		c.mu.Unlock()
		return
	}
	c.closeSent = true
	err := c.Conn.SetWriteDeadline(deadline)
	if err == nil {
		c.deadline = deadline
		// Frames a cork has gathered were accepted before the close
		// frame, and end on a frame boundary (see writeText): they go
		// first, in the same write, under the refusal's deadline.
		out, b := frame, c.buf.take()
		if b != nil {
			*b = append(*b, frame...)
			out = *b
		}
		_, err = c.Conn.Write(out) // not writeLocked: its deadline would be later
		if b != nil {
			putCorkBuf(b)
		}
	}
	c.mu.Unlock()
	if err != nil {
		return
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if c.Conn.SetReadDeadline(deadline) == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 64<<10))
	}
}
