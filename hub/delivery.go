package hub

import (
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/textclip"
)

// A session's side of its channels' streams: each publication sent once
// and in order, those that arrive while a subscription joins or is
// repaired held back, and what history gives a repair (repair.go) sent
// before them.

// deliver queues a publication of sub's channel at pos, whose
// predecessor's Tag is link; called by the hub's fan-out. rm, when set,
// is what the publication's event takes out of the group (an exit, a
// disbanding): a subscription it names ends right after the event is
// queued, in the same step, so that nothing published after it reaches
// the session. It reports whether the frame was queued.
func (s *Session) deliver(sub *subscription, frame []byte, pos broker.Position, link string, rm *callback.MemberChange) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.ended {
		return false // left; the hub drops it from the channel shortly
	}
	removes := s.removalLocked(rm)
	if sub.held() {
		s.holdLocked(sub, frame, pos, link, removes)
		return false
	}
	switch sub.follows(pos, link) {
	case stepSent:
		return false // the same event again
	case stepGap, stepEarlier:
		// Publications went missing on the way here (the broker
		// connection dropped), the stream started again, or Redis hands
		// out offsets again that were sent with other events (a failover
		// lost writes): hold this one back, and let history say what the
		// client lacks, or that its stream is not the one it had.
		s.holdLocked(sub, frame, pos, link, removes)
		s.requestRepairLocked(sub, 0)
		return false
	}
	// Not sendAtLocked: inlined here, on the fan-out's path, it would
	// copy pos once more.
	if !s.sendLocked(frame) {
		return false
	}
	sub.sentUpTo(pos)
	if removes != "" {
		s.endLocked(sub, removes)
	}
	return true
}

// removalLocked is the reason the change rm ends this session's
// subscription of its group, if it does: a disbanding ends every one, an
// exit those of the users it names, but an admin's, which the IM's
// membership does not govern.
func (s *Session) removalLocked(rm *callback.MemberChange) string {
	switch {
	case rm == nil:
		return ""
	case rm.Kind == callback.ChangeDestroyed:
		return ReasonDestroyed
	case rm.Kind == callback.ChangeLeft && !s.id.Admin && rm.Names(s.user):
		return ReasonRemoved
	}
	return ""
}

// endLocked ends sub, whose removal event was just queued: the client is
// told it was unsubscribed and why, and the session leaves the channel
// (on a goroutine of its own, which busy counts: the caller may hold the
// channel's shard). A closed session leaves all its channels by itself.
func (s *Session) endLocked(sub *subscription, reason string) {
	if s.closed {
		return
	}
	sub.end()
	if s.subs[sub.channel] == sub {
		delete(s.subs, sub.channel)
	}
	s.hub.m.removals.WithLabelValues(reason).Inc()
	// Left whatever the send below does: closing the session as too
	// slow for it, it leaves the channels it still has, no longer this.
	s.busy.Add(1)
	go func() {
		defer s.busy.Done()
		s.hub.leave(s, sub)
	}()
	s.sendLocked(unsubscribedFrame(sub.channel, reason))
}

// sendAtLocked queues frame, which is at pos of sub's stream, and records
// pos as the last position sent.
func (s *Session) sendAtLocked(sub *subscription, frame []byte, pos broker.Position) bool {
	if !s.sendLocked(frame) {
		return false
	}
	sub.sentUpTo(pos)
	return true
}

// replayLocked queues, as one burst, the publications of a history read
// (pubs, in order) that sub is due (see subscription.due), each recorded
// as sent. One whose event ends the subscription (a removal) is the last:
// the subscription ends right after it. It returns how many it queued,
// and false if the session was closed on the way, too slow for them, or
// the subscription ended. The byte budget is the caller's to check, once,
// before: a replay is sent whole or not at all.
func (s *Session) replayLocked(sub *subscription, pubs []broker.Publication) (queued int, ok bool) {
	for _, p := range pubs {
		if !sub.due(p.Position, p.Prev) {
			continue
		}
		if !s.sendBurstLocked(s.hub.replays.frame(p)) {
			return queued, false
		}
		sub.sentUpTo(p.Position)
		queued++
		if c, ok := s.hub.memberChange(chanKey{p.App, p.Channel}, p.Data); ok {
			if removes := s.removalLocked(&c); removes != "" {
				s.endLocked(sub, removes)
				return queued, false
			}
		}
	}
	return queued, true
}

// lostLocked tells the client that sub's stream goes on from at and that
// what came before it since the last event sent is lost (recovered
// false), and records at as sent.
func (s *Session) lostLocked(sub *subscription, at broker.Position) bool {
	lost := false
	return s.sendAtLocked(sub, subscribedFrame(sub.channel, at, &lost, nil).encode(), at)
}

