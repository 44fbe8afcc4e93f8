package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

func newRedis(t *testing.T, url string, cfg broker.Config) *broker.Redis {
	t.Helper()
	b, err := broker.NewRedis(broker.RedisConfig{Config: cfg, URL: url, PingInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T, cfg broker.Config) broker.Broker {
		// Each test gets an empty data set, so offsets start from 1.
		flush(t, srv)
		return newRedis(t, srv.URL(), cfg)
	}, redisLeftovers)
}

// redisLeftovers lists the keys of b's Redis with their TTLs.
func redisLeftovers(t *testing.T, b broker.Broker) []string {
	keys, err := b.(*broker.Redis).KeysForTest(context.Background())
	require.NoError(t, err)
	var out []string
	for k, ttl := range keys {
		out = append(out, fmt.Sprintf("%s (ttl %v)", k, ttl))
	}
	return out
}

func flush(t *testing.T, srv *redistest.Server) {
	t.Helper()
	b := newRedis(t, srv.URL(), broker.Config{})
	require.NoError(t, b.FlushForTest(context.Background()))
}

func waitReady(t *testing.T, b broker.Broker, want bool) {
	t.Helper()
	require.Eventually(t, func() bool { return (b.Ready() == nil) == want }, 15*time.Second, 10*time.Millisecond,
		"broker readiness never became %v", want)
}

// Two brokers on one Redis are two nodes: what one publishes the other
// delivers, with the same positions.
func TestRedisNodesShareChannels(t *testing.T) {
	srv := redistest.Start(t)
	cfg := brokertest.DefaultConfig
	a, b := newRedis(t, srv.URL(), cfg), newRedis(t, srv.URL(), cfg)
	recA, recB := brokertest.Start(t, a), brokertest.Start(t, b)
	ctx := context.Background()
	require.NoError(t, a.Subscribe(ctx, "1", "group:G"))
	require.NoError(t, b.Subscribe(ctx, "1", "group:G"))

	r1, err := a.Publish(ctx, broker.Message{App: "1", ID: "x", Channels: []string{"group:G"}, Data: []byte("one")})
	require.NoError(t, err)
	r2, err := b.Publish(ctx, broker.Message{App: "1", ID: "y", Channels: []string{"group:G"}, Data: []byte("two")})
	require.NoError(t, err)
	dup, err := b.Publish(ctx, broker.Message{App: "1", ID: "x", Channels: []string{"group:G"}, Data: []byte("one")})
	require.NoError(t, err)
	assert.True(t, dup.Duplicate, "a retry reaching another node is still a duplicate")

	for _, rec := range []*brokertest.Recorder{recA, recB} {
		pubs := rec.WaitCount(t, 2)
		require.Len(t, pubs, 2)
		assert.Equal(t, r1.Positions[0], pubs[0].Position)
		assert.Equal(t, r2.Positions[0], pubs[1].Position)
	}
}

// Redis stops mid-stream: publishing fails with ErrUnavailable and
// readiness flips; when Redis is back, the broker reconnects by itself,
// subscriptions are live again, and the handler is told to repair.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	waitReady(t, b, true)
	require.NoError(t, b.Subscribe(ctx, "1", "group:G"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "before", Channels: []string{"group:G"}, Data: []byte("before")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)

	srv.Stop()
	waitReady(t, b, false)
	_, err = b.Publish(ctx, broker.Message{App: "1", ID: "during", Channels: []string{"group:G"}, Data: []byte("during")})
	require.ErrorIs(t, err, broker.ErrUnavailable)

	srv.Restart()
	waitReady(t, b, true)
	// At least once: on a busy machine a health check of the fresh
	// connection may time out and make the broker reconnect again, and a
	// repair more is harmless.
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 30*time.Second, 10*time.Millisecond,
		"HandleReconnect is called once the subscriptions are back")
	res, err := b.Publish(ctx, broker.Message{App: "1", ID: "after", Channels: []string{"group:G"}, Data: []byte("after")})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.Positions[0].Offset, "the restarted Redis lost its keys: a new stream")
	pubs := rec.WaitCount(t, 2)
	assert.Equal(t, "after", string(pubs[1].Data), "the subscription was restored without a restart")
	assert.NotEqual(t, pubs[0].Epoch, pubs[1].Epoch, "a new stream has a new epoch")
}

