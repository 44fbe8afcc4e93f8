package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/wsframe"
	"github.com/imhub/imhub/internal/textclip"
)

// Session is one client connection. Its reader is one goroutine; a writer
// goroutine runs only while frames wait, so an idle session costs one
// goroutine. Everything the hub sends it goes through a bounded queue: a
// client that cannot keep up is closed with 4008 rather than slowing the
// broker reader or other clients.
type Session struct {
	hub  *Hub
	tr   transport // reads, pings, closes; writes through raw
	raw  *wsConn   // the socket: batches the session's writes
	app  string    // fixed for the session's life; refresh may not change it
	user string    // likewise
	// userAt is the session's place in the hub's index of sessions by
	// user; under the hub's sessMu.
	userAt int

	lastRead atomic.Int64 // unix nanoseconds of the last frame received
	// budget is charged by the reader, and on a library connection by the
	// library's read of the close handshake on the writer's goroutine
	// when pings come then.
	budgetMu sync.Mutex
	budget   frameBudget
	// busy counts the writer and ping goroutines running; the session
	// waits for them before it ends.
	busy sync.WaitGroup

	mu    sync.Mutex
	id    *auth.Identity
	subs  map[string]*subscription
	queue [][]byte
	spare [][]byte // the writer's last batch, reused for the next queue
	// queued is the bytes of the frames queued and of the batch being
	// written, for SendQueueBytes.
	queued int
	// burst counts frames of replays and repairs in the queue: bounded by
	// history and sent at the hub's initiative, they do not count against
	// SendQueue. It is cleared when the writer empties the queue.
	burst   int
	writing bool // a writer goroutine is running
	closed  bool
	code    websocket.StatusCode
	reason  string
	expires *time.Timer
	pinger  *time.Timer
}

func newSession(h *Hub, tr transport, raw *wsConn, id *auth.Identity) *Session {
	s := &Session{
		hub:  h,
		tr:   tr,
		raw:  raw,
		app:  id.App,
		user: id.User,
		id:   id,
		subs: make(map[string]*subscription),
	}
	now := time.Now().UnixNano()
	s.lastRead.Store(now)
	s.budget = newFrameBudget(now, h.cfg.ClientBurst)
	s.expires = time.AfterFunc(time.Until(id.Expires), s.expire)
	s.pinger = time.AfterFunc(h.cfg.PingInterval, s.ping)
	return s
}

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
	if s.closed {
		return
	}
	s.closed, s.code, s.reason = true, code, reason
	// Counted when decided: a client too slow to take its close frame is
	// dropped by the write deadline and never reaches finish.
	if code != closeNormal {
		s.hub.m.closed(code)
	}
	s.startWriterLocked() // the writer performs the close
}

func (s *Session) startWriterLocked() {
	if !s.writing {
		s.writing = true
		s.busy.Add(1)
		go s.writeLoop()
	}
}

// send queues a frame for the writer; false if the session is closed or
// was closed now because its queue is full.
func (s *Session) send(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(frame)
}

func (s *Session) sendLocked(frame []byte) bool {
	switch {
	case s.closed:
		return false
	case len(s.queue) >= s.hub.cfg.SendQueue+s.burst:
		return s.tooSlowLocked("client too slow: send queue overflowed")
	case s.overBudgetLocked():
		return s.tooSlowLocked("client too slow: too many bytes wait for it")
	}
	s.queueLocked(frame)
	return true
}

// overBudgetLocked says whether more than SendQueueBytes wait for the
// session.
func (s *Session) overBudgetLocked() bool { return int64(s.queued) > s.hub.cfg.SendQueueBytes }

// maxBurst bounds the replay and repair frames a session may have queued
// besides its SendQueue: a client that keeps asking for replays and does
// not read them is too slow all the same.
func (s *Session) maxBurst() int { return max(s.hub.cfg.SendQueue, 4096) }

// sendBurstLocked queues a frame of a replay or repair. The byte budget
// is checked once, when the replay starts, by the caller: a replay is
// sent whole or not at all.
func (s *Session) sendBurstLocked(frame []byte) bool {
	switch {
	case s.closed:
		return false
	case s.burst >= s.maxBurst():
		return s.tooSlowLocked("client too slow: replays not read")
	}
	s.burst++
	s.queueLocked(frame)
	return true
}

func (s *Session) queueLocked(frame []byte) {
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	s.startWriterLocked()
}

