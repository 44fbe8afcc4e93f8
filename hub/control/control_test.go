package control_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/internal/redistest"
)

func identity(user string, iat time.Time) *auth.Identity {
	return &auth.Identity{App: "1", User: user, Issued: iat}
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
		assert.Equal(t, tc.want, b.Revoked(ctx, tc.id), "another node, from Redis: %s", tc.name)
		assert.Equal(t, tc.want, a.Revoked(ctx, tc.id), "this node: %s", tc.name)
	}
	key := "imhub:{1:user:ann}:revoked"
	ttl, err := rc.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Until(cut.Add(time.Hour)).Seconds(), ttl.Seconds(), 10, "kept until such tokens expire (issued_before + max TTL)")

	require.NoError(t, b.Store(ctx, "1", "ann", cut.Add(-time.Minute)))
	assert.True(t, newStore().Revoked(ctx, identity("ann", cut.Add(-time.Second))), "an earlier revocation does not shorten a later one")

	require.NoError(t, a.Store(ctx, "1", "old", cut.Add(-2*time.Hour)))
	assert.Zero(t, rc.Exists(ctx, "imhub:{1:user:old}:revoked").Val(), "nothing to keep: such tokens have all expired")

	// Redis away: a node goes by what it remembers, and lets others in;
	// after one failed read it does not wait on Redis again for a while.
	b.Remember("1", "cid", cut)
	srv.Stop()
	assert.True(t, b.Revoked(ctx, identity("cid", cut.Add(-time.Second))))
	assert.False(t, b.Revoked(ctx, identity("dan", cut.Add(-time.Second))))
	srv.Restart()
	require.NoError(t, srv.Client().Set(ctx, "imhub:{1:user:dan}:revoked", cut.Unix(), 0).Err())
	assert.False(t, b.Revoked(ctx, identity("dan", cut.Add(-time.Second))),
		"Redis not asked again yet: connects do not each wait on a Redis that just failed")
}

// A command published on one node reaches every node's handler, through
// one Redis or a Redis Cluster.
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
		b := control.NewBus(control.BusConfig{Client: c}, func(cmd control.Command) {
			mu.Lock()
			got[i] = append(got[i], cmd)
			mu.Unlock()
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
	defer mu.Unlock()
	assert.Equal(t, cmd, got[2][0])
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
	}}, func(cmd control.Command) { got <- cmd })
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

// RevokedAll answers for many sessions at once, from memory and from Redis
// (one MGET; on a cluster, GETs by shard), and fails rather than letting
// tokens in when Redis cannot be read, keeping what it found.
func TestRevokedAll(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		testRevokedAll(t, srv.URL(), srv.Stop)
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t, 3)
		testRevokedAll(t, cl.URL(), func() {
			for _, n := range cl.Nodes {
				n.Stop()
			}
		})
	})
}

func testRevokedAll(t *testing.T, url string, stop func()) {
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
	var want []bool
	for i := range 50 {
		user := fmt.Sprintf("u%d", i)
		if i%5 == 0 {
			require.NoError(t, a.Store(ctx, "1", user, cut))
		}
		ids = append(ids, identity(user, cut.Add(-time.Second)), identity(user, cut.Add(time.Second)))
		want = append(want, i%5 == 0, false)
	}
	b.Remember("1", "mem", cut)
	ids = append(ids, identity("mem", cut.Add(-time.Second)))
	want = append(want, true)
	got, err := b.RevokedAll(ctx, ids)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	stop()
	c := newStore()
	c.Remember("1", "mem", cut)
	got, err = c.RevokedAll(ctx, ids)
	require.Error(t, err, "Redis away: not every token could be checked")
	assert.True(t, got[len(got)-1], "what memory holds is answered all the same")
}
