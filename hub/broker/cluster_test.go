package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

func TestRedisClusterConformance(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	brokertest.Run(t, func(t *testing.T, cfg broker.Config) broker.Broker {
		b := newRedis(t, cl.URL(), cfg)
		require.NoError(t, b.FlushForTest(context.Background()))
		return b
	}, redisLeftovers)
}

// Channels spread over the shards: each publication is one SPUBLISH on the
// shard that serves its channel, never a cluster-wide PUBLISH, and each
// shard carries the sharded subscriptions of its own channels.
//
// The brokers log in as an ACL user limited to imhub's keys and channels.
func TestRedisClusterSpreadsChannels(t *testing.T) {
	cl := redistest.StartCluster(t, 3, "user imhub on >s3cret resetchannels &imhub:* ~imhub:* +@all -@dangerous")
	cfg := brokertest.DefaultConfig
	url := cl.UserURL("imhub:s3cret")
	a, b := newRedis(t, url, cfg), newRedis(t, url, cfg)
	recB := brokertest.Start(t, b)
	brokertest.Start(t, a)
	ctx := context.Background()

	const channels = 30
	names := make([]string, channels)
	for i := range names {
		names[i] = fmt.Sprintf("group:G%d", i)
		require.NoError(t, b.Subscribe(ctx, "1", names[i]))
	}
	perShard := map[*redistest.Server]int{}
	for i, ch := range names {
		res, err := a.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("m", i), Channels: []string{ch}, Data: []byte(ch)})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), res.Positions[0].Offset)
		perShard[cl.Owner(a.StreamKeyForTest("1", ch))]++
	}
	// One message for channels on different shards: one pipeline, every
	// channel gets it once, and its retry is a duplicate everywhere.
	multi := broker.Message{App: "1", ID: "multi", Channels: names[:6], Data: []byte("multi")}
	res, err := a.Publish(ctx, multi)
	require.NoError(t, err)
	require.Len(t, res.Positions, 6)
	for i, ch := range multi.Channels {
		assert.Equal(t, uint64(2), res.Positions[i].Offset, ch)
		perShard[cl.Owner(a.StreamKeyForTest("1", ch))]++
	}
	dup, err := a.Publish(ctx, multi)
	require.NoError(t, err)
	assert.True(t, dup.Duplicate)

	pubs := recB.WaitCount(t, channels+6)
	got := map[string][]string{}
	for _, p := range pubs {
		got[p.Channel] = append(got[p.Channel], string(p.Data))
	}
	for i, ch := range names {
		want := []string{ch}
		if i < 6 {
			want = append(want, "multi")
		}
		assert.Equal(t, want, got[ch])
	}

	require.Len(t, perShard, 3, "30 channels land on every one of 3 shards")
	for _, s := range cl.Nodes {
		assert.Equal(t, perShard[s], redistest.CommandCalls(t, s, "spublish"), "SPUBLISHes on %s", s.Addr())
		assert.Zero(t, redistest.CommandCalls(t, s, "publish"), "no cluster-wide PUBLISH on %s", s.Addr())
		shardChans, err := s.Client().PubSubShardChannels(ctx, "*").Result()
		require.NoError(t, err)
		for _, name := range shardChans {
			assert.Equal(t, s, cl.Owner(name), "%s carries the subscription of a channel it does not serve", s.Addr())
		}
		assert.NotEmpty(t, shardChans, "%s carries its channels' subscriptions", s.Addr())
	}
}

// A channel's slot moves to another shard (resharding): the cluster drops
// the sharded subscription, the broker subscribes again on the new shard,
// tells the handler to repair, and the channel's offsets continue.
func TestRedisClusterSlotMove(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	cfg := brokertest.DefaultConfig
	b := newRedis(t, cl.URL(), cfg)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	require.NoError(t, b.Subscribe(ctx, "1", "group:M"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:M"}, Data: []byte("1")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)

	key := b.StreamKeyForTest("1", "group:M")
	from := cl.Owner(key)
	to := cl.Nodes[0]
	if to == from {
		to = cl.Nodes[1]
	}
	cl.MoveSlot(key, to)
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 20*time.Second, 10*time.Millisecond,
		"the handler is told to repair after the move")

	res, err := b.Publish(ctx, broker.Message{App: "1", ID: "2", Channels: []string{"group:M"}, Data: []byte("2")})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Positions[0].Offset, "the keys moved with the slot")
	pubs := rec.WaitCount(t, 2)
	assert.Equal(t, "2", string(pubs[1].Data), "subscribed again on the new shard")
	assert.Equal(t, pubs[0].Epoch, pubs[1].Epoch)
	ch, err := to.Client().PubSubShardChannels(ctx, "*").Result()
	require.NoError(t, err)
	assert.Contains(t, ch, key)
	require.NoError(t, b.Ready())
}

