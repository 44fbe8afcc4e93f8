package hub

import (
	"context"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
)

// CloseDisconnected ends a session the server API disconnected or whose
// tokens it revoked (PROTOCOL §6): the client must not reconnect with the
// same token.
const CloseDisconnected websocket.StatusCode = 4010

// Revocations says whether a token was revoked by the server API. It is
// asked at connect and on refresh.
type Revocations interface {
	// Revoked reports whether id's token was issued before a revocation
	// of its user that is still in force.
	Revoked(ctx context.Context, id *auth.Identity) bool
}

type userKey struct{ app, user string }

// addUserLocked and removeUserLocked keep the index of sessions by user,
// under sessMu.
func (h *Hub) addUserLocked(s *Session, k userKey) {
	m := h.users[k]
	if m == nil {
		m = make(map[*Session]struct{}, 1)
		h.users[k] = m
	}
	m[s] = struct{}{}
}

func (h *Hub) removeUserLocked(s *Session, k userKey) {
	m := h.users[k]
	delete(m, s)
	if len(m) == 0 {
		delete(h.users, k)
	}
}

// Disconnect closes the sessions of app's user on this node with 4010 and
// returns how many it closed. With a non-zero before it closes only those
// whose token was issued before it, or has no iat (a revocation).
func (h *Hub) Disconnect(app, user string, before time.Time, reason string) int {
	h.sessMu.Lock()
	list := make([]*Session, 0, len(h.users[userKey{app, user}]))
	for s := range h.users[userKey{app, user}] {
		list = append(list, s)
	}
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
// revocations sent to it (its control channel was reconnected): what it
// missed is still in Revocations.
func (h *Hub) CloseRevoked(ctx context.Context) int {
	if h.cfg.Revocations == nil {
		return 0
	}
	h.sessMu.Lock()
	list := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		list = append(list, s)
	}
	h.sessMu.Unlock()
	n := 0
	for _, s := range list {
		if ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		id, closed := s.id, s.closed
		s.mu.Unlock()
		if !closed && h.revoked(ctx, id) {
			s.close(CloseDisconnected, "token revoked by the server API")
			n++
		}
	}
	return n
}
