package hub_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/hub/presence"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// apiHub is a hub with in-memory presence and revocations, as a hub
// without Redis runs.
type apiHub struct {
	h    *hub.Hub
	pres *presence.Tracker
	revs *control.Revocations
	url  string
}

func newAPIHub(t *testing.T) *apiHub {
	t.Helper()
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1"}})
	require.NoError(t, err)
	b := broker.NewMemory(broker.Config{HistorySize: 10, HistoryTTL: time.Minute})
	a := &apiHub{pres: presence.New(presence.Config{}), revs: control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour})}
	a.h = hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler), Presence: a.pres, Revocations: a.revs}, b, v)
	srv := hubtest.Serve(t, a.h, b, a.h)
	a.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	return a
}

// tokenAt mints a token for sub issued at iat (none when zero).
func tokenAt(t *testing.T, sub string, iat time.Time, admin bool, groups ...string) string {
	t.Helper()
	c := auth.Claims{Admin: admin, Groups: groups}
	c.Subject = sub
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	if !iat.IsZero() {
		c.IssuedAt = jwt.NewNumericDate(iat)
	}
	tok, err := auth.Mint(secret, c)
	require.NoError(t, err)
	return tok
}

func (a *apiHub) dial(t *testing.T, token string) *wstest.Conn {
	t.Helper()
	c := wstest.Dial(t, a.url, token)
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	return c
}

// The presence op answers who is subscribed to a channel the asker may
// subscribe to, with a count per user; any other channel gets the error a
// subscribe would.
func TestPresenceOp(t *testing.T) {
	a := newAPIHub(t)
	now := time.Now()
	ann := a.dial(t, tokenAt(t, "ann", now, false, "G1"))
	ann2 := a.dial(t, tokenAt(t, "ann", now, false, "G1"))
	bob := a.dial(t, tokenAt(t, "bob", now, false, "G1", "G9"))
	for _, c := range []*wstest.Conn{ann, ann2, bob} {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
		c.ReadOp("subscribed")
	}
	bob.Send(map[string]any{"op": "presence", "channel": "group:G1", "id": 7})
	f := bob.ReadOp("presence")
	assert.Equal(t, "group:G1", f.Channel)
	assert.Equal(t, map[string]int{"ann": 2, "bob": 1}, f.Users)
	assert.JSONEq(t, "7", string(f.ID))

	ann2.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	ann2.ReadOp("unsubscribed")
	bob.Send(map[string]any{"op": "presence", "channel": "group:G1"})
	assert.Equal(t, map[string]int{"ann": 1, "bob": 1}, bob.ReadOp("presence").Users)

	bob.Send(map[string]any{"op": "presence", "channel": "user:bob"})
	assert.Equal(t, map[string]int{"bob": 1}, bob.ReadOp("presence").Users, "the own channel")
	bob.Send(map[string]any{"op": "presence", "channel": "group:G9"})
	assert.Equal(t, `{"op":"presence","channel":"group:G9","users":{}}`, bob.ReadOp("presence").Raw, "an empty channel: {}")
	_ = ann.C.CloseNow()
	require.Eventually(t, func() bool {
		users, _ := a.pres.Users(context.Background(), "1", "group:G1")
		return len(users) == 1 && users["bob"] == 1
	}, 5*time.Second, 5*time.Millisecond, "a closed session leaves")

	for _, tc := range []struct{ channel, code string }{
		{"group:G2", hub.CodeForbidden},
		{"user:ann", hub.CodeForbidden},
		{"app", hub.CodeForbidden},
		{"room:1", hub.CodeUnknownChannel},
		{"", hub.CodeBadRequest},
	} {
		bob.Send(map[string]any{"op": "presence", "channel": tc.channel, "id": 1})
		f := bob.ReadOp("error")
		assert.Equal(t, tc.code, f.Code, tc.channel)
		assert.Equal(t, tc.channel, f.Channel)
	}
	admin := a.dial(t, tokenAt(t, "dash", now, true))
	admin.Send(map[string]any{"op": "presence", "channel": "user:bob"})
	assert.Equal(t, map[string]int{"bob": 1}, admin.ReadOp("presence").Users, "an admin may ask of any channel")
}

