package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// sseConn is the transport of a Server-Sent Events stream: the session's
// frames are written as SSE messages on an HTTP response that stays open.
// The client sends nothing once the request is made, so serve only waits
// for the stream to end; a ping is a comment line; a close is an error
// message naming the close code, then the end of the response.
//
// The event frames it writes are the bytes the fan-out encoded once for
// every session of the channel: an SSE message is written around them,
// never re-encoded. Each message that moves a channel's position carries
// the id of the whole cursor (sseid.go).
//
// Until the stream is open every method runs while the handler of the
// request runs. A stream on a socket taken over (takeOver) is then the
// session's alone, whose run the hub owns; one left with the server stays
// in its handler, whose run ends before it returns.
type sseConn struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	req     *http.Request
	timeout time.Duration // of each write and its flush
	// conn is the socket once the stream has taken it from the HTTP
	// server (see takeOver): the hub then writes the response itself, and
	// the handler need not stay for the stream's life. Set holding both
	// mu and connMu; end reads it holding connMu alone, so that it does
	// not wait for a write under way.
	connMu  sync.Mutex
	conn    net.Conn
	stopped bool          // end ran: a socket taken over after it is closed at once
	ended   chan struct{} // a stream left with the server: closed by end; made by serve

	// mu makes writes one at a time: the session's writer and its pinger
	// write, and a close may come from either.
	mu     sync.Mutex
	corked bool
	buf    corkBuf // the messages of a batch, until written
	cursor *streamCursor
	failed error // the first write that failed: nothing is written after it
	opened bool  // the headers and the retry are written
}

// newSSEConn makes the transport of the stream answering r on w, at the
// positions of cursor.
func newSSEConn(w http.ResponseWriter, r *http.Request, cursor *streamCursor, timeout time.Duration) *sseConn {
	return &sseConn{
		w:       w,
		rc:      http.NewResponseController(w),
		req:     r,
		timeout: timeout,
		cursor:  cursor,
	}
}

// SSE retry bounds: the reconnect delay a stream tells its client, jittered
// so that the clients of a node that went do not all come back at once.
const (
	sseRetryMin = 1000 // ms
	sseRetryMax = 3000
)

// open answers the request: the headers, then the reconnect delay. A
// write that comes first (a drain's close, a ping) opens it too.
func (c *sseConn) open() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.openLocked()
}

func (c *sseConn) openLocked() error {
	if c.opened {
		return c.failed
	}
	c.opened = true
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx and its kin would hold the stream in their buffers.
	h.Set("X-Accel-Buffering", "no")
	retry := sseRetryMin + rand.IntN(sseRetryMax-sseRetryMin+1)
	opening := []byte("retry: " + strconv.Itoa(retry) + "\n\n")
	if head, ok := c.takeOver(); ok {
		return c.writeLocked(append(head, opening...))
	}
	// The server's read deadline is for a request's body; this request
	// has none, and its stream lasts.
	_ = c.rc.SetReadDeadline(time.Time{})
	c.w.WriteHeader(http.StatusOK)
	return c.writeLocked(opening)
}

// takeOver takes the socket of an HTTP/1.x stream from the server and
// returns the head of the response, for the first write to carry. A
// stream served by net/http keeps, for its whole life, the server's
// goroutine, its read and write buffers and a read parked in the
// background; a stream the hub writes itself keeps none of these, and
// its client's going is found by waiting for the socket to be readable
// (waitGone). The body is delimited by the connection's close, which
// every HTTP/1.x client and proxy reads, and which ends a stream anyway.
// HTTP/2, and a writer that cannot be taken over, stay with the server.
func (c *sseConn) takeOver() ([]byte, bool) {
	if c.req.ProtoMajor != 1 {
		return nil, false
	}
	conn, brw, err := c.rc.Hijack()
	if err != nil {
		return nil, false
	}
	// The client sends nothing after its request: what it may have sent
	// (brw's buffered bytes) is of no use and goes with the buffers.
	_ = brw
	c.connMu.Lock()
	c.conn = conn
	stopped := c.stopped
	c.connMu.Unlock()
	if stopped {
		_ = conn.Close()
	}
	// The server's deadlines bound a request's arrival and its answer;
	// the stream lasts, and each of its writes sets its own.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		c.failed = fmt.Errorf("sse clear deadlines: %w", err)
	}
	head := []byte("HTTP/1.1 200 OK\r\n")
	var b bytes.Buffer
	_ = c.w.Header().Write(&b)
	head = append(head, b.Bytes()...)
	// The server's response and request hold its buffers (and the
	// response's own): the stream lets go of them, or they would stay
	// for its life.
	c.w, c.rc, c.req = nil, nil, nil
	return append(head, "Connection: close\r\n\r\n"...), true
}

