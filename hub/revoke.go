package hub

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
)

// CloseDisconnected ends a session the server API disconnected or whose
// tokens it revoked (docs/protocol.md#server-api): the client must not reconnect with the
// same token.
const CloseDisconnected websocket.StatusCode = 4010

// RevocationCheck is what [Revocations] answer about a token.
type RevocationCheck int

const (
	// TokenClear: no revocation in force covers the token.
	TokenClear RevocationCheck = iota
	// TokenRevoked: a revocation in force covers it.
	TokenRevoked
	// TokenUnchecked: the revocations could not be read (Redis away), and
	// none that were at hand covers it.
	TokenUnchecked
)

// Revocations say whether a token was revoked by the server API. They are
// asked at connect and on refresh, and again about the sessions admitted
// while they could not answer.
type Revocations interface {
	// Check says whether id's token was issued before a revocation of its
	// user that is still in force.
	Check(ctx context.Context, id *auth.Identity) RevocationCheck
	// CheckAll answers Check for each of ids, in batches, and fails when
	// not all of them could be answered: those are TokenUnchecked.
	CheckAll(ctx context.Context, ids []*auth.Identity) ([]RevocationCheck, error)
}

type userKey struct{ app, user string }

// addUserLocked and removeUserLocked keep the index of sessions by user,
// under sessMu. A user has one session or a few: a slice of them costs a
// pointer each, where a set would cost a map per user. Each session knows
// its place in the slice (userAt), so that leaving is quick however many
// sessions a user has.
func (h *Hub) addUserLocked(s *Session, k userKey) {
	s.userAt = len(h.users[k])
	h.users[k] = append(h.users[k], s)
}

func (h *Hub) removeUserLocked(s *Session, k userKey) {
	list := h.users[k]
	i := s.userAt
	if i >= len(list) || list[i] != s {
		return
	}
	if len(list) == 1 {
		delete(h.users, k)
		return
	}
	last := list[len(list)-1]
	list[i], last.userAt = last, i
	list[len(list)-1] = nil
	h.users[k] = list[:len(list)-1]
}

// Disconnect closes the sessions of app's user on this node with 4010 and
// returns how many it closed. With a non-zero before it closes only those
// whose token was issued before it, or has no iat (a revocation).
func (h *Hub) Disconnect(app, user string, before time.Time, reason string) int {
	h.sessMu.Lock()
	list := slices.Clone(h.users[userKey{app, user}])
	h.sessMu.Unlock()
	n := 0
	for _, s := range list {
		if s.disconnect(before, reason) {
			n++
		}
	}
	return n
}

// IssuedBefore reports whether id's token falls under a revocation of
// tokens issued before t, the rule [Revocations] apply too. A token
// without iat cannot show that it is newer, and so falls under it.
func IssuedBefore(id *auth.Identity, t time.Time) bool {
	return id.Issued.IsZero() || id.Issued.Before(t)
}

// checkRevoked asks the configured Revocations, if any, about id.
func (h *Hub) checkRevoked(ctx context.Context, id *auth.Identity) RevocationCheck {
	if h.cfg.Revocations == nil {
		return TokenClear
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BrokerTimeout)
	defer cancel()
	return h.cfg.Revocations.Check(ctx, id)
}

// admitUnchecked records that s holds id, a token Revocations could not
// check: it is checked again, with the others, until they answer.
func (h *Hub) admitUnchecked(s *Session, id *auth.Identity) {
	h.sessMu.Lock()
	h.unchecked[s] = id
	h.m.uncheckedSessions.Set(float64(len(h.unchecked)))
	h.sessMu.Unlock()
	h.m.unchecked.WithLabelValues("admitted").Inc()
}

// settled records that Revocations answered about id, which s held: s no
// longer waits for a check, unless it holds another unchecked token now.
// A nil id settles whatever s waited for (it holds a checked token now). A
// session that waited is counted by the answer.
func (h *Hub) settled(s *Session, id *auth.Identity, result string) {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	waited, ok := h.unchecked[s]
	if !ok || (id != nil && waited != id) {
		return
	}
	delete(h.unchecked, s)
	h.m.uncheckedSessions.Set(float64(len(h.unchecked)))
	h.m.rechecks.WithLabelValues(result).Inc()
}

// forgetUncheckedLocked drops s from the sessions waiting for a check, as
// it ends. The caller holds sessMu.
func (h *Hub) forgetUncheckedLocked(s *Session) {
	if _, ok := h.unchecked[s]; ok {
		delete(h.unchecked, s)
		h.m.uncheckedSessions.Set(float64(len(h.unchecked)))
	}
}

// CloseRevoked closes with 4010 every session whose token Revocations now
// refuses, and returns how many. It is for a node that may have missed
// revocations sent to it (its control channel was not subscribed): what
// it missed is still in Revocations. An error means not every session
// could be checked; those found revoked are closed all the same, and the
// caller should try again later.
func (h *Hub) CloseRevoked(ctx context.Context) (int, error) {
	if h.cfg.Revocations == nil {
		return 0, nil
	}
	h.sessMu.Lock()
	list := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		list = append(list, s)
	}
	h.sessMu.Unlock()
	return h.judge(ctx, list)
}

// recheckTimeout bounds one check of the sessions admitted unchecked.
const recheckTimeout = 5 * time.Second

// RunRechecks checks the sessions admitted while Revocations could not
// answer, every RecheckEvery while there are any, until ctx is done: as
// soon as they answer, the sessions whose tokens are revoked are closed
// with 4010 and the rest count as checked.
func (h *Hub) RunRechecks(ctx context.Context) {
	if h.cfg.Revocations == nil {
		return
	}
	t := time.NewTicker(h.cfg.RecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.sessMu.Lock()
		list := make([]*Session, 0, len(h.unchecked))
		for s := range h.unchecked {
			list = append(list, s)
		}
		h.sessMu.Unlock()
		if len(list) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, recheckTimeout)
		n, err := h.judge(cctx, list)
		cancel()
		if err != nil {
			h.log.Debug("sessions admitted unchecked: revocations still unreadable", "sessions", len(list), "closed", n, "err", err)
			continue
		}
		h.log.Info("sessions admitted unchecked are checked now", "sessions", len(list), "closed", n)
	}
}

// judge asks Revocations about the tokens of list at once, closes with
// 4010 the sessions whose tokens are revoked, and returns how many.
func (h *Hub) judge(ctx context.Context, list []*Session) (int, error) {
	ids := make([]*auth.Identity, 0, len(list))
	open := list[:0]
	for _, s := range list {
		if id, ok := s.identity(); ok {
			ids = append(ids, id)
			open = append(open, s)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	checks, err := h.cfg.Revocations.CheckAll(ctx, ids)
	n := 0
	for i, s := range open {
		if i >= len(checks) {
			break
		}
		switch checks[i] {
		case TokenRevoked:
			if s.closeIfIdentity(ids[i]) {
				n++
			}
			h.settled(s, ids[i], "revoked")
		case TokenClear:
			h.settled(s, ids[i], "clear")
		}
	}
	if err != nil {
		return n, fmt.Errorf("check %d sessions for revoked tokens: %w", len(ids), err)
	}
	return n, nil
}
