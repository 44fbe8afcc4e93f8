package hub_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/wstest"
)

// stubRevocations answer as a test sets them: while away every token is
// unchecked (and CheckAll fails); else a token of a user in revoked is
// revoked, and any other clear. before, when set, runs at each Check.
type stubRevocations struct {
	mu      sync.Mutex
	away    bool
	revoked map[string]bool
	before  func(id *auth.Identity)
}

func (s *stubRevocations) set(away bool, revoked ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.away = away
	s.revoked = map[string]bool{}
	for _, u := range revoked {
		s.revoked[u] = true
	}
}

func (s *stubRevocations) answer(id *auth.Identity) hub.RevocationCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.away:
		return hub.TokenUnchecked
	case s.revoked[id.User]:
		return hub.TokenRevoked
	}
	return hub.TokenClear
}

func (s *stubRevocations) Check(_ context.Context, id *auth.Identity) hub.RevocationCheck {
	s.mu.Lock()
	before := s.before
	s.mu.Unlock()
	if before != nil {
		before(id)
	}
	return s.answer(id)
}

func (s *stubRevocations) CheckAll(_ context.Context, ids []*auth.Identity) ([]hub.RevocationCheck, error) {
	out := make([]hub.RevocationCheck, len(ids))
	for i, id := range ids {
		out[i] = s.answer(id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.away {
		return out, errors.New("redis away")
	}
	return out, nil
}

// runRechecks runs e's hub's RunRechecks until the test ends.
func runRechecks(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.hub.RunRechecks(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// By default a token the revocations cannot check is let in, at connect
// and on refresh, and checked again until they answer: then a revoked one
// is closed with 4010 and the others stay. The metrics count each step.
func TestUncheckedTokensAdmitted(t *testing.T) {
	revs := &stubRevocations{}
	revs.set(true)
	e := newEnv(t, hub.Config{Revocations: revs, RecheckEvery: 10 * time.Millisecond})
	runRechecks(t, e)
	ann := e.connect(e.token(user("ann")))
	bob := e.connect(e.token(user("bob")))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_unchecked_total", "action", "admitted")))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")))
	bob.Send(map[string]any{"op": "refresh", "token": e.token(user("bob")), "id": 1})
	bob.ReadOp("refreshed")
	assert.Equal(t, 3.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_unchecked_total", "action", "admitted")), "the refresh too")
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")), "bob's session waits once, for its new token")

	revs.set(false, "ann")
	ann.ExpectClose(hub.CloseDisconnected)
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")) == 0 },
		10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_rechecks_total", "result", "revoked")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_rechecks_total", "result", "clear")))
	bob.Send(map[string]any{"op": "ping", "id": 2})
	bob.ReadOp("pong")
}

// A session let in unchecked that refreshes to a token that is checked no
// longer waits, and one that ends leaves the count.
func TestUncheckedSettledByRefreshOrEnd(t *testing.T) {
	revs := &stubRevocations{}
	revs.set(true)
	e := newEnv(t, hub.Config{Revocations: revs})
	ann := e.connect(e.token(user("ann")))
	bob := e.connect(e.token(user("bob")))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")))
	revs.set(false)
	ann.Send(map[string]any{"op": "refresh", "token": e.token(user("ann")), "id": 1})
	ann.ReadOp("refreshed")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_rechecks_total", "result", "clear")))
	_ = bob.C.CloseNow()
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_sessions_unchecked")) == 0 },
		10*time.Second, 5*time.Millisecond, "a session that ends waits no more")
}

// With RefuseUnchecked, a connect whose token cannot be checked is closed
// with 1013, a refresh refused with unavailable (the session keeps its
// checked token), and a refresh whose token could be checked before the
// swap but not after it closes the session with 1013.
func TestUncheckedTokensRefused(t *testing.T) {
	revs := &stubRevocations{}
	revs.set(false)
	e := newEnv(t, hub.Config{Revocations: revs, RefuseUnchecked: true})
	bob := e.connect(e.token(user("bob")))
	cid := e.connect(e.token(user("cid")))

	revs.set(true)
	wstest.Dial(t, e.wsURL(), e.token(user("ann"))).ExpectClose(hub.CloseTryAgainLater)
	bob.Send(map[string]any{"op": "refresh", "token": e.token(user("bob")), "id": 1})
	f := bob.ReadOp("error")
	assert.Equal(t, hub.CodeUnavailable, f.Code)
	assert.Contains(t, f.Message, "try again")
	bob.Send(map[string]any{"op": "ping", "id": 2})
	bob.ReadOp("pong")

	revs.set(false)
	var once sync.Once
	calls := 0
	revs.mu.Lock()
	revs.before = func(id *auth.Identity) {
		if id.User != "cid" {
			return
		}
		calls++
		if calls == 2 { // the check after the swap
			once.Do(func() { revs.set(true) })
		}
	}
	revs.mu.Unlock()
	cid.Send(map[string]any{"op": "refresh", "token": e.token(user("cid")), "id": 3})
	cid.ExpectClose(hub.CloseTryAgainLater)
	assert.Equal(t, 3.0, testutil.ToFloat64(e.metric("imhub_ws_revocation_unchecked_total", "action", "refused")))
	assert.Zero(t, testutil.ToFloat64(e.metric("imhub_ws_revocation_unchecked_total", "action", "admitted")))
}