// tooSlowLocked closes the session with 4008, dropping what waits for it.
// It returns false, for the sender to return.
func (s *Session) tooSlowLocked(reason string) bool {
	s.hub.m.dropped.Add(float64(len(s.queue) + 1))
	s.queue = nil
	s.closeLocked(CloseTooSlow, reason)
	return false
}

// deliver queues a publication of sub's channel; called by the hub's
// fan-out. It reports whether the frame was queued.
func (s *Session) deliver(sub *subscription, frame []byte, pos broker.Position) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.held() {
		s.holdLocked(sub, frame, pos)
		return false
	}
	switch sub.follows(pos) {
	case stepSent:
		return false // by a replay
	case stepGap:
		// Publications went missing on the way here (the broker
		// connection dropped), or the stream started again: hold this one
		// back and fill in from history first.
		s.holdLocked(sub, frame, pos)
		s.requestRepairLocked(sub, 0)
		return false
	}
	if !s.sendLocked(frame) {
		return false
	}
	sub.sentUpTo(pos)
	return true
}

// reply queues a control frame.
func (s *Session) reply(f serverFrame) { s.send(f.encode()) }

// fail answers a frame with an error. The channel is the client's own,
// echoed so that it can tell which subscription failed; one longer than
// any channel can be is clipped.
func (s *Session) fail(id json.RawMessage, channel, code, msg string) {
	s.reply(serverFrame{Op: "error", Code: code, Message: msg, Channel: textclip.Cut(channel, maxChannelLen), ID: id})
}

