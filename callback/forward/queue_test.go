package forward_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/callback/spool"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redistest"
)

// fast retries, so that tests see several attempts.
func fastRetries(cfg forward.Config) forward.Config {
	cfg.RetryBase, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	return cfg
}

// newRedisStore is a store in srv that waits 100ms for new entries, so
// that retries come round quickly.
func newRedisStore(srv *redistest.Server, cfg forward.RedisConfig) *forward.RedisStore {
	cfg.Block = 100 * time.Millisecond
	return forward.NewRedisStore(srv.Client(), cfg)
}

// msgKey is the MsgKey of a forwarded group message.
func msgKey(t *testing.T, body string) string {
	var m struct{ MsgKey string }
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	return m.MsgKey
}

// TestQueuedRetriedUntilDelivered checks that a callback the backend fails
// (500, then FAIL, then not JSON, then a timeout) is retried until it is
// delivered, in both stores.
func TestQueuedRetriedUntilDelivered(t *testing.T) {
	stores := map[string]func(t *testing.T) forward.Store{
		"redis":  func(t *testing.T) forward.Store { return newRedisStore(redistest.Start(t), forward.RedisConfig{}) },
		"memory": func(*testing.T) forward.Store { return forward.NewMemoryStore(10) },
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch n {
				case 1:
					w.WriteHeader(500)
				case 2:
					io.WriteString(w, `{"ActionStatus":"FAIL","ErrorInfo":"busy","ErrorCode":1}`)
				case 3:
					io.WriteString(w, `ok`)
				case 4:
					<-r.Context().Done()
				default:
					io.WriteString(w, `{"ActionStatus":"OK"}`)
				}
			})
			h := newHub(t, fastRetries(forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}, AttemptTimeout: 200 * time.Millisecond}),
				newStore(t), nil, callback.App{ID: appA})
			h.run(t)
			status, body := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(1))
			require.Equal(t, 200, status, body)
			eventually(t, 10*time.Second, "delivery", func() bool { return h.count(t, appA, "delivered") == 1 })
			got := b.requests()
			require.Len(t, got, 5)
			for _, r := range got {
				assert.Equal(t, groupMsg(1), r.Body)
				assert.Equal(t, "application/json; charset=utf-8", r.ContentType)
			}
			assert.Equal(t, 4.0, h.count(t, appA, "retried"))
			assert.Equal(t, 1.0, h.count(t, appA, "queued"))
			// A command the hub does not publish is forwarded too.
			status, _ = h.post(t, appA, "Group.CallbackAfterGroupFull", `{"GroupId":"g"}`)
			require.Equal(t, 200, status)
			eventually(t, 10*time.Second, "delivery", func() bool { return h.count(t, appA, "delivered") == 2 })
		})
	}
}

