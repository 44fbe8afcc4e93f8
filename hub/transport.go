package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// transport is how a session reads its client's frames, writes its own,
// pings the client and closes the connection. A connection that agreed
// permessage-deflate has the WebSocket library do it (libConn); one
// without extensions, the default, has the hub do it (plainConn), which
// keeps an idle connection small.
type transport interface {
	// serve reads the client's frames until the connection ends. Each
	// text or binary message is handed to onMessage on a short-lived
	// goroutine (see aside); once onMessage returns false it is handed no
	// more. Control frames are answered as they come. serve returns why
	// reading ended: an error wrapping errTooLarge for a message over
	// MaxFrame, already answered with 1009.
	serve(ctx context.Context, onMessage func(typ websocket.MessageType, data []byte) bool) error
	// write sends p as one text frame, through the cork of the wsConn.
	write(p []byte) error
	// cork holds what write sends in the socket's buffer until uncork,
	// so that a batch of frames goes out in few writes; uncork sends what
	// it holds and reports the first error of the batch's writes.
	cork()
	uncork() error
	// ping pings the client and waits for its pong until ctx ends or
	// the connection does.
	ping(ctx context.Context) error
	// close sends a close frame with code and reason, waits a bounded
	// time for the client's, and closes the socket.
	close(code websocket.StatusCode, reason string) error
	// closeNow closes the socket at once.
	closeNow() error
	// refuse ends a connection the hub does not admit, or one whose
	// client broke the protocol, with code and reason: it waits for the
	// client's close frame at most refuseTimeout.
	refuse(code websocket.StatusCode, reason string)
}

// errTooLarge: the client sent a message larger than MaxFrame.
var errTooLarge = errors.New("message too large")

// closeTimeout bounds the wait for the client's close frame once the
// hub's is sent: the library's 5 s.
const closeTimeout = 5 * time.Second

// libConn is the transport of a connection the WebSocket library
// accepted: one whose client offered permessage-deflate, agreed or not.
// Every frame of it is the library's to write: the session's go through
// its Write (into the cork of ws, which only gathers bytes), and nothing
// the hub does depends on how the library writes them.
type libConn struct {
	c  *websocket.Conn
	ws *wsConn
}

func (l *libConn) serve(ctx context.Context, onMessage func(websocket.MessageType, []byte) bool) error {
	for {
		typ, data, err := l.c.Read(ctx)
		if err != nil {
			// A frame over the read limit closes the connection with
			// 1009 inside Read; anything else is the client leaving.
			if websocket.CloseStatus(err) == -1 && errors.Is(err, websocket.ErrMessageTooBig) {
				return fmt.Errorf("read client frame: %w", errTooLarge)
			}
			return err
		}
		ok := true
		aside(func() { ok = onMessage(typ, data) })
		if !ok {
			return nil // the library's Close reads the client's close frame
		}
	}
}

func (l *libConn) write(p []byte) error {
	return l.c.Write(context.Background(), websocket.MessageText, p)
}

func (l *libConn) cork()         { l.ws.cork() }
func (l *libConn) uncork() error { return l.ws.uncork() }

func (l *libConn) ping(ctx context.Context) error { return l.c.Ping(ctx) }

func (l *libConn) close(code websocket.StatusCode, reason string) error {
	return l.c.Close(code, reason)
}

// closeNow drops the socket before it has the library close: the
// library's close closes the socket through ws, which would first wait for
// a write under way.
func (l *libConn) closeNow() error {
	_ = l.ws.drop()
	return l.c.CloseNow()
}

// refuse has the library close with code and reason, and cuts its wait for
// the client's close frame (5 s) short at refuseTimeout.
func (l *libConn) refuse(code websocket.StatusCode, reason string) {
	cut := time.AfterFunc(refuseTimeout, func() { _ = l.ws.drop() })
	defer cut.Stop()
	_ = l.c.Close(code, reason)
}
