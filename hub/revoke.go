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

// Revocations says whether a token was revoked by the server API. It is
// asked at connect and on refresh.
type Revocations interface {
	// Revoked reports whether id's token was issued before a revocation
	// of its user that is still in force.
	Revoked(ctx context.Context, id *auth.Identity) bool
	// RevokedAll answers Revoked for each of ids, in batches. Unlike
	// Revoked it fails when the revocations cannot be read, rather than
	// letting tokens in: it is for re-checking sessions already open,
	// which can be done again later. On failure, what it found is still
	// in the answer.
	RevokedAll(ctx context.Context, ids []*auth.Identity) ([]bool, error)
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
		s.mu.Lock()
		hit := !s.closed && (before.IsZero() || IssuedBefore(s.id, before))
		if hit {
			s.closeLocked(CloseDisconnected, reason)
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// IssuedBefore reports whether id's token falls under a revocation of
// tokens issued before t, the rule [Revocations] apply too. A token
// without iat cannot show that it is newer, and so falls under it.
func IssuedBefore(id *auth.Identity, t time.Time) bool {
	return id.Issued.IsZero() || id.Issued.Before(t)
}

// revoked asks the configured Revocations, if any, about id.
func (h *Hub) revoked(ctx context.Context, id *auth.Identity) bool {
	if h.cfg.Revocations == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BrokerTimeout)
	defer cancel()
	return h.cfg.Revocations.Revoked(ctx, id)
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
	ids := make([]*auth.Identity, 0, len(list))
	open := list[:0]
	for _, s := range list {
		s.mu.Lock()
		id, closed := s.id, s.closed
		s.mu.Unlock()
		if !closed {
			ids = append(ids, id)
			open = append(open, s)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	revoked, err := h.cfg.Revocations.RevokedAll(ctx, ids)
	n := 0
	for i, s := range open {
		if i < len(revoked) && revoked[i] && s.closeIfIdentity(ids[i]) {
			n++
		}
	}
	if err != nil {
		return n, fmt.Errorf("check %d sessions for revoked tokens: %w", len(ids), err)
	}
	return n, nil
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