// TestSignRecomputed checks that each attempt carries a RequestTime of its
// own and the Sign made from it, checked by a backend whose clock is, like
// the forwarder's, ten minutes on from when the IM signed the callback.
func TestSignRecomputed(t *testing.T) {
	later := time.Now().Add(10 * time.Minute)
	var bad atomic.Int32
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		q := r.URL.Query()
		if err := callback.VerifySign(token, q.Get("RequestTime"), q.Get("Sign"), later); err != nil {
			bad.Add(1)
			w.WriteHeader(401)
			return
		}
		if n == 1 { // fail once, so that a retry is signed too
			w.WriteHeader(503)
			return
		}
		answerOK(w, r, n)
	})
	cfg := fastRetries(forward.Config{
		Targets: []forward.Target{{App: appA, URL: b.URL, Token: token}},
		Now:     func() time.Time { return later },
	})
	h := newHub(t, cfg, newRedisStore(redistest.Start(t), forward.RedisConfig{}), nil,
		callback.App{ID: appA, Token: token})
	h.run(t)
	rt := time.Now().Unix()
	status, body := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(1),
		"RequestTime", itoa(rt), "Sign", callback.Sign(token, itoa(rt)))
	require.Equal(t, 200, status, body)
	eventually(t, 10*time.Second, "delivery", func() bool { return h.count(t, appA, "delivered") == 1 })
	assert.Zero(t, bad.Load(), "every attempt is signed for the backend's clock")
	got := b.requests()
	require.Len(t, got, 2)
	for _, r := range got {
		assert.Equal(t, itoa(later.Unix()), r.Query.Get("RequestTime"))
		// Everything else in the query is the IM's, in its order.
		rest := strings.Split(r.RawQuery, "&")
		assert.Len(t, rest, 7)
		assert.Equal(t, "Group.CallbackAfterSendMsg", r.Query.Get("CallbackCommand"))
		assert.Equal(t, "Web", r.Query.Get("OptPlatform"))
	}

	// Before* too.
	status, body = h.post(t, appA, "Group.CallbackBeforeSendMsg", beforeBody,
		"RequestTime", itoa(rt), "Sign", callback.Sign(token, itoa(rt)))
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, body)
	assert.Zero(t, bad.Load())
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDeadBackendDoesNotDelayOthers checks that an app whose backend hangs
// holds only its own workers: another app's forwards go through meanwhile.
func TestDeadBackendDoesNotDelayOthers(t *testing.T) {
	hold := make(chan struct{})
	var held atomic.Int32
	dead := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		held.Add(1)
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	live := newBackend(t, answerOK)
	cfg := forward.Config{
		Targets:        []forward.Target{{App: appA, URL: dead.URL}, {App: appB, URL: live.URL}},
		Concurrency:    2,
		AttemptTimeout: time.Minute,
	}
	h := newHub(t, cfg, newRedisStore(redistest.Start(t), forward.RedisConfig{}), nil,
		callback.App{ID: appA}, callback.App{ID: appB})
	defer close(hold) // before the servers close: LIFO
	h.run(t)
	for i := range 10 {
		status, _ := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(i))
		require.Equal(t, 200, status)
	}
	eventually(t, 10*time.Second, "app A's workers held", func() bool { return held.Load() == 2 })
	for i := range 5 {
		status, _ := h.post(t, appB, "Group.CallbackAfterSendMsg", groupMsg(100+i))
		require.Equal(t, 200, status)
	}
	eventually(t, 10*time.Second, "app B's deliveries", func() bool { return h.count(t, appB, "delivered") == 5 })
	assert.Equal(t, int32(2), held.Load(), "app A has at most Concurrency deliveries in flight")
	assert.Zero(t, h.count(t, appA, "delivered"))
	eventually(t, 10*time.Second, "backlog gauges", func() bool {
		return h.gauge(t, "imhub_forward_backlog", appA) == 10 && h.gauge(t, "imhub_forward_backlog", appB) == 0
	})
	assert.Greater(t, h.gauge(t, "imhub_forward_lag_seconds", appB), 0.0)
}

// TestDeadLetterAndReplay checks that an entry failing past MaxAge is kept
// aside, counted, listed, and delivered when replayed.
func TestDeadLetterAndReplay(t *testing.T) {
	var up atomic.Bool
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if !up.Load() {
			w.WriteHeader(502)
			return
		}
		answerOK(w, r, n)
	})
	srv := redistest.Start(t)
	store := newRedisStore(srv, forward.RedisConfig{})
	h := newHub(t, fastRetries(forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}, MaxAge: 300 * time.Millisecond}),
		store, nil, callback.App{ID: appA})
	h.run(t)
	status, _ := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(7))
	require.Equal(t, 200, status)
	eventually(t, 10*time.Second, "dead letter", func() bool { return h.count(t, appA, "dead") == 1 })
	attempts := len(b.requests())
	assert.Greater(t, attempts, 1, "retried before giving up")
	dead, err := store.ListDead(t.Context(), appA, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, groupMsg(7), string(dead[0].Body))
	assert.Equal(t, attempts, dead[0].Attempts)
	assert.Contains(t, dead[0].LastError, "502")
	n, err := store.Backlog(t.Context(), appA)
	require.NoError(t, err)
	assert.Zero(t, n, "a dead letter is out of the backlog")
	eventually(t, 10*time.Second, "dead-letter gauge", func() bool { return h.gauge(t, "imhub_forward_dead_letters", appA) == 1 })

	up.Store(true)
	replayed, err := store.ReplayDead(t.Context(), appA, 10, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, replayed)
	eventually(t, 10*time.Second, "replayed delivery", func() bool { return h.count(t, appA, "delivered") == 1 })
	dead, err = store.ListDead(t.Context(), appA, 10)
	require.NoError(t, err)
	assert.Empty(t, dead)
}