func TestRedisConfig(t *testing.T) {
	_, err := broker.NewRedis(broker.RedisConfig{URL: "http://localhost"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis url")
}

// freezingProxy forwards TCP to a unix socket until frozen; then the
// connections it has stay open but carry nothing, like a host that died
// without closing them. New connections work.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen []net.Conn
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezingProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range append(p.conns, p.frozen...) {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	return p
}

func (p *freezingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		dead := slices.Contains(p.frozen, src)
		p.mu.Unlock()
		if dead {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// freeze makes every existing connection silent.
func (p *freezingProxy) freeze() {
	p.mu.Lock()
	p.frozen = append(p.frozen, p.conns...)
	p.conns = nil
	p.mu.Unlock()
}

// A subscription connection that goes silent without breaking is found
// out by its unanswered PING and replaced, and the handler told to repair.
func TestRedisSilentConnection(t *testing.T) {
	srv := redistest.Start(t)
	proxy := newFreezingProxy(t, srv.Socket())
	b := newRedis(t, "redis://"+proxy.ln.Addr().String(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	direct := newRedis(t, srv.URL(), brokertest.DefaultConfig)
	brokertest.Start(t, direct)
	ctx := context.Background()
	require.NoError(t, b.Subscribe(ctx, "1", "group:G"))
	_, err := direct.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:G"}, Data: []byte("1")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)

	proxy.freeze()
	require.Eventually(t, func() bool { return rec.Reconnects() == 1 }, 20*time.Second, 10*time.Millisecond,
		"the silent connection is replaced")
	_, err = direct.Publish(ctx, broker.Message{App: "1", ID: "2", Channels: []string{"group:G"}, Data: []byte("2")})
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 2)
	assert.Equal(t, "2", string(pubs[1].Data), "subscriptions were carried to the new connection")
}

// Subscribe, unsubscribe and subscribe again in quick turns: after each
// Subscribe returns, publications arrive; after Unsubscribe, none.
func TestRedisSubscribeChurn(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	for i := range 20 {
		require.NoError(t, b.Subscribe(ctx, "1", "group:C"))
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("in", i), Channels: []string{"group:C"}, Data: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
		require.NoError(t, b.Unsubscribe(ctx, "1", "group:C"))
		_, err = b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("out", i), Channels: []string{"group:C"}, Data: []byte("never")})
		require.NoError(t, err)
	}
	require.NoError(t, b.Subscribe(ctx, "1", "group:C"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "last", Channels: []string{"group:C"}, Data: []byte("last")})
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 21)
	require.Len(t, pubs, 21)
	for i, p := range pubs[:20] {
		assert.Equal(t, fmt.Sprint(i), string(p.Data))
	}
	assert.Equal(t, "last", string(pubs[20].Data))
}

// A lost subscription connection subscribes its channels again once, in
// one SUBSCRIBE, not once for every confirmation that comes back.
func TestRedisReconnectSubscribesOnce(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL(), brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	ctx := context.Background()
	const n = 200
	for i := range n {
		require.NoError(t, b.Subscribe(ctx, "1", fmt.Sprint("group:G", i)))
	}
	before := redistest.CommandCalls(t, srv, "subscribe")
	require.NoError(t, srv.Client().ClientKillByFilter(ctx, "TYPE", "pubsub").Err())
	require.Eventually(t, func() bool { return rec.Reconnects() == 1 }, 15*time.Second, 10*time.Millisecond,
		"the connection is restored")
	time.Sleep(300 * time.Millisecond) // several PingIntervals: any repeat would show
	assert.LessOrEqual(t, redistest.CommandCalls(t, srv, "subscribe")-before, 2,
		"the %d channels subscribed again in one command", n)
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:G7"}, Data: []byte("1")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)
}

// What the connection writes agrees with what it should carry: a subscribe
// for a channel no longer wanted (an Unsubscribe raced a move) is not
// sent, and a channel subscribed behind the broker's back (go-redis's own
// resubscribe of a name once given) is unsubscribed when confirmed.
func TestRedisSubscriptionsFollowTheRecord(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL(), brokertest.DefaultConfig)
	brokertest.Start(t, b)
	waitReady(t, b, true)
	ctx := context.Background()
	channels := func() []string {
		ch, err := srv.Client().PubSubChannels(ctx, "*").Result()
		require.NoError(t, err)
		return ch
	}
	require.NoError(t, b.Subscribe(ctx, "1", "group:kept"))
	kept := b.StreamKeyForTest("1", "group:kept")

	require.NoError(t, b.SendForTest(ctx, "1", "group:gone", true))
	assert.Equal(t, []string{kept}, channels(), "a subscribe for an unrecorded channel is not sent")
	require.NoError(t, b.SendForTest(ctx, "1", "group:kept", false))
	assert.Equal(t, []string{kept}, channels(), "an unsubscribe for a recorded channel is not sent")

	require.NoError(t, b.SubscribeRawForTest(ctx, "1", "group:stray"))
	require.Eventually(t, func() bool { return len(channels()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"the stray subscription is undone: %v", channels())
	assert.Equal(t, []string{kept}, channels())
}

// Every key the broker makes expires, each within its own window: message
// IDs the dedupe window, history the history TTL, a channel's offsets
// MetaTTL. The only key without a TTL is the data set's id.
func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	cfg := broker.Config{DedupeWindow: 2 * time.Minute, HistorySize: 10, HistoryTTL: 5 * time.Minute}
	b, err := broker.NewRedis(broker.RedisConfig{Config: cfg, URL: srv.URL(), MetaTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokertest.Start(t, b)
	ctx := context.Background()
	for i := range 5 {
		ch := fmt.Sprint("group:K", i)
		require.NoError(t, b.Subscribe(ctx, "1", ch))
		_, err := b.History(ctx, "1", ch, nil)
		require.NoError(t, err)
		if i%2 == 0 {
			_, err = b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint("m", i), Channels: []string{ch}, Data: []byte("x")})
			require.NoError(t, err)
		}
		require.NoError(t, b.Unsubscribe(ctx, "1", ch))
	}
	keys, err := b.KeysForTest(ctx)
	require.NoError(t, err)
	limit := map[string]time.Duration{":seen:": 2 * time.Minute, ":hist": 5 * time.Minute, ":meta": time.Hour}
	kinds := map[string]int{}
	for k, ttl := range keys {
		kind := ""
		for suffix := range limit {
			if strings.Contains(k, suffix) {
				kind = suffix
			}
		}
		require.NotEmpty(t, kind, "unexpected key %s", k)
		kinds[kind]++
		assert.True(t, ttl > 0 && ttl <= limit[kind], "%s lives %v, more than %v", k, ttl, limit[kind])
	}
	assert.Equal(t, map[string]int{":seen:": 3, ":hist": 3, ":meta": 3}, kinds, "the keys of the 3 channels published to")
	all, err := srv.Client().DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(len(keys)+1), all, "and one data set id")
}

// A server that stops answering holds a call no longer than its context
// allows, not for the connection's read timeout (3 s): the broker's own
// checks give themselves a fraction of a second, and callers a deadline.
func TestRedisCallsKeepTheirDeadline(t *testing.T) {
	srv := redistest.Start(t)
	proxy := newFreezingProxy(t, srv.Socket())
	b := newRedis(t, "redis://"+proxy.ln.Addr().String(), brokertest.DefaultConfig)
	brokertest.Start(t, b)
	ctx := context.Background()
	_, err := b.History(ctx, "1", "group:D", nil)
	require.NoError(t, err)
	proxy.freeze()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = b.History(short, "1", "group:D", nil)
	require.Error(t, err)
	assert.Less(t, time.Since(began), 2500*time.Millisecond, "the call ended with its context, not the read timeout: %v", err)
}
