package control_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/internal/redistest"
)

func identity(user string, iat time.Time) *auth.Identity {
	return &auth.Identity{App: "1", User: user, Issued: iat}
}

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func revokedFor(revoked bool) hub.RevocationCheck {
	if revoked {
		return hub.TokenRevoked
	}
	return hub.TokenClear
}

// A revocation refuses the user's tokens issued before it, and those
// without iat; it is kept in Redis for every node until such tokens have
// expired; a later one is never shortened by an earlier one.
func TestRevocations(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	newStore := func() *control.Revocations {
		c, err := broker.NewRedisClient(srv.URL(), "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return control.NewRevocations(control.RevocationsConfig{Client: c, MaxTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	}
	a, b := newStore(), newStore()
	cut := time.Now().Truncate(time.Second)
	require.NoError(t, a.Store(ctx, "1", "ann", cut))
	for _, tc := range []struct {
		name string
		id   *auth.Identity
		want bool
	}{
		{"issued before", identity("ann", cut.Add(-time.Second)), true},
		{"no iat", identity("ann", time.Time{}), true},
		{"issued at", identity("ann", cut), false},
		{"issued after", identity("ann", cut.Add(time.Second)), false},
		{"another user", identity("bob", cut.Add(-time.Second)), false},
		{"another app", &auth.Identity{App: "2", User: "ann", Issued: cut.Add(-time.Second)}, false},
	} {
		assert.Equal(t, revokedFor(tc.want), b.Check(ctx, tc.id), "another node, from Redis: %s", tc.name)
		assert.Equal(t, revokedFor(tc.want), a.Check(ctx, tc.id), "this node: %s", tc.name)
	}
	key := "imhub:{1:user:ann}:revoked"
	ttl, err := rc.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Until(cut.Add(time.Hour)).Seconds(), ttl.Seconds(), 10, "kept until such tokens expire (issued_before + max TTL)")
	score, err := rc.ZScore(ctx, "imhub:revocations", "1:ann").Result()
	require.NoError(t, err, "indexed for nodes that start")
	assert.Equal(t, float64(cut.Unix()), score)

	require.NoError(t, b.Store(ctx, "1", "ann", cut.Add(-time.Minute)))
	assert.Equal(t, hub.TokenRevoked, newStore().Check(ctx, identity("ann", cut.Add(-time.Second))), "an earlier revocation does not shorten a later one")
	score, _ = rc.ZScore(ctx, "imhub:revocations", "1:ann").Result()
	assert.Equal(t, float64(cut.Unix()), score, "nor its index entry")

	require.NoError(t, a.Store(ctx, "1", "old", cut.Add(-2*time.Hour)))
	assert.Zero(t, rc.Exists(ctx, "imhub:{1:user:old}:revoked").Val(), "nothing to keep: such tokens have all expired")
	assert.Equal(t, redis.Nil, rc.ZScore(ctx, "imhub:revocations", "1:old").Err())
}

// While Redis does not answer, a node goes by the revocations it
// remembers, those it was told and those it read from Redis, and says
// that it could not check the others; it asks Redis again at most once a
// second, and as usual once Redis has answered.
func TestRevocationsRedisAway(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c, err := broker.NewRedisClient(srv.URL(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	clk := &clock{now: time.Now()}
	r := control.NewRevocations(control.RevocationsConfig{Client: c, MaxTTL: time.Hour, Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
	cut := clk.Now().Truncate(time.Second)
	stale := func(user string) *auth.Identity { return identity(user, cut.Add(-time.Second)) }
	require.NoError(t, srv.Client().Set(ctx, "imhub:{1:user:bob}:revoked", cut.Unix(), 0).Err())
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, stale("bob")), "read from Redis")
	r.Remember("1", "cid", cut)

	srv.Stop()
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, stale("cid")), "told")
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, stale("bob")), "read from Redis before, and remembered")
	assert.Equal(t, hub.TokenUnchecked, r.Check(ctx, stale("dan")))
	srv.Restart()
	require.NoError(t, srv.Client().Set(ctx, "imhub:{1:user:dan}:revoked", cut.Unix(), 0).Err())
	assert.Equal(t, hub.TokenUnchecked, r.Check(ctx, stale("dan")),
		"Redis not asked again yet: connects do not each wait on a Redis that just failed")
	clk.Add(time.Second)
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, stale("dan")), "asked again a second later")
	require.NoError(t, srv.Client().Set(ctx, "imhub:{1:user:eve}:revoked", cut.Unix(), 0).Err())
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, stale("eve")), "Redis answered: asked at every connect again")
}

