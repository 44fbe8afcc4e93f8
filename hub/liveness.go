package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// liveness is what a session knows of its client's pace: when it last
// sent a frame, which the ping timer asks before pinging it, and the
// budget of frames it may still send.
//
// It is guarded by no lock of the session's: lastRead is atomic, budget
// has its own lock (budgetMu), and pinger is set once, as the session is
// made. The budget is charged by the reader, and on a library connection
// by the library's read of the close handshake on the writer's goroutine
// when pings come then.
type liveness struct {
	lastRead atomic.Int64 // unix nanoseconds of the last frame received
	budgetMu sync.Mutex
	budget   frameBudget
	pinger   *time.Timer // runs Session.ping
}

// start counts the client as heard from at now, with a full budget of
// burst frames, and has ping called after interval.
func (l *liveness) start(now int64, burst int, interval time.Duration, ping func()) {
	l.heard(now)
	l.budget = newFrameBudget(now, burst)
	l.pinger = time.AfterFunc(interval, ping)
}

// heard records a frame received at now.
func (l *liveness) heard(now int64) { l.lastRead.Store(now) }

// silentFor says whether no frame came for at least d.
func (l *liveness) silentFor(d time.Duration) bool {
	return time.Since(time.Unix(0, l.lastRead.Load())) >= d
}

// charge charges a frame read at now against the budget.
func (l *liveness) charge(now int64, rate float64, burst int) verdict {
	l.budgetMu.Lock()
	defer l.budgetMu.Unlock()
	return l.budget.take(now, rate, burst)
}

// takeFrame charges a frame read at now against the client's rate.
func (s *Session) takeFrame(now int64) verdict {
	v := s.liveness.charge(now, s.hub.cfg.ClientRate, s.hub.cfg.ClientBurst)
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
	if s.liveness.silentFor(cfg.PingInterval) {
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