// A shard restarts (empty, as without persistence): the broker's
// connection to it comes back with every channel of that shard subscribed
// again, one SSUBSCRIBE per channel, since a cluster refuses one command
// for channels of several slots.
func TestRedisClusterShardRestart(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	b := newRedis(t, cl.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	down := cl.Nodes[1]
	var onDown []string
	for i := range 30 {
		ch := fmt.Sprintf("group:R%d", i)
		require.NoError(t, b.Subscribe(ctx, "1", ch))
		if cl.Owner(b.StreamKeyForTest("1", ch)) == down {
			onDown = append(onDown, ch)
		}
	}
	require.GreaterOrEqual(t, len(onDown), 2, "several channels on the shard that restarts")
	waitReady(t, b, true)

	down.Stop()
	cl.WaitState("fail")
	waitReady(t, b, false)
	down.Restart()
	cl.WaitOK()
	waitReady(t, b, true)
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 20*time.Second, 10*time.Millisecond)
	for i, ch := range onDown {
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("after", i), Channels: []string{ch}, Data: []byte(ch)})
		require.NoError(t, err)
	}
	pubs := rec.WaitCount(t, len(onDown))
	got := make([]string, len(pubs))
	for i, p := range pubs {
		got[i] = p.Channel
	}
	assert.ElementsMatch(t, onDown, got, "every channel of the restarted shard is live again")
}

// A slot moves away and back: each time the channel is subscribed again
// where its slot is, never left refused on a shard that no longer (or not
// yet) serves it; and a channel unsubscribed right after its slot moved is
// let go at once, its idle connection closed.
func TestRedisClusterSlotMovesBack(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	b := newRedis(t, cl.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	require.NoError(t, b.Subscribe(ctx, "1", "group:B"))
	key := b.StreamKeyForTest("1", "group:B")
	home := cl.Owner(key)
	away := cl.Nodes[0]
	if away == home {
		away = cl.Nodes[1]
	}
	publish := func(id string) {
		t.Helper()
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: id, Channels: []string{"group:B"}, Data: []byte(id)})
		require.NoError(t, err)
		rec.WaitFor(t, 10*time.Second, "publication "+id, func(ps []broker.Publication) bool {
			return len(ps) > 0 && string(ps[len(ps)-1].Data) == id
		})
	}
	// carried reports whether only the shard to carries the channel.
	carried := func(to *redistest.Server) bool {
		for _, s := range cl.Nodes {
			ch, err := s.Client().PubSubShardChannels(ctx, "*").Result()
			if err != nil || (len(ch) == 1) != (s == to) {
				return false
			}
		}
		return true
	}
	publish("1")
	for i, to := range []*redistest.Server{away, home, away} {
		before := rec.Reconnects()
		cl.MoveSlot(key, to)
		require.Eventually(t, func() bool { return carried(to) && rec.Reconnects() > before }, 20*time.Second, 10*time.Millisecond,
			"move %d: subscribed on the new shard only, and a repair asked for", i)
		publish(fmt.Sprint("after-move-", i))
	}

	// Subscribe another channel on the same slot's shard, move the slot,
	// and unsubscribe at once: no wait for a connection being closed.
	require.NoError(t, b.Unsubscribe(ctx, "1", "group:B"))
	require.NoError(t, b.Subscribe(ctx, "1", "group:B"))
	cl.MoveSlot(key, home)
	uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	require.NoError(t, b.Unsubscribe(uctx, "1", "group:B"))
	require.Eventually(t, func() bool { return carried(nil) }, 10*time.Second, 20*time.Millisecond,
		"no shard carries the channel any more")
	require.NoError(t, b.Ready())
}

// rediss+cluster://: every node is checked against the private CA, under
// its own address, and the cluster works as without TLS.
func TestRedisClusterTLS(t *testing.T) {
	cl := redistest.StartTLSCluster(t, 3)
	b, err := broker.NewRedis(broker.RedisConfig{Config: brokertest.DefaultConfig, URL: cl.URL(), CAFile: cl.CAFile,
		PingInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	rec := brokertest.Start(t, b)
	waitReady(t, b, true)
	ctx := context.Background()
	shards := map[*redistest.Server]bool{}
	for i := range 12 {
		ch := fmt.Sprintf("group:T%d", i)
		require.NoError(t, b.Subscribe(ctx, "1", ch))
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint(i), Channels: []string{ch}, Data: []byte(ch)})
		require.NoError(t, err)
		shards[cl.Owner(b.StreamKeyForTest("1", ch))] = true
	}
	rec.WaitCount(t, 12)
	assert.Len(t, shards, 3, "every node was reached over TLS")
}