// TestTakeOver checks that an entry taken by a consumer that then died is
// delivered by another once it has been held for ClaimIdle.
func TestTakeOver(t *testing.T) {
	b := newBackend(t, answerOK)
	srv := redistest.Start(t)
	rcfg := forward.RedisConfig{ClaimIdle: 300 * time.Millisecond}
	store := newRedisStore(srv, rcfg)
	require.NoError(t, store.Add(t.Context(), forward.Entry{ID: "x", App: appA, Body: []byte(groupMsg(1)), Accepted: time.Now().UnixMilli()}))
	taken, err := store.Take(t.Context(), appA, "dead-replica", 10)
	require.NoError(t, err)
	require.Len(t, taken, 1)

	h := newHub(t, forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}, Consumer: "live-replica"},
		newRedisStore(srv, rcfg), nil, callback.App{ID: appA})
	h.run(t)
	eventually(t, 10*time.Second, "take-over", func() bool { return h.count(t, appA, "delivered") == 1 })
	require.Len(t, b.requests(), 1)
	assert.Equal(t, groupMsg(1), b.requests()[0].Body)

	// The dead consumer, holding nothing now, is forgotten after 10×ClaimIdle.
	eventually(t, 15*time.Second, "the dead consumer forgotten", func() bool {
		consumers, err := srv.Client().XInfoConsumers(t.Context(), store.StreamKey(appA), forward.Group).Result()
		require.NoError(t, err)
		for _, c := range consumers {
			if c.Name == "dead-replica" {
				return false
			}
		}
		return len(consumers) == 1
	})
}

// TestSpoolWhileRedisAway checks that callbacks accepted while Redis is
// down are spooled, answered OK, and delivered once Redis is back, and that
// without a spool they are answered 503.
func TestSpoolWhileRedisAway(t *testing.T) {
	b := newBackend(t, answerOK)
	srv := redistest.StartPersistent(t)
	store := newRedisStore(srv, forward.RedisConfig{})
	sq := forward.StoreQueue(store, 200*time.Millisecond, nil)
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), MaxBytes: 1 << 20, Retry: 50 * time.Millisecond}, sq)
	require.NoError(t, err)
	t.Cleanup(func() { sp.Close() })
	cfg := forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}}
	h := newHub(t, cfg, store, sp, callback.App{ID: appA})
	h.run(t)
	ctx, cancel := context.WithCancel(t.Context())
	spoolDone := make(chan struct{})
	go func() { sp.Run(ctx); close(spoolDone) }()
	t.Cleanup(func() { cancel(); <-spoolDone })

	status, _ := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(1))
	require.Equal(t, 200, status)
	srv.Stop()
	for i := 2; i <= 4; i++ {
		status, body := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(i))
		require.Equal(t, 200, status, body)
	}
	assert.Equal(t, 3.0, h.count(t, appA, "spooled"))
	srv.Restart()
	eventually(t, 20*time.Second, "every callback delivered", func() bool {
		seen := map[string]bool{}
		for _, r := range b.requests() {
			seen[msgKey(t, r.Body)] = true
		}
		return len(seen) == 4
	})

	// Without a spool, a callback that cannot be queued is refused.
	noSpool := newHub(t, cfg, store, forward.StoreQueue(store, 200*time.Millisecond, nil), callback.App{ID: appA})
	srv.Stop()
	status, body := noSpool.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(9))
	assert.Equal(t, 503, status, body)
	assert.Equal(t, 1.0, noSpool.count(t, appA, "unavailable"))
}