// serve waits for the end of the stream: the client going or the hub
// ending it. A stream's client sends no frames.
//
// What it waits on is made here rather than with the stream: a stream
// taken over waits on its socket alone, and keeps neither a channel of
// its own nor its request's context for its life.
func (c *sseConn) serve(ctx context.Context, _ func(websocket.MessageType, []byte) bool) error {
	c.connMu.Lock()
	conn, stopped := c.conn, c.stopped
	if conn == nil && !stopped {
		c.ended = make(chan struct{})
	}
	ended := c.ended
	c.connMu.Unlock()
	switch {
	case conn != nil:
		return c.waitGone(conn)
	case stopped:
		return nil
	}
	select {
	case <-c.req.Context().Done():
		return fmt.Errorf("sse stream: %w", context.Canceled)
	case <-ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// end ends the stream: serve returns, and a socket taken over is closed,
// which ends its response.
func (c *sseConn) end() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	if c.ended != nil {
		close(c.ended)
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// waitGone waits until the client of a socket taken over goes, or the hub
// closes the socket (end), reading and dropping whatever the client sends.
func (c *sseConn) waitGone(conn net.Conn) error {
	err := waitClosed(conn)
	c.connMu.Lock()
	stopped := c.stopped
	c.connMu.Unlock()
	if stopped {
		return nil
	}
	return fmt.Errorf("sse stream: %w", err)
}

// write writes frame p as an SSE message, or adds it to the corked batch.
func (c *sseConn) write(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.grow()
	*b = c.appendMessage(*b, p)
	// A replay of thousands of messages goes out in pieces, as a
	// WebSocket's does, rather than gathered whole in memory first.
	if c.corked && len(*b) < corkFlushSize {
		return nil
	}
	return c.flushLocked()
}

func (c *sseConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *sseConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

// flushLocked writes the messages gathered, in one write and one flush,
// and gives the buffer back: an idle stream holds none.
func (c *sseConn) flushLocked() error {
	if err := c.buf.flush(c.writeLocked); err != nil {
		return err
	}
	return c.failed
}

// writeLocked writes b and flushes it, within the write timeout.
func (c *sseConn) writeLocked(b []byte) error {
	if !c.opened {
		if err := c.openLocked(); err != nil {
			return err
		}
	}
	if c.failed != nil {
		return c.failed
	}
	if c.conn != nil {
		return c.writeConnLocked(b)
	}
	if err := c.rc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		c.failed = fmt.Errorf("sse write deadline: %w", err)
		return c.failed
	}
	if _, err := c.w.Write(b); err != nil {
		c.failed = fmt.Errorf("sse write: %w", err)
		return c.failed
	}
	if err := c.rc.Flush(); err != nil {
		c.failed = fmt.Errorf("sse flush: %w", err)
		return c.failed
	}
	return nil
}

// writeConnLocked writes b to the socket taken over, within the write
// timeout: nothing is buffered, so there is nothing to flush.
func (c *sseConn) writeConnLocked(b []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		c.failed = fmt.Errorf("sse write deadline: %w", err)
		return c.failed
	}
	if _, err := c.conn.Write(b); err != nil {
		c.failed = fmt.Errorf("sse write: %w", err)
		return c.failed
	}
	return nil
}

// takenOver says whether the stream's socket was taken from the server.
func (c *sseConn) takenOver() bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.conn != nil
}

// readUntilClosed reads and drops what the client of conn sends, into a
// small buffer, until the connection fails or is closed: the wait of a
// socket that cannot be waited on without a read (TLS; see waitClosed).
func readUntilClosed(conn net.Conn) error {
	var b [128]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return err
		}
	}
}

// appendMessage appends the SSE message of frame p to b: named after the
// frame's op, with the cursor's id when p moves a channel's position.
func (c *sseConn) appendMessage(b, p []byte) []byte {
	name, moved := c.advance(p)
	if moved {
		b = append(b, "id: "...)
		b = c.cursor.appendID(b)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, '\n')
	return appendData(b, p)
}