// historyAtReconnect is a handler that reads a channel's history each time
// a repair is asked for, as the hub's repair does at once, and records
// whether the read worked.
type historyAtReconnect struct {
	*brokertest.Recorder
	b       *broker.Redis
	channel string
	mu      sync.Mutex
	reads   []error
}

func (h *historyAtReconnect) HandleReconnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := h.b.History(ctx, "1", h.channel, &broker.Position{})
	h.mu.Lock()
	h.reads = append(h.reads, err)
	h.mu.Unlock()
	h.Recorder.HandleReconnect()
}

func (h *historyAtReconnect) results() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reads)
}

// A primary killed and started again at once takes the subscription back
// within moments, but refuses reads and writes for about two seconds
// more, until it has rejoined the cluster. The repair asked for at once
// fails then; it is asked for again the moment the primary serves, and
// that one reads history, also when publications flow from that moment
// on and the connection is never quiet.
func TestRedisClusterRepairWhenPrimaryServes(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Primaries: 3, Persist: true})
	b := newRedis(t, cl.URL(), brokertest.DefaultConfig)
	h := &historyAtReconnect{Recorder: brokertest.NewRecorder(), b: b, channel: "group:W"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	require.NoError(t, b.Subscribe(ctx, "1", "group:W"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:W"}, Data: []byte("1")})
	require.NoError(t, err)
	h.WaitCount(t, 1)

	// Publications every 5 ms, refused until the primary serves, then
	// flowing: the connection is never quiet once it serves.
	pubCtx, stopPub := context.WithCancel(ctx)
	var pubs sync.WaitGroup
	pubs.Go(func() {
		for i := 0; pubCtx.Err() == nil; i++ {
			_, _ = b.Publish(pubCtx, broker.Message{App: "1", ID: fmt.Sprint("flow", i), Channels: []string{"group:W"}, Data: []byte("flow")})
			time.Sleep(5 * time.Millisecond)
		}
	})
	defer func() { stopPub(); pubs.Wait() }()
	owner := cl.Owner(b.StreamKeyForTest("1", "group:W"))
	owner.Kill()
	owner.Restart()
	require.Eventually(t, func() bool {
		r := h.results()
		return len(r) > 0 && r[len(r)-1] == nil
	}, 20*time.Second, 10*time.Millisecond, "a repair is asked for when history can be read: %v", h.results())
	stopPub()
	pubs.Wait()
	assert.GreaterOrEqual(t, len(h.results()), 2, "the first repair came before the primary served, and failed: %v", h.results())
	_, err = b.Publish(ctx, broker.Message{App: "1", ID: "2", Channels: []string{"group:W"}, Data: []byte("2")})
	require.NoError(t, err)
	h.WaitFor(t, 10*time.Second, "the publication after the flow", func(ps []broker.Publication) bool {
		return string(ps[len(ps)-1].Data) == "2"
	})
}

// A script keeps a cluster primary busy for over a second: every command
// the broker sends it meanwhile is refused with BUSY, each of its
// channels' SSUBSCRIBEs apart (one per channel: a cluster refuses one for
// several slots). Each batch is sent again once its answers are in, not
// once for each refusal: when the script ends, the subscription is back
// within moments, not after working through a pile of batches.
func TestRedisClusterBusyPrimary(t *testing.T) {
	cl := redistest.StartCluster(t, 3, "busy-reply-threshold 100")
	b := newRedis(t, cl.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	busyNode := cl.Nodes[0]
	var mine []string
	for i := 0; len(mine) < 50; i++ {
		ch := fmt.Sprintf("group:B%d", i)
		if cl.Owner(b.StreamKeyForTest("1", ch)) == busyNode {
			require.NoError(t, b.Subscribe(ctx, "1", ch))
			mine = append(mine, ch)
		}
	}
	require.NoError(t, busyNode.Client().Eval(ctx, `local t = redis.call('TIME') local s = t[1] * 1000000 + t[2]
		while true do t = redis.call('TIME') if t[1] * 1000000 + t[2] - s > 1500000 then break end end
		return 1`, nil).Err(), "the busy script ran")
	require.Eventually(t, func() bool {
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("after-", time.Now().UnixNano()), Channels: []string{mine[7]}, Data: []byte("after")})
		if err != nil {
			return false
		}
		for _, p := range rec.Publications() {
			if string(p.Data) == "after" {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "publications arrive again once the script is done")
}
