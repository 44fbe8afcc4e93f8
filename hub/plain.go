package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/wsframe"
)

// plainConn is the transport of a connection without extensions: the hub
// reads the client's frames (package wsframe) and writes its own control
// frames, so that an idle connection holds no read buffer and its reader
// waits in a shallow stack (see wait).
type plainConn struct {
	ws *wsConn
	// rc is the socket's raw connection, to wait on (see wait): nil where
	// there is none (TLS) or the hub does not use it (waitOnSocket), and
	// reads block in Read.
	rc syscall.RawConn
	// onPing charges a client's ping against its frame rate and says
	// whether to answer it.
	onPing func() bool

	// Read state: the reader's alone (and of the aside goroutine it waits
	// for).
	prefix    []byte // bytes the client sent with its request, read first
	frames    wsframe.Reader
	onMessage func(websocket.MessageType, []byte) bool
	stopped   bool                  // onMessage returned false: only control frames matter now
	readable  func(fd uintptr) bool // readNow, made once (waitOnSocket)
	buf       *[]byte               // from readBufs (or own), while its bytes are handled
	n         int                   // bytes read into buf
	readErr   error
	handleErr error // why the bytes read end the connection
	// own is the buffer of the blocking reads of a socket with no raw
	// connection (TLS), readBufferSize long: such a read is where an idle
	// connection waits, holding its buffer meanwhile.
	own *[]byte

	// Ping and close handshake state.
	mu sync.Mutex
	// pong is closed when the client answers the hub's ping, and when the
	// connection ends (readEnded, closedNow): a ping does not wait out
	// its timeout, and the session's end with it, for a client gone.
	pong chan struct{}
	// ended is closed when the reader ends (after the client's close
	// frame, or when the socket failed or was closed) or the connection
	// is closed at once (closeNow, also where the reader never ran). Made
	// by close, the one that waits for it.
	ended     chan struct{}
	readEnded bool
	closedNow bool
}

// readBufs are the buffers the client's bytes are read into, each given
// back once its frames are handled: a connection holds one only while it
// has bytes to handle.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// pingFrame is the hub's ping: no payload, any pong answers it.
var pingFrame = wsframe.AppendControl(nil, wsframe.OpPing, nil)

func newPlainConn(ws *wsConn, raw net.Conn, prefix []byte, maxMessage int64, onPing func() bool) *plainConn {
	c := &plainConn{ws: ws, prefix: prefix, onPing: onPing}
	c.frames.MaxMessage = maxMessage
	c.waitOnSocket(raw)
	return c
}

// errClientClosed: the client sent its close frame.
var errClientClosed = errors.New("client closed the connection")

func (c *plainConn) serve(ctx context.Context, onMessage func(websocket.MessageType, []byte) bool) error {
	defer c.readDone()
	c.onMessage = onMessage
	if len(c.prefix) > 0 {
		aside(c.consumePrefix)
		if c.handleErr != nil {
			return c.handleErr
		}
	}
	for {
		if err := c.wait(); err != nil {
			return err
		}
		aside(c.consumeRead)
		if c.handleErr != nil {
			return c.handleErr
		}
	}
}

func (c *plainConn) consumePrefix() {
	p := c.prefix
	c.prefix = nil
	c.handleErr = c.consume(p)
}

// consumeRead handles the bytes wait read, and gives their buffer back.
func (c *plainConn) consumeRead() {
	c.handleErr = c.consume((*c.buf)[:c.n])
	if c.buf != c.own {
		readBufs.Put(c.buf)
	}
	c.buf = nil
}

// wait waits for the client's next bytes and reads them into a buffer
// from readBufs (c.buf, c.n). It is where an idle connection's one
// goroutine spends its life, so it keeps its stack shallow and holds
// nothing: the goroutine waits for the socket to be readable, not inside
// a read, and the buffer is taken only once there are bytes to read.
//
// A socket with no raw connection (TLS, whose connection may hold bytes
// already decrypted, so that waiting for the socket would not do), and
// every socket on a system other than Unix (see waitOnSocket), waits
// inside a read, into a small buffer of its own.
func (c *plainConn) wait() error {
	if c.rc == nil {
		if c.own == nil {
			b := make([]byte, readBufferSize)
			c.own = &b
		}
		n, err := c.ws.Conn.Read(*c.own)
		if n > 0 {
			c.buf, c.n = c.own, n
			return nil
		}
		return err
	}
	err := c.rc.Read(c.readable)
	if err == nil {
		err = c.readErr
	}
	if err == nil && c.n == 0 {
		err = io.EOF
	}
	if err != nil && c.buf != nil {
		readBufs.Put(c.buf)
		c.buf = nil
	}
	return err
}

