package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/wsframe"
)

// Session is one client connection. Its reader is one goroutine; a writer
// goroutine runs only while frames wait, so an idle session costs one
// goroutine. Everything the hub sends it goes through a bounded queue: a
// client that cannot keep up is closed with 4008 rather than slowing the
// broker reader or other clients.
//
// This file holds its life (run, close, finish, abort) and identity. Each
// other concern has its file: the queue and its writer (sendqueue.go), the
// client's pace and pings (liveness.go), the client's ops (ops.go), and
// the session's side of its channels' streams (delivery.go). The hub
// reaches a session through its methods only, never its lock.
type Session struct {
	hub  *Hub
	tr   transport // reads, writes (corked around a batch), pings, closes
	app  string    // fixed for the session's life; refresh may not change it
	user string    // likewise
	// userAt is the session's place in the hub's index of sessions by
	// user; under the hub's sessMu.
	userAt int

	// busy counts the writer and ping goroutines running; the session
	// waits for them before it ends.
	busy sync.WaitGroup

	// mu guards id and subs, and the send queue with the close asked for
	// (sendQueue's fields, promoted here: s.closed is the queue's).
	mu   sync.Mutex
	id   *auth.Identity
	subs map[string]*subscription
	sendQueue

	liveness // the client's pace and its pings; locks of its own
	expires  *time.Timer
	// ops holds the client's frames while an op waits for the IM
	// (opqueue.go); a lock of its own.
	ops opQueue
	// opening is the subscribes the session starts with, set once
	// before it runs and dropped once made: an SSE stream's channels.
	// Without them it starts as a WebSocket session does, connected and
	// on its user channel.
	opening []clientFrame
}

// newSession makes the session of a client admitted with id, and starts
// its expiry and ping timers: only its run (or stopTimers) stops them.
func newSession(h *Hub, tr transport, id *auth.Identity) *Session {
	s := &Session{
		hub:  h,
		tr:   tr,
		app:  id.App,
		user: id.User,
		id:   id,
		subs: make(map[string]*subscription),
	}
	s.expires = time.AfterFunc(time.Until(id.Expires), s.expire)
	s.liveness.start(time.Now().UnixNano(), h.cfg.ClientBurst, h.cfg.PingInterval, s.ping)
	return s
}

// expire closes the session with 4002 if the token it holds has expired:
// the timer may fire for a token that a refresh has just replaced.
func (s *Session) expire() {
	s.mu.Lock()
	late := time.Now().After(s.id.Expires)
	s.mu.Unlock()
	if late {
		s.close(CloseTokenExpired, "token expired")
	}
}

// close asks the writer to end the session with code. The first request
// wins; it returns at once.
func (s *Session) close(code websocket.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(code, reason)
}

func (s *Session) closeLocked(code websocket.StatusCode, reason string) {
	if !s.sendQueue.requestClose(code, reason) {
		return
	}
	// Counted when decided: a client too slow to take its close frame is
	// dropped by the write deadline and never reaches finish.
	if code != closeNormal {
		s.hub.m.closed(code)
	}
	s.startWriterLocked() // the writer performs the close
}

// identity is the token the session holds now, and whether it is still
// open.
func (s *Session) identity() (id *auth.Identity, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, !s.closed
}

// disconnect closes the session with 4010 and reports true, unless it is
// closed already or, with a non-zero before, its token was issued after
// it (see Hub.Disconnect).
func (s *Session) disconnect(before time.Time, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !(before.IsZero() || IssuedBefore(s.id, before)) {
		return false
	}
	s.closeLocked(CloseDisconnected, reason)
	return true
}

// closeIfIdentity closes the session with 4010 if it still holds id (a
// refresh meanwhile brought a token that was judged on its own).
func (s *Session) closeIfIdentity(id *auth.Identity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.id != id {
		return false
	}
	s.closeLocked(CloseDisconnected, "token revoked by the server API")
	return true
}

// stopTimers stops the session's expiry and ping timers: it is ending, or
// was refused before it ran.
func (s *Session) stopTimers() {
	s.expires.Stop()
	s.pinger.Stop()
}

// run serves the session until the client goes or the hub closes it.
func (s *Session) run(ctx context.Context) {
	defer func() {
		s.close(closeNormal, "")
		s.busy.Wait()
		s.stopTimers()
		s.mu.Lock()
		subs := s.subs
		s.subs = nil
		s.mu.Unlock()
		for _, sub := range subs {
			s.hub.leave(s, sub)
		}
	}()

	aside(func() {
		if s.opening != nil {
			for _, f := range s.opening {
				s.subscribe(ctx, f)
			}
			// Done with: not kept for the session's life.
			s.opening = nil
			return
		}
		// The connection is subscribed to its own user channel at once.
		s.mu.Lock()
		user := s.id.User
		s.mu.Unlock()
		s.reply(serverFrame{Op: "connected", User: user, App: s.app, Node: s.hub.cfg.Node, Channels: []string{"user:" + user}})
		s.subscribe(ctx, clientFrame{Op: "subscribe", Channel: "user:" + user})
	})
	s.readLoop(ctx)
}

// aside runs fn on a short-lived goroutine and waits for it. What a client
// frame asks for (JSON, token checks, broker round trips) needs a deep
// stack, and a goroutine's stack, once grown, stays that size for as long
// as the goroutine lives; the reader lives as long as the connection, and
// so it keeps to what a blocked read needs: a few KiB less per idle
// connection.
func aside(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// readLoop reads the client's messages until the connection ends. A
// message over MaxFrame was answered with 1009 by the transport; anything
// else ending the read is the client leaving.
func (s *Session) readLoop(ctx context.Context) {
	err := s.tr.serve(ctx, func(typ websocket.MessageType, data []byte) bool { return s.message(ctx, typ, data) })
	if errors.Is(err, errTooLarge) {
		s.hub.m.closed(CloseTooLarge)
	}
}

// message checks and carries out one client message; false ends the
// session.
func (s *Session) message(ctx context.Context, typ websocket.MessageType, data []byte) bool {
	now := time.Now().UnixNano()
	s.liveness.heard(now)
	if typ != websocket.MessageText {
		s.close(CloseMalformed, "frames are JSON text")
		return false
	}
	// Text frames are not checked as they are read, and encoding/json
	// would quietly mend what is broken; the hub must not echo such bytes
	// in its answers either.
	if !wsframe.ValidText(data) {
		s.close(CloseInvalidUTF8, "text frames must be valid UTF-8")
		return false
	}
	v := s.takeFrame(now)
	if v == frameTooMany {
		s.close(CloseMalformed, "too many frames: over the rate limit")
		return false
	}
	if s.ops.put(data, v == frameRefused) {
		return true // an op waits for the IM: this one follows it
	}
	return s.handle(ctx, data, v == frameRefused, false)
}

// finish ends the session with the requested code: frames already queued
// are written first unless the client is too slow to take them.
func (s *Session) finish() {
	s.mu.Lock()
	code, reason, rest := s.code, s.reason, s.sendQueue.rest()
	s.mu.Unlock()
	if code != CloseTooSlow && !s.write(rest) {
		return
	}
	_ = s.tr.close(code, reason)
}

// abort drops a connection that failed a write or a ping.
func (s *Session) abort() {
	s.close(closeNormal, "")
	_ = s.tr.closeNow()
}