// holdLocked keeps a publication back while sub joins or is repaired. Past
// SendQueue they are dropped and history, read again, stands in for them:
// the hub's own delay must not cost the client its connection. removes
// says it ends the subscription once sent: nothing after it is kept.
func (s *Session) holdLocked(sub *subscription, frame []byte, pos broker.Position, link string, removes string) {
	sub.hold(frame, pos, link, s.hub.cfg.SendQueue, removes)
}

// requestRepairLocked marks sub for repair and queues its channel, at once
// or after delay. Its live publications are held back meanwhile. A delayed
// request is marked only when its time comes, so that repairs of the
// channel run for other subscriptions meanwhile do not take it early.
func (s *Session) requestRepairLocked(sub *subscription, delay time.Duration) {
	if s.closed {
		return
	}
	sub.wantRepair()
	k := chanKey{s.app, sub.channel}
	if delay <= 0 {
		sub.markForRepair()
		s.hub.enqueueRepair(k)
		return
	}
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		live := !s.closed && s.subs[sub.channel] == sub
		if live {
			sub.markForRepair()
		}
		s.mu.Unlock()
		if live {
			s.hub.enqueueRepair(k)
		}
	})
}

// flushPendingLocked queues what arrived while sub was joining and is newer
// than what was sent. A gap among those starts a repair, holding back the
// rest.
//
// fresh says sub.sent was just read from the broker (see takePending).
//
// One whose event ends the subscription (a removal) is the last sent. A
// removal held back and lost on the way (see subscription.removalLost)
// ends it all the same, once nothing else can bring it.
func (s *Session) flushPendingLocked(sub *subscription, fresh bool) {
	if sub.ended {
		return
	}
	pending, overflowed := sub.takePending(fresh)
	if overflowed {
		// What was held back was dropped: read it from history.
		s.requestRepairLocked(sub, 0)
		return
	}
	for i, p := range pending {
		switch step := sub.follows(p.pos, p.link); {
		case step == stepSent, step == stepEarlier && fresh:
			// sub.sent was just read from the stream: what lies before
			// it was sent, or the client was told it is lost, or it is
			// not of this stream (history holds what was sent).
			continue
		case step != stepNext:
			sub.keepPending(pending[i:])
			// Right after a repair or a replay, another gap means the
			// stream is still broken: try again a little later.
			s.requestRepairLocked(sub, repairRetry)
			return
		}
		if !s.sendAtLocked(sub, p.frame, p.pos) {
			return
		}
		if p.removes != "" {
			s.endLocked(sub, p.removes)
			return
		}
	}
	if sub.removalLost() {
		s.endLocked(sub, sub.removal)
	}
}

// repairAfterReconnect marks sub for the repair of its channel that
// follows a reconnect of the broker: publications made meanwhile did not
// reach this node.
func (s *Session) repairAfterReconnect(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		sub.wantRepair()
		sub.markForRepair()
	}
}

// takeForRepair is the repair pass of sub's channel taking sub, if it
// asked for a repair, with where it stands. A subscription that is
// joining is left marked: its subscribe asks again when it ends.
func (s *Session) takeForRepair(sub *subscription) (repairItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !sub.takeForRepair() {
		return repairItem{}, false
	}
	return repairItem{s, sub, sub.gen, sub.sent}, true
}

// applyRepair sends sub what history gave after its last event, or says
// plainly that events were lost, then what was held back.
func (s *Session) applyRepair(it repairItem, r repairResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := it.sub
	if s.closed || s.subs[sub.channel] != sub {
		return
	}
	if sub.joining {
		// A subscribe is reading history: it asks again when it ends.
		sub.markForRepair()
		return
	}
	if sub.gen != it.gen {
		// A subscribe came and went meanwhile; it answered this, or asked
		// again itself.
		return
	}
	m := s.hub.m.repairs
	if r.err != nil {
		fails := sub.repairFailed()
		if fails == 1 {
			s.hub.log.Warn("filling a gap from history failed; retrying with backoff", "channel", textclip.Cut(sub.channel, maxEcho), "err", r.err)
		}
		m.WithLabelValues("failed").Inc()
		s.requestRepairLocked(sub, retryDelay(fails))
		return
	}
	sub.repairRead()
	if r.restarted {
		if !s.lostLocked(sub, broker.Position{Epoch: r.hist.Latest.Epoch}) {
			return
		}
		m.WithLabelValues("restarted").Inc()
	}
	switch {
	case r.hist.Recovered:
		if s.closeIfOverBudgetLocked() {
			return
		}
		filled, ok := s.replayLocked(sub, r.hist.Publications)
		if !ok {
			return
		}
		if filled > 0 && !r.restarted {
			m.WithLabelValues("recovered").Inc()
		}
	case sub.coveredByPending(r.hist.Latest):
		// History was trimmed past the last event sent, but the events
		// since then were received live and held back: they follow below.
		m.WithLabelValues("recovered").Inc()
	default:
		if !s.lostLocked(sub, r.hist.Latest) {
			return
		}
		m.WithLabelValues("lost").Inc()
	}
	sub.repaired()
	s.flushPendingLocked(sub, true)
}