// consume handles the frames in p, and keeps the bytes of a partial one.
func (c *plainConn) consume(p []byte) error {
	c.frames.Feed(p)
	for {
		m, ok, err := c.frames.Next()
		if err != nil {
			return c.violation(err)
		}
		if !ok {
			return nil
		}
		switch m.Op {
		case wsframe.OpText, wsframe.OpBinary:
			if c.stopped {
				continue
			}
			typ := websocket.MessageText
			if m.Op == wsframe.OpBinary {
				typ = websocket.MessageBinary
			}
			c.stopped = !c.onMessage(typ, m.Payload)
		case wsframe.OpPing:
			// A ping is a frame like any other: it is answered unless the
			// client is past its rate.
			if c.onPing() {
				if err := c.ws.writeControl(wsframe.AppendControl(nil, wsframe.OpPong, m.Payload)); err != nil && !errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("write pong: %w", err)
				}
			}
		case wsframe.OpPong:
			c.mu.Lock()
			c.wakePingLocked()
			c.mu.Unlock()
		case wsframe.OpClose:
			code, reason, err := wsframe.ParseClose(m.Payload)
			if err != nil {
				return c.violation(err)
			}
			// The client's close is answered with its own code, unless the
			// hub's close frame went first; either way the handshake is
			// complete and the socket is closed.
			_ = c.ws.writeControl(wsframe.AppendClose(nil, code, ""))
			_ = c.ws.Close()
			return fmt.Errorf("%w: %d %q", errClientClosed, code, reason)
		}
	}
}

// violation answers a frame that breaks the protocol or MaxFrame with its
// close code, as the library would, and waits a little for the client to
// close too before the socket is closed.
func (c *plainConn) violation(err error) error {
	var e *wsframe.Error
	if !errors.As(err, &e) {
		return err
	}
	c.ws.refuse(websocket.StatusCode(e.Code), e.Reason)
	_ = c.ws.Close()
	if e.Code == wsframe.CloseMessageTooBig {
		return fmt.Errorf("read client frame: %w: %w", errTooLarge, err)
	}
	return fmt.Errorf("read client frame: %w", err)
}

// readDone marks the reader ended and wakes a close waiting for it.
func (c *plainConn) readDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readEnded = true
	c.wakeCloseLocked()
	c.wakePingLocked()
}

// wakeCloseLocked wakes a close waiting for the reader to end.
func (c *plainConn) wakeCloseLocked() {
	if c.ended != nil {
		close(c.ended)
		c.ended = nil
	}
}

// wakePingLocked wakes a ping waiting for its pong.
func (c *plainConn) wakePingLocked() {
	if c.pong != nil {
		close(c.pong)
		c.pong = nil
	}
}

func (c *plainConn) write(p []byte) error { return c.ws.writeText(p) }
func (c *plainConn) cork()                { c.ws.cork() }
func (c *plainConn) uncork() error        { return c.ws.uncork() }

func (c *plainConn) ping(ctx context.Context) error {
	pong := make(chan struct{})
	c.mu.Lock()
	if c.readEnded || c.closedNow {
		c.mu.Unlock()
		return fmt.Errorf("ping: %w", net.ErrClosed)
	}
	c.pong = pong
	c.mu.Unlock()
	if err := c.ws.writeControl(pingFrame); err != nil {
		return fmt.Errorf("write ping: %w", err)
	}
	select {
	case <-pong:
	case <-ctx.Done():
		return fmt.Errorf("wait for pong: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readEnded || c.closedNow {
		return fmt.Errorf("wait for pong: %w", net.ErrClosed)
	}
	return nil
}

// close sends the hub's close frame and waits, up to closeTimeout, for
// the reader to read the client's. The reader goes on reading after the
// session has stopped taking messages for this (see serve), so the
// client's last frames are read, not left for the socket's close to
// answer with a reset that could destroy the close frame.
func (c *plainConn) close(code websocket.StatusCode, reason string) error {
	err := c.ws.writeControl(wsframe.AppendClose(nil, uint16(code), reason))
	if err == nil {
		c.mu.Lock()
		if !c.readEnded && !c.closedNow {
			c.ended = make(chan struct{})
			ended := c.ended
			c.mu.Unlock()
			t := time.NewTimer(closeTimeout)
			select {
			case <-ended:
			case <-t.C:
			}
			t.Stop()
		} else {
			c.mu.Unlock()
		}
	}
	cerr := c.ws.Close()
	switch {
	case err != nil && !errors.Is(err, net.ErrClosed):
		return fmt.Errorf("write close frame: %w", err)
	case errors.Is(cerr, net.ErrClosed):
		return nil
	}
	return cerr
}

func (c *plainConn) closeNow() error {
	c.mu.Lock()
	c.closedNow = true
	c.wakeCloseLocked()
	c.wakePingLocked()
	c.mu.Unlock()
	return c.ws.drop()
}

func (c *plainConn) refuse(code websocket.StatusCode, reason string) {
	c.ws.refuse(code, reason)
	_ = c.closeNow()
}
