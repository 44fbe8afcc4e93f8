package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/textclip"
)

// The client's ops: each frame a client sends is carried out here, by
// handle, on a goroutine of its own (see aside), one frame at a time.

// handle carries out one client frame, or only answers it when it came
// too fast (refused); false ends the session. wait says it may wait for
// the IM where it is: it runs off the reader (opqueue.go). On the reader
// it may not, and a frame that may have to is handed, with the frames
// after it, to a goroutine of its own.
func (s *Session) handle(ctx context.Context, data []byte, refused, wait bool) bool {
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
	if !wait {
		id, _ := s.identity()
		if s.hub.asksIM(id, &f) {
			s.offReader(ctx, func() { s.handleFrame(ctx, f) })
			return true
		}
	}
	s.handleFrame(ctx, f)
	return true
}

// handleFrame carries out f.
func (s *Session) handleFrame(ctx context.Context, f clientFrame) {
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
}

// subscribe joins f.Channel, or, for a channel the session has, reads its
// history again: the client is answered, then sent what history holds
// since f.Since, then what came live meanwhile. A group the IM's
// membership governs is asked about once the node receives the channel,
// so that an exit published after the answer reaches the subscription
// (delivery.go) and one published before it is in the answer.
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
	if code, msg := authorize(s.id, f.Channel, s.hub.governs(s.app)); code != "" {
		s.mu.Unlock()
		s.fail(f.ID, f.Channel, code, msg)
		return
	}
	group, member := s.hub.memberGroup(s.id, f.Channel)
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
	if member {
		if code, msg := s.admitMember(bctx, group); code != "" {
			// Refused, an existing subscription ends; one the IM could
			// not be asked about goes on as it was.
			s.abandonJoin(sub, existing, code == CodeForbidden)
			s.fail(f.ID, f.Channel, code, msg)
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
		// Without a starting point the stream cannot be delivered without
		// a gap or a repeat: no new subscription, try again. One that was
		// there goes on as it was; only the replay asked for failed.
		s.abandonJoin(sub, existing, false)
		s.fail(f.ID, f.Channel, CodeUnavailable, "history could not be read now, subscribe again")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.subs[f.Channel] != sub {
		return
	}
	var recovered *bool
	if since != nil {
		recovered = &hist.Recovered
	}
	if !s.sendLocked(subscribedFrame(f.Channel, hist.Latest, recovered, f.ID).encode()) {
		return
	}
	if _, ok := s.replayLocked(sub, hist.Publications); !ok {
		return
	}
	// History was just read: a repair asked for before it is answered. One
	// asked for while it was read (the broker reconnected) runs now.
	again := sub.joined(hist.Latest)
	s.flushPendingLocked(sub, true)
	if again {
		s.requestRepairLocked(sub, 0)
	}
}

// abandonJoin undoes a subscribe that could not be carried out. A new
// subscription is taken out again. One that was there goes on as it was,
// a repair wanted meanwhile asked for now, unless end says it ends: it is
// then unsubscribed, the client told it was removed.
func (s *Session) abandonJoin(sub *subscription, existing, end bool) {
	s.mu.Lock()
	if existing && !end {
		if sub.joinFailed() {
			s.requestRepairLocked(sub, 0)
		} else {
			s.flushPendingLocked(sub, false)
		}
		s.mu.Unlock()
		return
	}
	mine := s.subs != nil && s.subs[sub.channel] == sub
	if mine {
		delete(s.subs, sub.channel)
	}
	if existing && mine {
		s.sendLocked(unsubscribedFrame(sub.channel, ReasonRemoved))
	}
	s.mu.Unlock()
	if mine {
		s.hub.leave(s, sub)
	}
}

// unsubscribe leaves f.Channel; it is answered whether the session had it
// or not.
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

// refresh replaces the session's credential with a later one of the same
// kind, for the same user and app. Channels the new one no longer grants
// are unsubscribed.
func (s *Session) refresh(f clientFrame) {
	c, id, code, msg := s.reverify(f)
	if code != "" {
		s.fail(f.ID, "", code, msg)
		return
	}
	first := s.hub.checkRevoked(context.Background(), id)
	switch {
	case first == TokenRevoked:
		s.hub.m.authFailures.WithLabelValues("revoked", c.label()).Inc()
		s.fail(f.ID, "", CodeForbidden, "refresh refused: revoked")
		return
	case first == TokenUnchecked && s.hub.cfg.RefuseUnchecked:
		// The token in place was checked: the client keeps it, and
		// refreshes again later.
		s.hub.m.unchecked.WithLabelValues("refused").Inc()
		s.fail(f.ID, "", CodeUnavailable, "refresh refused: revocations cannot be checked now; try again")
		return
	}
	s.mu.Lock()
	s.id = id
	s.expires.Reset(time.Until(id.Expires))
	var revoked []*subscription
	for name, sub := range s.subs {
		if code, _ := authorize(id, name, s.hub.governs(s.app)); code != "" {
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
	second := s.hub.checkRevoked(context.Background(), id)
	switch {
	case second == TokenRevoked:
		s.hub.m.authFailures.WithLabelValues("revoked", c.label()).Inc()
		s.close(CloseDisconnected, "token revoked by the server API")
		return
	case second == TokenUnchecked && s.hub.cfg.RefuseUnchecked:
		// The old token is gone: the session cannot stay on a new one
		// that was not checked.
		s.hub.m.unchecked.WithLabelValues("refused").Inc()
		s.close(CloseTryAgainLater, "revocations cannot be checked now: try again later")
		return
	case second == TokenUnchecked:
		s.hub.admitUnchecked(s, id)
	default:
		// Whatever token came before, the one held now is checked.
		s.hub.settled(s, nil, "clear")
	}
	s.reply(serverFrame{Op: "refreshed", Expires: id.Expires.Unix(), ID: f.ID})
}

// reverify checks the credential a refresh brings: one, of the kind the
// session connected with (a UserSig for a UserSig), for the session's
// user and app. A refused one is answered as a refused token is, a
// UserSig's with one fixed message whatever failed.
func (s *Session) reverify(f clientFrame) (c credential, id *auth.Identity, code, msg string) {
	held, _ := s.identity()
	c = credential{jwt: f.Token}
	if f.UserSig != "" {
		c = credential{sig: true, userSig: f.UserSig, app: s.app, user: s.user}
	}
	m := s.hub.m.authFailures
	switch {
	case f.Token != "" && f.UserSig != "":
		m.WithLabelValues(reasonMixed, c.label()).Inc()
		return c, nil, CodeBadRequest, "a refresh takes a token or a usersig, not both"
	case c.sig != held.UserSig:
		m.WithLabelValues("refresh_other_credential", c.label()).Inc()
		return c, nil, CodeForbidden, "refresh refused: a session refreshes with the kind of credential it connected with, a token or a usersig"
	}
	id, err := s.hub.verify(c)
	if err != nil {
		return c, nil, CodeForbidden, "refresh refused: " + textclip.Cut(s.hub.refused(c, err, "refresh"), 4*maxEcho)
	}
	if id.User != s.user || id.App != s.app {
		m.WithLabelValues("refresh_other_user", c.label()).Inc()
		return c, nil, CodeForbidden, "refresh refused: the token is for another user or app"
	}
	return c, id, "", ""
}

// reasonOf is the reason an auth error is counted under.
func reasonOf(err error) string {
	var e *auth.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "other"
}

// presence answers who is connected to a channel the session may
// subscribe to; other channels get the error a subscribe would.
func (s *Session) presence(ctx context.Context, f clientFrame) {
	if f.Channel == "" {
		s.fail(f.ID, "", CodeBadRequest, "channel is required")
		return
	}
	s.mu.Lock()
	code, msg := authorize(s.id, f.Channel, s.hub.governs(s.app))
	group, member := s.hub.memberGroup(s.id, f.Channel)
	s.mu.Unlock()
	bctx, cancel := context.WithTimeout(ctx, s.hub.cfg.BrokerTimeout)
	defer cancel()
	if code == "" && member {
		code, msg = s.admitMember(bctx, group)
	}
	if code != "" {
		s.fail(f.ID, f.Channel, code, msg)
		return
	}
	users, err := s.hub.cfg.Presence.Users(bctx, s.app, f.Channel)
	if err != nil {
		s.hub.log.Warn("presence failed", "app", s.app, "channel", textclip.Cut(f.Channel, maxEcho), "err", err)
		s.fail(f.ID, f.Channel, CodeUnavailable, "presence could not be read now, try again")
		return
	}
	b, err := json.Marshal(presenceFrame{Op: "presence", Channel: f.Channel, Users: users, ID: f.ID})
	if err != nil {
		s.fail(nil, f.Channel, CodeBadRequest, "presence: "+err.Error())
		return
	}
	s.send(b)
}

// reply queues a control frame.
func (s *Session) reply(f serverFrame) { s.send(f.encode()) }

// fail answers a frame with an error. The channel is the client's own,
// echoed so that it can tell which subscription failed; one longer than
// any channel can be is clipped.
func (s *Session) fail(id json.RawMessage, channel, code, msg string) {
	s.reply(serverFrame{Op: "error", Code: code, Message: msg, Channel: textclip.Cut(channel, maxChannelLen), ID: id})
}