// Disconnect closes every session of the user with 4010 and no other.
func TestDisconnectUser(t *testing.T) {
	a := newAPIHub(t)
	now := time.Now()
	ann, ann2 := a.dial(t, tokenAt(t, "ann", now, false)), a.dial(t, tokenAt(t, "ann", now, false))
	bob := a.dial(t, tokenAt(t, "bob", now, false))
	assert.Equal(t, 2, a.h.Disconnect("1", "ann", time.Time{}, "disconnected by the server API"))
	ann.ExpectClose(hub.CloseDisconnected)
	ann2.ExpectClose(hub.CloseDisconnected)
	bob.Send(map[string]any{"op": "ping"})
	bob.ReadOp("pong")
	assert.Zero(t, a.h.Disconnect("1", "nobody", time.Time{}, ""))
	assert.Zero(t, a.h.Disconnect("2", "bob", time.Time{}, ""), "another app's bob")
}

// A revocation closes the sessions whose tokens were issued before it (or
// have no iat) with 4010, refuses such tokens at connect with 4001 and on
// refresh, and lets later tokens in.
func TestRevokedTokens(t *testing.T) {
	a := newAPIHub(t)
	cut := time.Now().Truncate(time.Second)
	old := tokenAt(t, "ann", cut.Add(-time.Minute), false)
	noIat := tokenAt(t, "ann", time.Time{}, false)
	fresh := tokenAt(t, "ann", cut.Add(time.Second), false)
	oldConn, noIatConn, freshConn := a.dial(t, old), a.dial(t, noIat), a.dial(t, fresh)

	a.revs.Remember("1", "ann", cut)
	assert.Equal(t, 2, a.h.Disconnect("1", "ann", cut, "token revoked by the server API"))
	oldConn.ExpectClose(hub.CloseDisconnected)
	noIatConn.ExpectClose(hub.CloseDisconnected)

	for _, tok := range []string{old, noIat} {
		c := wstest.Dial(t, a.url, tok)
		c.ExpectClose(hub.CloseInvalidToken)
	}
	freshConn.Send(map[string]any{"op": "refresh", "token": old, "id": 3})
	f := freshConn.ReadOp("error")
	assert.Equal(t, hub.CodeForbidden, f.Code)
	assert.Contains(t, f.Message, "revoked")
	freshConn.Send(map[string]any{"op": "refresh", "token": tokenAt(t, "ann", cut.Add(2*time.Second), false), "id": 4})
	freshConn.ReadOp("refreshed")
	a.dial(t, fresh) // a later token is let in
	assert.Equal(t, 0, a.h.Disconnect("1", "ann", cut, ""), "the fresh sessions stay")
}