// Without Redis a node answers by memory, and has nothing to leave
// unchecked.
func TestRevocationsInMemory(t *testing.T) {
	r := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour})
	cut := time.Now().Truncate(time.Second)
	require.NoError(t, r.Store(context.Background(), "1", "ann", cut))
	assert.Equal(t, hub.TokenRevoked, r.Check(context.Background(), identity("ann", cut.Add(-time.Second))))
	assert.Equal(t, hub.TokenClear, r.Check(context.Background(), identity("bob", cut.Add(-time.Second))))
	assert.True(t, r.Loaded(), "nothing to load")
	require.NoError(t, r.Load(context.Background()))
}

// Memory keeps every revocation until it lapses (issued_before + max TTL
// + leeway), however many there are below its bound: a hundred thousand
// and one are all kept.
func TestRevocationsKeptUntilLapse(t *testing.T) {
	clk := &clock{now: time.Now()}
	r := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour, Leeway: 5 * time.Second, Now: clk.Now})
	cut := clk.Now().Truncate(time.Second)
	const n = 100_001
	for i := range n {
		r.Remember("1", "u"+strconv.Itoa(i), cut)
	}
	kept, forgotten := r.Remembered()
	assert.Equal(t, n, kept)
	assert.Zero(t, forgotten)
	ctx := context.Background()
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, identity("u0", cut.Add(-time.Second))), "the first is kept")
	clk.Add(cut.Add(time.Hour + 4*time.Second).Sub(clk.Now()))
	assert.Equal(t, hub.TokenRevoked, r.Check(ctx, identity("u0", cut.Add(-time.Second))), "until it lapses")
	clk.Add(time.Second)
	assert.Equal(t, hub.TokenClear, r.Check(ctx, identity("u0", cut.Add(-time.Second))), "then gone")
	kept, forgotten = r.Remembered()
	assert.Zero(t, kept, "lapsed ones leave memory")
	assert.Zero(t, forgotten, "and are not counted as forgotten")
}

// Past MaxRemembered, the revocations that lapse soonest leave memory
// early, and are counted; a user revoked again is one entry, and a
// revocation that never lapses (no max TTL) stays one entry too.
func TestRevocationsBounded(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Now()}
	r := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour, MaxRemembered: 3, Now: clk.Now})
	cut := clk.Now().Truncate(time.Second)
	r.Remember("1", "a", cut.Add(-3*time.Minute))
	r.Remember("1", "b", cut.Add(-2*time.Minute))
	r.Remember("1", "c", cut.Add(-time.Minute))
	r.Remember("1", "c", cut.Add(-2*time.Minute)) // earlier: changes nothing
	kept, forgotten := r.Remembered()
	assert.Equal(t, 3, kept)
	assert.Zero(t, forgotten)
	r.Remember("1", "d", cut)
	kept, forgotten = r.Remembered()
	assert.Equal(t, 3, kept)
	assert.Equal(t, uint64(1), forgotten)
	assert.Equal(t, hub.TokenClear, r.Check(ctx, identity("a", cut.Add(-time.Hour))), "the soonest to lapse went")
	for _, u := range []string{"b", "c", "d"} {
		assert.Equal(t, hub.TokenRevoked, r.Check(ctx, identity(u, cut.Add(-time.Hour))), u)
	}

	// A user revoked again and again, each a revocation that lapses later,
	// leaves records of the earlier ones behind: they must not push other
	// users' revocations out.
	again := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour, MaxRemembered: 3, Now: clk.Now})
	again.Remember("1", "a", cut.Add(-3*time.Minute))
	again.Remember("1", "b", cut.Add(-2*time.Minute))
	for i := range 200 {
		again.Remember("1", "c", cut.Add(time.Duration(i-100)*time.Second))
	}
	kept, forgotten = again.Remembered()
	assert.Equal(t, 3, kept)
	assert.Zero(t, forgotten)
	for _, u := range []string{"a", "b", "c"} {
		assert.Equal(t, hub.TokenRevoked, again.Check(ctx, identity(u, cut.Add(-time.Hour))), u)
	}

	forever := control.NewRevocations(control.RevocationsConfig{MaxRemembered: 2})
	for i := range 5 {
		forever.Remember("1", "ann", cut.Add(time.Duration(i)*time.Second))
	}
	forever.Remember("1", "bob", cut)
	kept, forgotten = forever.Remembered()
	assert.Equal(t, 2, kept)
	assert.Zero(t, forgotten)
	assert.Equal(t, hub.TokenRevoked, forever.Check(ctx, identity("ann", cut.Add(3*time.Second))), "the latest of ann's")
}