// TestLostReadTakenAgain checks that an entry Redis read for this process
// but whose answer never arrived (Redis killed, or the connection broken,
// after it recorded the read) is delivered without waiting for ClaimIdle,
// and that entries in flight are not taken twice.
func TestLostReadTakenAgain(t *testing.T) {
	b := newBackend(t, answerOK)
	srv := redistest.Start(t)
	rcfg := forward.RedisConfig{ClaimIdle: time.Hour, Block: 200 * time.Millisecond}
	store := newRedisStore(srv, rcfg)
	require.NoError(t, store.Add(t.Context(), forward.Entry{ID: "x", App: appA, Body: []byte(groupMsg(1)), Accepted: time.Now().UnixMilli()}))
	// The read as Redis recorded it: the entry is pending for the consumer
	// that is about to run, which never saw it.
	require.NoError(t, srv.Client().XGroupCreateMkStream(t.Context(), store.StreamKey(appA), forward.Group, "0").Err())
	require.NoError(t, srv.Client().XReadGroup(t.Context(), &redis.XReadGroupArgs{
		Group: forward.Group, Consumer: "this-replica", Streams: []string{store.StreamKey(appA), ">"}, Count: 1,
	}).Err())

	h := newHub(t, forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}, Consumer: "this-replica"},
		store, nil, callback.App{ID: appA})
	h.run(t)
	eventually(t, 10*time.Second, "the lost read delivered", func() bool { return h.count(t, appA, "delivered") == 1 })
	for i := 2; i <= 5; i++ {
		status, _ := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(i))
		require.Equal(t, 200, status)
	}
	eventually(t, 10*time.Second, "every callback delivered", func() bool { return h.count(t, appA, "delivered") == 5 })
	time.Sleep(3 * rcfg.Block) // time for idle reads, which must not take anything again
	assert.Len(t, b.requests(), 5, "each delivered once")
	assert.Equal(t, 5.0, h.count(t, appA, "delivered"))
}

// TestSpoolWhileReplicaAway checks that with a replica to wait for, a
// forward the replica does not confirm in time is not taken as queued: the
// spool keeps it, the callback is answered OK, and it is queued again and
// delivered once the replica is back.
func TestSpoolWhileReplicaAway(t *testing.T) {
	b := newBackend(t, answerOK)
	primary, replica := redistest.StartReplicated(t, redistest.Options{})
	wait := broker.NewReplicaWait(primary.Client(), broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 50 * time.Millisecond})
	store := newRedisStore(primary, forward.RedisConfig{Wait: wait})
	sq := forward.StoreQueue(store, time.Second, nil)
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), MaxBytes: 1 << 20, Retry: 50 * time.Millisecond}, sq)
	require.NoError(t, err)
	t.Cleanup(func() { sp.Close() })
	cfg := forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}}
	h := newHub(t, cfg, store, sp, callback.App{ID: appA})
	h.run(t)
	ctx, cancel := context.WithCancel(t.Context())
	spoolDone := make(chan struct{})
	go func() { sp.Run(ctx); close(spoolDone) }()
	t.Cleanup(func() { cancel(); <-spoolDone })

	status, _ := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(1))
	require.Equal(t, 200, status)
	assert.Equal(t, 0.0, h.count(t, appA, "spooled"), "confirmed by the replica")
	replica.Pause()
	status, body := h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(2))
	require.Equal(t, 200, status, body)
	assert.Equal(t, 1.0, h.count(t, appA, "spooled"), "kept in the spool, not taken as queued")
	assert.Equal(t, uint64(1), wait.Unreplicated())
	n, _, _ := sp.Depth()
	assert.Equal(t, 1, n)
	replica.Resume()
	eventually(t, 20*time.Second, "every callback delivered", func() bool {
		seen := map[string]bool{}
		for _, r := range b.requests() {
			seen[msgKey(t, r.Body)] = true
		}
		return len(seen) == 2
	})
	eventually(t, 10*time.Second, "the spool empty", func() bool { n, _, _ := sp.Depth(); return n == 0 })
}