// appendData appends p as the data of a message, and the blank line that
// ends it. The hub's frames are JSON on one line; should one hold a line
// break (between tokens, where JSON allows it), each line becomes a data
// line, which the client joins again with the same break.
func appendData(b, p []byte) []byte {
	for {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, p[:i]...)
		b = append(b, '\n')
		if p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n' {
			i++
		}
		p = p[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, p...)
	return append(b, "\n\n"...)
}

// eventPrefix is how every event frame begins (see eventFrame).
var eventPrefix = []byte(`{"op":"event","channel":`)

// advance moves the cursor by frame p and says the message name p goes
// under and whether a position moved. An event moves its channel to its
// offset. A subscribed frame moves it to the stream's offset unless it
// says recovered, when the replay after the position asked for follows.
func (c *sseConn) advance(p []byte) (name string, moved bool) {
	if bytes.HasPrefix(p, eventPrefix) {
		if ch, off, ok := eventHead(p); ok {
			return "event", c.cursor.set(ch, off)
		}
		return "event", false
	}
	var f struct {
		Op        string `json:"op"`
		Channel   string `json:"channel"`
		Offset    string `json:"offset"`
		Recovered *bool  `json:"recovered"`
	}
	if json.Unmarshal(p, &f) != nil || f.Op == "" {
		return "message", false
	}
	if f.Op == "subscribed" && f.Offset != "" && (f.Recovered == nil || !*f.Recovered) {
		return f.Op, c.cursor.set(f.Channel, f.Offset)
	}
	return f.Op, false
}

// eventHead reads the channel and offset of an event frame built by
// eventFrame, without decoding its event.
func eventHead(p []byte) (channel, offset string, ok bool) {
	rest := p[len(eventPrefix):]
	end := jsonStringEnd(rest)
	if end < 0 {
		return "", "", false
	}
	if err := json.Unmarshal(rest[:end], &channel); err != nil {
		return "", "", false
	}
	rest, found := bytes.CutPrefix(rest[end:], []byte(`,"offset":"`))
	if !found {
		return "", "", false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return "", "", false
	}
	return channel, string(rest[:i]), true
}

// jsonStringEnd is the length of the JSON string p begins with, quotes
// included, or -1.
func jsonStringEnd(p []byte) int {
	if len(p) == 0 || p[0] != '"' {
		return -1
	}
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// ping writes a comment line: proxies see traffic, and a client gone is
// found by the write failing. A stream's client cannot answer pings.
func (c *sseConn) ping(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked([]byte(": ping\n\n"))
}

// Error code of the error message that ends a stream: its close field
// says with which close code a WebSocket would have ended.
const CodeClosed = "closed"

// streamEndFrame is the error frame that ends a stream.
type streamEndFrame struct {
	Op      string `json:"op"`
	Code    string `json:"code"`
	Close   int    `json:"close"`
	Message string `json:"message,omitempty"`
}

// close ends the stream: an error message naming code, unless the session
// ended normally, then the end of the response.
func (c *sseConn) close(code websocket.StatusCode, reason string) error {
	defer c.end()
	if code == closeNormal {
		return nil
	}
	b, err := json.Marshal(streamEndFrame{Op: "error", Code: CodeClosed, Close: int(code), Message: reason})
	if err != nil {
		return fmt.Errorf("sse close frame: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := c.buf.grow()
	*buf = c.appendMessage(*buf, b)
	return c.flushLocked()
}

// closeNow ends the stream at once. A write under way ends by its
// deadline.
func (c *sseConn) closeNow() error {
	c.end()
	return nil
}

// refuse answers a request the hub does not admit, before any stream, with
// the HTTP status that stands for code. A refused credential is not told
// why (the debug log says).
func (c *sseConn) refuse(code websocket.StatusCode, reason string) {
	status := http.StatusServiceUnavailable
	switch code {
	case CloseInvalidToken, CloseTokenExpired:
		status, reason = http.StatusUnauthorized, "credential missing or refused"
	case CloseTooManyConns:
		c.w.Header().Set("Retry-After", "5")
	case CloseShuttingDown, CloseTryAgainLater:
		c.w.Header().Set("Retry-After", "1")
	}
	http.Error(c.w, reason, status)
}
