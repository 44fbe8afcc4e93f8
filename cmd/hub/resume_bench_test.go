package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// resumeBounces is how many times each probe kills and restarts the
// primary.
const resumeBounces = 5

// BenchmarkRedisResume probes how long clients go without events when the
// Redis primary that serves their channel is killed with SIGKILL and
// started again at once, on a single Redis, a primary watched by Sentinel,
// and a Redis Cluster (three primaries with a replica each), each with an
// append-only file synced on every write. A hub process carries a client
// on one group while callbacks for that group arrive every 5 ms (refused
// while Redis is away: the hub has no spool here, so each event is
// published when its callback is acknowledged).
//
// It reports, per bounce, the median and worst of:
//   - ms-from-answer: from the restarted primary answering PING to the
//     client's first event published after the restart;
//   - ms-from-write: from the first callback acknowledged after the
//     restart (its event published) to that event reaching the client:
//     what the hub adds once Redis takes writes again.
//
// A cluster primary refuses writes for about two seconds after a restart,
// before it rejoins (Redis's own delay), which ms-from-answer includes.
//
//	go test -run '^$' -bench RedisResume -benchtime 1x ./cmd/hub/
func BenchmarkRedisResume(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		srv := redistest.StartWith(b, redistest.Options{Persist: true})
		benchResume(b, srv.URL(), srv)
	})
	b.Run("sentinel", func(b *testing.B) {
		primary := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Persist: true})
		replica := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Persist: true,
			Conf: []string{"replicaof 127.0.0.1 " + strings.TrimPrefix(primary.Addr(), "127.0.0.1:")}})
		sentinel := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Sentinel: true, Conf: []string{
			"sentinel monitor imhub " + strings.Replace(primary.Addr(), ":", " ", 1) + " 1",
			// Long enough that a restart at once is not failed over.
			"sentinel down-after-milliseconds imhub 10000",
		}})
		require.Eventually(b, func() bool {
			info, _ := replica.Client().Info(context.Background(), "replication").Result()
			return strings.Contains(info, "master_link_status:up")
		}, 20*time.Second, 20*time.Millisecond, "the replica syncs")
		benchResume(b, "redis+sentinel://"+sentinel.Addr()+"?master_name=imhub", primary)
	})
	b.Run("cluster", func(b *testing.B) {
		cl := redistest.StartClusterWith(b, redistest.ClusterOptions{Primaries: 3, Replicas: 1, Persist: true})
		benchResume(b, cl.URL(), cl.Owner(streamKey("100", "group:G")))
	})
}

// benchResume runs the probe against the hub on redisURL, bouncing
// primary.
func benchResume(b *testing.B, redisURL string, primary *redistest.Server) {
	hub := hubtest.Start(b, []string{"-redis", redisURL, "-apps", "100", "-jwt-secret", clusterSecret, "-node", "hub-a"})
	hub.WaitReady(200)
	c := wstest.Dial(b, wsURL(hub), mint(b, "100", "watcher", false, "G"))
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "id": 1})
	c.ReadOp("subscribed")

	var mu sync.Mutex
	acked := map[int]time.Time{}     // seq -> when its callback was acknowledged
	delivered := map[int]time.Time{} // seq -> when the client got it
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = c.C.CloseNow() // ends the reader's wait
		wg.Wait()
	}()
	wg.Go(func() {
		client := &http.Client{Timeout: 2 * time.Second}
		pub := &publisher{client: client}
		for seq := 1; ctx.Err() == nil; seq++ {
			if code, _ := pub.post(hub.URL(""), "100", "Group.CallbackAfterSendMsg", groupMsg("G", seq)); code == http.StatusOK {
				mu.Lock()
				acked[seq] = time.Now()
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for {
			f, err := c.TryRead(time.Minute)
			if err != nil {
				if ctx.Err() == nil {
					b.Errorf("client: %v", err)
				}
				return
			}
			if f.Op != "event" {
				continue
			}
			var seq int
			if _, err := fmt.Sscanf(messageKey(f.Event), "group.message.sent#%d", &seq); err == nil {
				mu.Lock()
				delivered[seq] = time.Now()
				mu.Unlock()
			}
		}
	})
	// firstAfter returns the first event, by seq, acknowledged after t
	// and when it was acknowledged and delivered.
	firstAfter := func(t time.Time) (ack, got time.Time, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		best := -1
		for seq, at := range acked {
			if at.After(t) && (best < 0 || seq < best) {
				best = seq
			}
		}
		if best < 0 {
			return time.Time{}, time.Time{}, false
		}
		got, ok = delivered[best]
		return acked[best], got, ok
	}
	time.Sleep(500 * time.Millisecond)
	var fromAnswer, fromWrite []float64
	for b.Loop() {
		for range resumeBounces {
			primary.Kill()
			killed := time.Now()
			primary.Restart()
			answered := time.Now()
			var ack, got time.Time
			require.Eventually(b, func() bool {
				var ok bool
				ack, got, ok = firstAfter(killed)
				return ok
			}, 30*time.Second, time.Millisecond, "an event published after the restart reaches the client")
			fromAnswer = append(fromAnswer, ms(got.Sub(answered)))
			// The event may reach the client before its callback's answer
			// reaches the sender: that counts as no wait.
			fromWrite = append(fromWrite, max(0, ms(got.Sub(ack))))
			time.Sleep(time.Second)
		}
	}
	b.ReportMetric(median(fromAnswer), "ms-from-answer")
	b.ReportMetric(slices.Max(fromAnswer), "ms-from-answer-max")
	b.ReportMetric(median(fromWrite), "ms-from-write")
	b.ReportMetric(slices.Max(fromWrite), "ms-from-write-max")
	b.ReportMetric(0, "ns/op")
	b.Logf("from answer (ms): %v; from write (ms): %v", fromAnswer, fromWrite)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