// What a remembered revocation costs in memory, its app and user strings
// included as a command brings them: the figure DefaultMaxRemembered's
// comment and the docs quote, reported as B/revocation
// (go test -run '^$' -bench MemoryPerRevocation ./hub/control/).
func BenchmarkMemoryPerRevocation(b *testing.B) {
	const n = 200_000
	cut := time.Now().Truncate(time.Second)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour})
		for i := range n {
			// A 15-byte user id, an IM UserID's usual size, and the app,
			// each its own string.
			r.Remember(strings.Clone("1400000000"), fmt.Sprintf("user-%010d", i), cut)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/revocation")
		runtime.KeepAlive(r)
	}
}

// A node that starts reads every revocation in force from Redis's index,
// and then judges by them while Redis is away; those that have lapsed are
// dropped from the index.
func TestRevocationsLoad(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	newStore := func() *control.Revocations {
		c, err := broker.NewRedisClient(srv.URL(), "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return control.NewRevocations(control.RevocationsConfig{Client: c, MaxTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	}
	a := newStore()
	cut := time.Now().Truncate(time.Second)
	const n = 2500 // several ZSCAN pages
	for i := range n {
		require.NoError(t, a.Store(ctx, "1", "u"+strconv.Itoa(i), cut))
	}
	require.NoError(t, rc.ZAdd(ctx, "imhub:revocations", redis.Z{Score: float64(cut.Add(-2 * time.Hour).Unix()), Member: "1:lapsed"}).Err())

	b := newStore()
	assert.False(t, b.Loaded())
	require.NoError(t, b.Load(ctx))
	assert.True(t, b.Loaded())
	kept, _ := b.Remembered()
	assert.Equal(t, n, kept)
	assert.Equal(t, redis.Nil, rc.ZScore(ctx, "imhub:revocations", "1:lapsed").Err(), "lapsed: dropped")

	srv.Stop()
	assert.Equal(t, hub.TokenRevoked, b.Check(ctx, identity("u1234", cut.Add(-time.Second))))
	assert.Error(t, newStore().Load(ctx), "Redis away: not loaded")
}

// A command published on one node reaches every node's handler, through
// one Redis or a Redis Cluster; a gathered one answers the sum of the
// handlers' counts.
func TestBus(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testBus(t, redistest.Start(t).URL()) })
	t.Run("cluster", func(t *testing.T) { testBus(t, redistest.StartCluster(t, 3).URL()) })
}

func testBus(t *testing.T, url string) {
	var mu sync.Mutex
	got := map[int][]control.Command{}
	var buses []*control.Bus
	for i := range 3 {
		c, err := broker.NewRedisClient(url, "")
		require.NoError(t, err)
		b := control.NewBus(control.BusConfig{Client: c}, func(cmd control.Command) int {
			mu.Lock()
			got[i] = append(got[i], cmd)
			mu.Unlock()
			return i + 1 // 1+2+3 sessions closed
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = b.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; _ = c.Close() })
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, b.Ready(rctx))
		rcancel()
		buses = append(buses, b)
	}
	cmd := control.Command{Op: control.OpRevoke, App: "1", User: "ann", Before: 1700000000}
	require.NoError(t, buses[1].Publish(context.Background(), cmd))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[0]) == 1 && len(got[1]) == 1 && len(got[2]) == 1
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, cmd, got[2][0])
	mu.Unlock()

	for _, b := range buses {
		n, err := b.Gather(context.Background(), cmd)
		require.NoError(t, err)
		assert.Equal(t, 6, n, "each node's count, summed")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, got[0], 4, "every gathered command was handled")
}

