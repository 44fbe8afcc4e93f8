package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

func newWaitingRedis(t *testing.T, url string, wait broker.WaitConfig) *broker.Redis {
	t.Helper()
	b, err := broker.NewRedis(broker.RedisConfig{Config: brokertest.DefaultConfig, URL: url, Wait: wait,
		PingInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// With a replica to wait for, a publication is acknowledged once the
// replica holds it. While the replica does not answer, publishing fails
// as not replicated (and is counted), though the primary has it; a retry
// from a node whose connections never wrote it is not taken for confirmed
// because it finds a duplicate; once the replica is back, the retry is
// acknowledged as that duplicate. Without waiting, the same publication
// is acknowledged at once.
func TestRedisWaitsForAReplica(t *testing.T) {
	primary, replica := redistest.StartReplicated(t, redistest.Options{})
	url := "redis://" + primary.Addr()
	auto := broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 100 * time.Millisecond}
	b := newWaitingRedis(t, url, auto)
	rec := brokertest.Start(t, b)
	waitReady(t, b, true)
	ctx := context.Background()
	require.NoError(t, b.Subscribe(ctx, "1", "group:W"))

	_, err := b.Publish(ctx, pub("m1", "group:W"))
	require.NoError(t, err, "the replica confirms")
	assert.Zero(t, b.Unreplicated())
	// Another node, connected now: Redis counts what its connection must
	// wait for from when it connected, or its last write.
	other := newWaitingRedis(t, url, auto)
	_, err = other.History(ctx, "1", "group:W", nil)
	require.NoError(t, err)

	replica.Pause()
	_, err = b.Publish(ctx, pub("m2", "group:W", "app"))
	require.ErrorIs(t, err, broker.ErrUnavailable)
	require.ErrorIs(t, err, broker.ErrNotReplicated)
	assert.Equal(t, uint64(1), b.Unreplicated(), "counted")
	got := rec.WaitCount(t, 2)
	assert.Equal(t, "m2", string(got[1].Data), "delivered all the same: the primary has it")

	_, err = other.Publish(ctx, pub("m2", "group:W", "app"))
	require.ErrorIs(t, err, broker.ErrNotReplicated, "a retry that finds a duplicate still waits for the first write")
	_, err = b.Publish(ctx, pub("m2", "group:W", "app"))
	require.ErrorIs(t, err, broker.ErrNotReplicated)

	off := newWaitingRedis(t, url, broker.WaitConfig{})
	_, err = off.Publish(ctx, pub("m3", "group:W"))
	require.NoError(t, err, "without waiting, acknowledged at once")

	replica.Resume()
	res, err := other.Publish(ctx, pub("m2", "group:W", "app"))
	require.NoError(t, err, "confirmed once the replica is back")
	assert.True(t, res.Duplicate)
	require.Len(t, res.Positions, 2)
	assert.Equal(t, uint64(2), res.Positions[0].Offset, "the position of the first publication")
	assert.NotEmpty(t, res.Positions[0].Tag)
}

// A primary without a replica is not waited on with WaitAuto; told to
// wait for one, every publication fails as not replicated.
func TestRedisWaitWithoutAReplica(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	auto := newWaitingRedis(t, srv.URL(), broker.WaitConfig{Replicas: broker.WaitAuto})
	_, err := auto.Publish(ctx, pub("a1", "group:N"))
	require.NoError(t, err)
	assert.Zero(t, auto.Unreplicated())

	one := newWaitingRedis(t, srv.URL(), broker.WaitConfig{Replicas: 1, Timeout: 20 * time.Millisecond})
	_, err = one.Publish(ctx, pub("a2", "group:N"))
	require.ErrorIs(t, err, broker.ErrNotReplicated)
	assert.Contains(t, err.Error(), "0 of 1 replicas")
}

// A replica that comes online between two looks at the primary is found
// by the publication itself: one the broker did not wait for, the primary
// having had no replica when last asked, is not acknowledged, since the
// replica may not have it; its retry waits for the replica.
func TestRedisWaitsForAReplicaJustOnline(t *testing.T) {
	po := redistest.Options{Port: redistest.FreePort(t), Conf: []string{"repl-diskless-sync-delay 0"}}
	primary := redistest.StartWith(t, po)
	// Not run: the broker asks the primary about its replicas at its
	// first publication and never again, as if the next look were far
	// off; only publications see the replica.
	b := newWaitingRedis(t, primary.URL(), broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 100 * time.Millisecond})
	ctx := context.Background()
	_, err := b.Publish(ctx, pub("j1", "group:J"))
	require.NoError(t, err, "no replica to wait for")
	n, asked := b.ReplicasOnlineForTest("")
	require.True(t, asked)
	require.Zero(t, n)

	port := strings.TrimPrefix(primary.Addr(), "127.0.0.1:")
	replica := redistest.StartWith(t, redistest.Options{Port: redistest.FreePort(t), Conf: []string{"replicaof 127.0.0.1 " + port}})
	replica.WaitSynced()
	primary.WaitReplicaOnline()
	replica.Pause()

	_, err = b.Publish(ctx, pub("j2", "group:J"))
	require.ErrorIs(t, err, broker.ErrUnavailable)
	require.ErrorIs(t, err, broker.ErrNotReplicated, "published without WAIT, to a primary that has a replica now")
	assert.Equal(t, uint64(1), b.Unreplicated())
	n, _ = b.ReplicasOnlineForTest("")
	assert.Equal(t, 1, n, "the replica is recorded")
	_, err = b.Publish(ctx, pub("j2", "group:J"))
	require.ErrorIs(t, err, broker.ErrNotReplicated)
	assert.Contains(t, err.Error(), "0 of 1 replicas", "the retry waits")

	replica.Resume()
	res, err := b.Publish(ctx, pub("j2", "group:J"))
	require.NoError(t, err, "confirmed once the replica is back")
	assert.True(t, res.Duplicate)
}

// On a cluster, each primary's publications wait for its own replica: one
// whose replica stalls fails as not replicated, the others go on.
func TestRedisClusterWaitsForItsShardsReplica(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Primaries: 3, Replicas: 1})
	b := newWaitingRedis(t, cl.URL(), broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 100 * time.Millisecond})
	brokertest.Start(t, b)
	waitReady(t, b, true)
	ctx := context.Background()
	stalled := cl.Owner(b.StreamKeyForTest("1", "group:S"))
	other := ""
	for i := range 100 {
		ch := fmt.Sprint("group:O", i)
		if cl.Owner(b.StreamKeyForTest("1", ch)) != stalled {
			other = ch
			break
		}
	}
	require.NotEmpty(t, other)
	stalled.WaitReplicaOnlineFor(b.StreamKeyForTest("1", "group:S") + ":test")
	// The other shard's replica too: one still syncing confirms nothing.
	otherOwner := cl.Owner(b.StreamKeyForTest("1", other))
	otherOwner.WaitReplicaOnlineFor(b.StreamKeyForTest("1", other) + ":test")
	// And the broker must have seen them online. A primary lists a replica
	// as online only once it has reaped the child that streamed the data
	// set, up to a serverCron tick after the replica's link is up; the
	// broker asks every PingInterval, and until it has seen a replica,
	// WaitAuto waits for none on that primary.
	for _, p := range []*redistest.Server{stalled, otherOwner} {
		require.Eventually(t, func() bool {
			n, _ := b.ReplicasOnlineForTest(p.Addr())
			return n == 1
		}, 15*time.Second, 10*time.Millisecond, "the broker never saw the replica of %s online", p.Addr())
	}

	_, err := b.Publish(ctx, pub("c1", "group:S", other))
	require.NoError(t, err)
	replica := cl.ReplicaOf(stalled)
	replica.Pause()
	_, err = b.Publish(ctx, pub("c2", other))
	require.NoError(t, err, "another shard's replica confirms")
	_, err = b.Publish(ctx, pub("c3", "group:S", other))
	require.ErrorIs(t, err, broker.ErrNotReplicated)
	assert.Contains(t, err.Error(), "group:S")
	replica.Resume()
	res, err := b.Publish(ctx, pub("c3", "group:S", other))
	require.NoError(t, err)
	assert.True(t, res.Duplicate, "both channels had it")
}