// A node that may have missed revocations closes, when asked, every session
// whose token they refuse, and no other.
func TestCloseRevoked(t *testing.T) {
	a := newAPIHub(t)
	cut := time.Now().Truncate(time.Second)
	old := a.dial(t, tokenAt(t, "ann", cut.Add(-time.Minute), false))
	fresh := a.dial(t, tokenAt(t, "ann", cut.Add(time.Second), false))
	bob := a.dial(t, tokenAt(t, "bob", cut.Add(-time.Minute), false))
	a.revs.Remember("1", "ann", cut) // the command itself never came
	n, err := a.h.CloseRevoked(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	old.ExpectClose(hub.CloseDisconnected)
	for _, c := range []*wstest.Conn{fresh, bob} {
		c.Send(map[string]any{"op": "ping"})
		c.ReadOp("pong")
	}
}

// With Redis, CloseRevoked reads the revocations of every session's user
// in one go; when Redis cannot be read it closes what memory knows of and
// says that the rest is unchecked, to be tried again.
func TestCloseRevokedRedis(t *testing.T) {
	srv := redistest.Start(t)
	newRevs := func() *control.Revocations {
		c, err := broker.NewRedisClient(srv.URL(), "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return control.NewRevocations(control.RevocationsConfig{Client: c, MaxTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	}
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1"}})
	require.NoError(t, err)
	b := broker.NewMemory(broker.Config{HistorySize: 10, HistoryTTL: time.Minute})
	revs := newRevs()
	h := hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler), Revocations: revs}, b, v)
	a := &apiHub{h: h, revs: revs, url: "ws" + strings.TrimPrefix(hubtest.Serve(t, h, b, h).URL, "http") + "/ws"}

	cut := time.Now().Truncate(time.Second)
	ann := a.dial(t, tokenAt(t, "ann", cut.Add(-time.Minute), false))
	bob := a.dial(t, tokenAt(t, "bob", cut.Add(-time.Minute), false))
	cid := a.dial(t, tokenAt(t, "cid", cut.Add(-time.Minute), false))
	dan := a.dial(t, tokenAt(t, "dan", cut.Add(-time.Minute), false))
	require.NoError(t, newRevs().Store(context.Background(), "1", "bob", cut)) // the command never came
	revs.Remember("1", "ann", cut)
	n, err := h.CloseRevoked(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	ann.ExpectClose(hub.CloseDisconnected)
	bob.ExpectClose(hub.CloseDisconnected)

	revs.Remember("1", "cid", cut)
	srv.Stop()
	n, err = h.CloseRevoked(context.Background())
	require.Error(t, err, "dan could not be checked")
	assert.Equal(t, 1, n)
	cid.ExpectClose(hub.CloseDisconnected)
	dan.Send(map[string]any{"op": "ping"})
	dan.ReadOp("pong")
}

// racingRevocations are revocations that, when asked about the token a
// refresh brings, take a revocation of it just after answering: it lands
// between the refresh's check and its swap of the token.
type racingRevocations struct {
	*control.Revocations
	racer func(id *auth.Identity)
}

func (r racingRevocations) Check(ctx context.Context, id *auth.Identity) hub.RevocationCheck {
	check := r.Revocations.Check(ctx, id)
	if r.racer != nil {
		r.racer(id)
	}
	return check
}

// A revocation taken while a refresh is under way, after its check and
// before its token is in place, judges the old token; the refresh judges
// the new one again once it is in place, and closes with 4010.
func TestRefreshRacingRevocation(t *testing.T) {
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1"}})
	require.NoError(t, err)
	b := broker.NewMemory(broker.Config{HistorySize: 10, HistoryTTL: time.Minute})
	revs := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour})
	cut := time.Now().Truncate(time.Second)
	stale := cut.Add(-time.Minute)
	var once sync.Once
	var h *hub.Hub
	var closed atomic.Int64
	rr := racingRevocations{Revocations: revs, racer: func(id *auth.Identity) {
		if id.Issued.Equal(stale) {
			once.Do(func() {
				revs.Remember("1", "ann", cut)
				closed.Store(int64(h.Disconnect("1", "ann", cut, "token revoked by the server API")))
			})
		}
	}}
	h = hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler), Revocations: rr}, b, v)
	a := &apiHub{h: h, revs: revs, url: "ws" + strings.TrimPrefix(hubtest.Serve(t, h, b, h).URL, "http") + "/ws"}
	c := a.dial(t, tokenAt(t, "ann", cut.Add(time.Second), false))
	c.Send(map[string]any{"op": "refresh", "token": tokenAt(t, "ann", stale, false), "id": 1})
	c.ExpectClose(hub.CloseDisconnected)
	assert.Zero(t, closed.Load(), "the revocation found the fresh token in place")
}

// Presence ops repeated by a session are answered from one read of Redis
// shared for a moment, rather than each reading it again; the asker's own
// subscribe still shows at once.
func TestPresenceOpShared(t *testing.T) {
	srv := redistest.Start(t)
	c, err := broker.NewRedisClient(srv.URL(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	pres := presence.New(presence.Config{Client: c, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pres.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1"}})
	require.NoError(t, err)
	b := broker.NewMemory(broker.Config{HistorySize: 10, HistoryTTL: time.Minute})
	h := hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler), Presence: pres}, b, v)
	a := &apiHub{h: h, url: "ws" + strings.TrimPrefix(hubtest.Serve(t, h, b, h).URL, "http") + "/ws"}
	now := time.Now()
	ann := a.dial(t, tokenAt(t, "ann", now, false, "G1"))
	ann.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
	ann.ReadOp("subscribed")

	hgetall := func() int {
		info := srv.Client().Info(ctx, "commandstats").Val()
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hgetall:calls="); ok {
				n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
				return n
			}
		}
		return 0
	}
	before := hgetall()
	const asks = 20
	for range asks {
		ann.Send(map[string]any{"op": "presence", "channel": "group:G1"})
	}
	for range asks {
		assert.Equal(t, map[string]int{"ann": 1}, ann.ReadOp("presence").Users)
	}
	assert.LessOrEqual(t, hgetall()-before, 2, "one read of the channel's hash, maybe two across a second")

	bob := a.dial(t, tokenAt(t, "bob", now, false, "G1"))
	bob.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
	bob.ReadOp("subscribed")
	bob.Send(map[string]any{"op": "presence", "channel": "group:G1"})
	assert.Equal(t, map[string]int{"ann": 1, "bob": 1}, bob.ReadOp("presence").Users, "a subscribe on this node drops the kept answer")
}
