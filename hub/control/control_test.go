package control_test

import (
	"context"
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

// The subscription lost and made again, the bus says so: commands sent in
// between were missed.
func TestBusResubscribed(t *testing.T) {
	srv := redistest.Start(t)
	c, err := broker.NewRedisClient(srv.URL(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	again := make(chan struct{}, 1)
	got := make(chan control.Command, 1)
	b := control.NewBus(control.BusConfig{Client: c, Resubscribed: func() { again <- struct{}{} }}, func(cmd control.Command) { got <- cmd })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	require.NoError(t, b.Ready(rctx))
	select {
	case <-again:
		t.Fatal("Resubscribed on the first subscription")
	default:
	}
	require.NoError(t, srv.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	select {
	case <-again:
	case <-rctx.Done():
		t.Fatal("Resubscribed not called after the subscription connection was killed")
	}
	require.NoError(t, b.Publish(ctx, control.Command{Op: control.OpDisconnect, App: "1", User: "u"}))
	select {
	case cmd := <-got:
		assert.Equal(t, "u", cmd.User, "delivered again")
	case <-rctx.Done():
		t.Fatal("no command after the resubscription")
	}
}