// run serves the session until the client goes or the hub closes it.
func (s *Session) run(ctx context.Context) {
	defer func() {
		s.close(closeNormal, "")
		s.busy.Wait()
		s.expires.Stop()
		s.pinger.Stop()
		s.mu.Lock()
		subs := s.subs
		s.subs = nil
		s.mu.Unlock()
		for _, sub := range subs {
			s.hub.leave(s, sub)
		}
	}()

	// The connection is subscribed to its own user channel at once.
	s.mu.Lock()
	user := s.id.User
	s.mu.Unlock()
	aside(func() {
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
	s.lastRead.Store(now)
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
	return s.handle(ctx, data, v == frameRefused)
}

// takeFrame charges a frame read at now against the client's rate.
func (s *Session) takeFrame(now int64) verdict {
	s.budgetMu.Lock()
	v := s.budget.take(now, s.hub.cfg.ClientRate, s.hub.cfg.ClientBurst)
	s.budgetMu.Unlock()
	if v != frameAllowed {
		s.hub.m.rateLimited.Inc()
	}
	return v
}

// pinged charges a WebSocket ping, which the transport reads and answers
// by itself, and says whether to answer it: a client that packs thousands of
// pings into one packet must not have the hub write a pong for each.
func (s *Session) pinged() bool {
	switch s.takeFrame(time.Now().UnixNano()) {
	case frameAllowed:
		return true
	case frameTooMany:
		s.close(CloseMalformed, "too many frames: over the rate limit")
	}
	return false
}

// handle carries out one client frame, or only answers it when it came
// too fast (refused); false ends the session.
func (s *Session) handle(ctx context.Context, data []byte, refused bool) bool {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.close(CloseMalformed, "malformed frame: not a JSON object")
		return false
	}
	if !validID(f.ID) {
		s.fail(nil, f.Channel, CodeBadRequest, "id must be a number or a string of at most "+strconv.Itoa(maxIDLen)+" bytes")
		return true
	}
	if refused {
		s.fail(f.ID, f.Channel, CodeRateLimited, "too many frames, this one was not carried out: send at most "+
			strconv.FormatFloat(s.hub.cfg.ClientRate, 'g', -1, 64)+" a second")
		return true
	}
	switch f.Op {
	case "subscribe":
		s.subscribe(ctx, f)
	case "unsubscribe":
		s.unsubscribe(f)
	case "refresh":
		s.refresh(f)
	case "ping":
		s.reply(serverFrame{Op: "pong", ID: f.ID})
	case "presence":
		s.presence(ctx, f)
	case "":
		s.fail(f.ID, f.Channel, CodeBadRequest, "op is required")
	default:
		s.fail(f.ID, f.Channel, CodeBadRequest, "unknown op "+textclip.Cut(f.Op, maxEcho))
	}
	return true
}

func (s *Session) subscribe(ctx context.Context, f clientFrame) {
	if f.Channel == "" {
		s.fail(f.ID, "", CodeBadRequest, "channel is required")
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if code, msg := authorize(s.id, f.Channel); code != "" {
		s.mu.Unlock()
		s.fail(f.ID, f.Channel, code, msg)
		return
	}
	sub := s.subs[f.Channel]
	existing := sub != nil
	if !existing {
		if len(s.subs) >= s.hub.cfg.MaxSubs {
			s.mu.Unlock()
			s.fail(f.ID, f.Channel, CodeTooManySubs, "subscription limit reached")
			return
		}
		sub = &subscription{channel: f.Channel}
		s.subs[f.Channel] = sub
	}
	sub.startJoin()
	s.mu.Unlock()

	bctx, cancel := context.WithTimeout(ctx, s.hub.cfg.BrokerTimeout)
	defer cancel()
	if !existing {
		if err := s.hub.join(bctx, s, sub); err != nil {
			s.mu.Lock()
			if s.subs != nil {
				delete(s.subs, f.Channel)
			}
			s.mu.Unlock()
			s.hub.log.Warn("subscribe failed", "app", s.app, "channel", textclip.Cut(f.Channel, maxEcho), "err", err)
			s.fail(f.ID, f.Channel, CodeUnavailable, "could not subscribe now, try again")
			return
		}
	}

	var since *broker.Position
	if f.Since != nil {
		// An offset that does not parse is one history cannot continue:
		// recovered is false, live events follow.
		p, err := broker.ParsePosition(*f.Since)
		if err != nil {
			p = broker.Position{Offset: ^uint64(0), Epoch: "?"}
		}
		since = &p
	}
	hist, err := s.hub.broker.History(bctx, s.app, f.Channel, since)
	if err != nil {
		s.hub.log.Warn("history failed", "app", s.app, "channel", textclip.Cut(f.Channel, maxEcho), "err", err)
		s.mu.Lock()
		if existing {
			// The subscription goes on as it was; only the replay asked
			// for failed. A repair wanted meanwhile is asked for now.
			if sub.joinFailed() {
				s.requestRepairLocked(sub, 0)
			} else {
				s.flushPendingLocked(sub, false)
			}
		} else if s.subs != nil {
			delete(s.subs, f.Channel)
		}
		s.mu.Unlock()
		if !existing {
			// Without a starting point the stream cannot be delivered
			// without a gap or a repeat: no subscription, try again.
			s.hub.leave(s, sub)
		}
		s.fail(f.ID, f.Channel, CodeUnavailable, "history could not be read now, subscribe again")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.subs[f.Channel] != sub {
		return
	}
	reply := serverFrame{Op: "subscribed", Channel: f.Channel, Offset: hist.Latest.String(), ID: f.ID}
	if since != nil {
		reply.Recovered = &hist.Recovered
	}
	if !s.sendLocked(reply.encode()) {
		return
	}
	for _, p := range hist.Publications {
		if !s.sendBurstLocked(s.hub.replays.frame(p)) {
			return
		}
	}
	// History was just read: a repair asked for before it is answered. One
	// asked for while it was read (the broker reconnected) runs now.
	again := sub.joined(hist.Latest)
	s.flushPendingLocked(sub, true)
	if again {
		s.requestRepairLocked(sub, 0)
	}
}

// flushPendingLocked queues what arrived while sub was joining and is newer
// than what was sent. A gap among those starts a repair, holding back the
// rest.
//
// fresh says sub.sent was just read from the broker (see takePending).
func (s *Session) flushPendingLocked(sub *subscription, fresh bool) {
	pending, overflowed := sub.takePending(fresh)
	if overflowed {
		// What was held back was dropped: read it from history.
		s.requestRepairLocked(sub, 0)
		return
	}
	for i, p := range pending {
		switch sub.follows(p.pos) {
		case stepSent:
			continue
		case stepGap:
			sub.keepPending(pending[i:])
			// Right after a repair or a replay, another gap means the
			// stream is still broken: try again a little later.
			s.requestRepairLocked(sub, repairRetry)
			return
		}
		if !s.sendLocked(p.frame) {
			return
		}
		sub.sentUpTo(p.pos)
	}
}

func (s *Session) unsubscribe(f clientFrame) {
	if f.Channel == "" {
		s.fail(f.ID, "", CodeBadRequest, "channel is required")
		return
	}
	s.mu.Lock()
	sub := s.subs[f.Channel]
	delete(s.subs, f.Channel)
	s.mu.Unlock()
	if sub != nil {
		s.hub.leave(s, sub)
	}
	s.reply(serverFrame{Op: "unsubscribed", Channel: f.Channel, ID: f.ID})
}

// refresh replaces the session's token with a later one for the same user
// and app. Channels the new token no longer grants are unsubscribed.
func (s *Session) refresh(f clientFrame) {
	id, err := s.hub.auth.Verify(f.Token)
	if err != nil {
		s.hub.m.authFailures.WithLabelValues(reasonOf(err)).Inc()
		s.fail(f.ID, "", CodeForbidden, "refresh refused: "+textclip.Cut(err.Error(), 4*maxEcho))
		return
	}
	if id.User != s.user || id.App != s.app {
		s.hub.m.authFailures.WithLabelValues("refresh_other_user").Inc()
		s.fail(f.ID, "", CodeForbidden, "refresh refused: the token is for another user or app")
		return
	}
	if s.hub.revoked(context.Background(), id) {
		s.hub.m.authFailures.WithLabelValues("revoked").Inc()
		s.fail(f.ID, "", CodeForbidden, "refresh refused: token revoked")
		return
	}
	s.mu.Lock()
	s.id = id
	s.expires.Reset(time.Until(id.Expires))
	var revoked []*subscription
	for name, sub := range s.subs {
		if code, _ := authorize(id, name); code != "" {
			revoked = append(revoked, sub)
			delete(s.subs, name)
		}
	}
	s.mu.Unlock()
	for _, sub := range revoked {
		s.hub.leave(s, sub)
		s.reply(serverFrame{Op: "unsubscribed", Channel: sub.channel})
	}
	// A revocation taken between the check above and the swap judged the
	// old token (see Hub.Disconnect): the new one is judged again now that
	// it is in place, which a revocation remembered meanwhile cannot miss.
	if s.hub.revoked(context.Background(), id) {
		s.hub.m.authFailures.WithLabelValues("revoked").Inc()
		s.close(CloseDisconnected, "token revoked by the server API")
		return
	}
	s.reply(serverFrame{Op: "refreshed", Expires: id.Expires.Unix(), ID: f.ID})
}

func reasonOf(err error) string {
	var e *auth.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "other"
}

// writeLoop writes queued frames until the queue is empty, and performs
// the close once one is requested.
func (s *Session) writeLoop() {
	defer s.busy.Done()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.finish()
			return
		}
		if len(s.queue) == 0 {
			s.writing, s.burst = false, 0
			s.idleQueueLocked()
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue = s.spare[:0]
		s.spare = nil
		s.mu.Unlock()
		n := 0
		for _, f := range batch {
			n += len(f)
		}
		if !s.write(batch) {
			return
		}
		clear(batch) // drop references to frames already written
		s.mu.Lock()
		s.queued -= n
		s.spare = batch
		s.mu.Unlock()
	}
}

// maxIdleQueue is the most frames an idle session's queue keeps room for:
// the room left by a replay of thousands is given back.
const maxIdleQueue = 16

// idleQueueLocked keeps one array for the next frames, not two: the queue
// and the spare swap only while the writer runs.
func (s *Session) idleQueueLocked() {
	if s.spare != nil {
		s.queue, s.spare = s.spare[:0], nil
	}
	if cap(s.queue) > maxIdleQueue {
		s.queue = nil
	}
}

// ping runs on a timer every PingInterval: a client silent for that long
// is pinged, and one that does not answer within WriteTimeout is dropped.
func (s *Session) ping() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.busy.Add(1)
	s.mu.Unlock()
	defer s.busy.Done()
	cfg := &s.hub.cfg
	if time.Since(time.Unix(0, s.lastRead.Load())) >= cfg.PingInterval {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.WriteTimeout)
		err := s.tr.ping(ctx)
		cancel()
		if err != nil {
			s.abort()
			return
		}
	}
	s.pinger.Reset(cfg.PingInterval)
}

// write writes frames in as few system calls as the connection's cork
// allows: one for a backlog of small frames. Each socket write is bounded
// by WriteTimeout (see wsConn).
func (s *Session) write(frames [][]byte) bool {
	s.raw.cork()
	for _, f := range frames {
		if err := s.tr.write(f); err != nil {
			_ = s.raw.uncork()
			s.abort()
			return false
		}
	}
	if err := s.raw.uncork(); err != nil {
		s.abort()
		return false
	}
	return true
}

// finish ends the session with the requested code: frames already queued
// are written first unless the client is too slow to take them.
func (s *Session) finish() {
	s.mu.Lock()
	code, reason, rest := s.code, s.reason, s.queue
	s.queue = nil
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