// Without Redis a gathered command is handled at once, and answers the
// handler's count.
func TestBusGatherInProcess(t *testing.T) {
	var got []control.Command
	b := control.NewBus(control.BusConfig{}, func(c control.Command) int { got = append(got, c); return 2 })
	cmd := control.Command{Op: control.OpRevoke, App: "1", User: "ann", Before: 1700000000}
	n, err := b.Gather(context.Background(), cmd)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []control.Command{cmd}, got)
}

// Every subscription, the first included, is followed by a call of
// Subscribed, which runs beside the delivery of commands rather than
// holding it up; one that fails is called again.
func TestBusSubscribed(t *testing.T) {
	srv := redistest.Start(t)
	c, err := broker.NewRedisClient(srv.URL(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	calls := make(chan struct{}, 1)
	answer := make(chan error)
	got := make(chan control.Command, 1)
	b := control.NewBus(control.BusConfig{Client: c, Logger: slog.New(slog.DiscardHandler), Subscribed: func(ctx context.Context) error {
		calls <- struct{}{}
		select {
		case err := <-answer:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}}, func(cmd control.Command) int { got <- cmd; return 0 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-rctx.Done():
			t.Fatal(what)
		}
	}
	receive := func(user string) {
		t.Helper()
		require.NoError(t, b.Publish(ctx, control.Command{Op: control.OpDisconnect, App: "1", User: user}))
		select {
		case cmd := <-got:
			assert.Equal(t, user, cmd.User)
		case <-rctx.Done():
			t.Fatal("command not delivered while Subscribed runs")
		}
	}
	require.NoError(t, b.Ready(rctx))
	wait(calls, "Subscribed not called after the first subscription")
	receive("u1") // Subscribed is still running
	answer <- errors.New("redis away")
	wait(calls, "Subscribed not called again after it failed")
	answer <- nil

	require.NoError(t, srv.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	wait(calls, "Subscribed not called after the subscription connection was killed")
	receive("u2")
	answer <- nil
}

// CheckAll answers for many sessions at once, from memory and from Redis
// (one MGET; on a cluster, GETs by shard), and fails when Redis cannot be
// read, saying which tokens it could not check.
func TestCheckAll(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		testCheckAll(t, srv.URL(), srv.Stop)
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t, 3)
		testCheckAll(t, cl.URL(), func() {
			for _, n := range cl.Nodes {
				n.Stop()
			}
		})
	})
}

func testCheckAll(t *testing.T, url string, stop func()) {
	ctx := context.Background()
	newStore := func() *control.Revocations {
		c, err := broker.NewRedisClient(url, "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return control.NewRevocations(control.RevocationsConfig{Client: c, MaxTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	}
	a, b := newStore(), newStore()
	cut := time.Now().Truncate(time.Second)
	var ids []*auth.Identity
	var want []hub.RevocationCheck
	for i := range 50 {
		user := fmt.Sprintf("u%d", i)
		if i%5 == 0 {
			require.NoError(t, a.Store(ctx, "1", user, cut))
		}
		ids = append(ids, identity(user, cut.Add(-time.Second)), identity(user, cut.Add(time.Second)))
		want = append(want, revokedFor(i%5 == 0), hub.TokenClear)
	}
	b.Remember("1", "mem", cut)
	ids = append(ids, identity("mem", cut.Add(-time.Second)))
	want = append(want, hub.TokenRevoked)
	got, err := b.CheckAll(ctx, ids)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	stop()
	c := newStore()
	c.Remember("1", "mem", cut)
	got, err = c.CheckAll(ctx, ids)
	require.Error(t, err, "Redis away: not every token could be checked")
	assert.Equal(t, hub.TokenRevoked, got[len(got)-1], "what memory holds is answered all the same")
	assert.Equal(t, hub.TokenUnchecked, got[0], "the rest are unchecked")
}
