package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
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
// Redis primary that serves their channel is killed with SIGKILL, on a
// single Redis, a primary watched by Sentinel, and a Redis Cluster (three
// primaries with a replica each), each with an append-only file synced on
// every write: started again at once (restart), or failed over to its
// replica (failover; the old primary then comes back as a replica). A hub
// process carries a client on one group while callbacks for that group
// arrive every 5 ms (refused while Redis is away: the hub has no spool
// here, so each event is published when its callback is acknowledged).
//
// It reports, per bounce, the median and worst of:
//   - ms-from-answer (restarts): from the restarted primary answering PING
//     to the client's first event published after the restart;
//   - ms-from-write: from the first callback acknowledged after the kill
//     (its event published: Redis takes writes again) to that event
//     reaching the client: what the hub adds;
//   - ms-from-kill (failovers): from the kill to that event reaching the
//     client, the failover's detection included.
//
// A cluster primary refuses writes for about two seconds after a restart,
// before it rejoins (Redis's own delay), which ms-from-answer includes.
//
//	go test -run '^$' -bench RedisResume -benchtime 1x ./cmd/hub/
func BenchmarkRedisResume(b *testing.B) {
	sentinel := func(b *testing.B) (url string, servers []*redistest.Server) {
		primary := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Persist: true})
		replica := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Persist: true,
			Conf: []string{"replicaof 127.0.0.1 " + strings.TrimPrefix(primary.Addr(), "127.0.0.1:")}})
		s := redistest.StartWith(b, redistest.Options{Port: redistest.FreePort(b), Sentinel: true, Conf: []string{
			"sentinel monitor imhub " + strings.Replace(primary.Addr(), ":", " ", 1) + " 1",
			// Long enough that a restart at once is not failed over;
			// failovers below are asked for.
			"sentinel down-after-milliseconds imhub 10000",
			"sentinel failover-timeout imhub 5000",
		}})
		waitSynced(b, replica)
		return "redis+sentinel://" + s.Addr() + "?master_name=imhub", []*redistest.Server{primary, replica, s}
	}
	restart := func(s *redistest.Server) func(func()) time.Time {
		return func(killed func()) time.Time {
			s.Kill()
			killed()
			s.Restart()
			return time.Now()
		}
	}
	b.Run("single/restart", func(b *testing.B) {
		srv := redistest.StartWith(b, redistest.Options{Persist: true})
		benchResume(b, srv.URL(), restart(srv))
	})
	b.Run("sentinel/restart", func(b *testing.B) {
		url, s := sentinel(b)
		benchResume(b, url, restart(s[0]))
	})
	b.Run("sentinel/failover", func(b *testing.B) {
		url, s := sentinel(b)
		servers, sent := s[:2], s[2]
		benchResume(b, url, func(killed func()) time.Time {
			var primary, replica *redistest.Server
			for _, srv := range servers {
				if role, _ := srv.Client().Do(context.Background(), "ROLE").Slice(); len(role) > 0 && role[0] == "master" {
					primary = srv
				} else {
					replica = srv
				}
			}
			primary.Kill()
			killed()
			// The failover Sentinel would start after down-after-
			// milliseconds, asked for at once.
			require.NoError(b, sent.Client().Do(context.Background(), "SENTINEL", "FAILOVER", "imhub").Err())
			// The old primary comes back only once Sentinel names the
			// new one: started before, it would take writes as a primary
			// of its own until it is made a replica, and lose them then.
			require.Eventually(b, func() bool {
				addr, _ := sent.Client().Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "imhub").StringSlice()
				return len(addr) == 2 && addr[0]+":"+addr[1] == replica.Addr()
			}, 30*time.Second, 20*time.Millisecond, "Sentinel names the promoted replica")
			primary.Restart()
			require.Eventually(b, func() bool {
				return primary.Client().Do(context.Background(), "REPLICAOF", "127.0.0.1", strings.TrimPrefix(replica.Addr(), "127.0.0.1:")).Err() == nil
			}, 10*time.Second, 50*time.Millisecond)
			waitSynced(b, primary)
			return time.Time{}
		})
	})
	b.Run("cluster/restart", func(b *testing.B) {
		cl := redistest.StartClusterWith(b, redistest.ClusterOptions{Primaries: 3, Replicas: 1, Persist: true})
		benchResume(b, cl.URL(), restart(cl.Owner(streamKey("100", "group:G"))))
	})
	b.Run("cluster/failover", func(b *testing.B) {
		cl := redistest.StartClusterWith(b, redistest.ClusterOptions{Primaries: 3, Replicas: 1, Persist: true})
		benchResume(b, cl.URL(), func(killed func()) time.Time {
			primary := cl.Owner(streamKey("100", "group:G"))
			replica := cl.ReplicaOf(primary)
			primary.Kill()
			killed()
			require.Eventually(b, func() bool { return cl.Primary(replica) }, 30*time.Second, 20*time.Millisecond, "the replica is promoted")
			cl.WaitOK()
			primary.Restart()
			cl.WaitOK()
			cl.WaitReplicasSynced()
			return time.Time{}
		})
	})
}

// waitSynced waits until replica's link to its primary is up.
func waitSynced(b *testing.B, replica *redistest.Server) {
	require.Eventually(b, func() bool {
		info, _ := replica.Client().Info(context.Background(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	}, 20*time.Second, 20*time.Millisecond, "the replica syncs")
}

// benchResume runs the probe against a hub on redisURL; bounce kills the
// primary (calling killed once it is dead) and brings Redis back, and
// returns when the restarted primary answered, or zero after a failover.
func benchResume(b *testing.B, redisURL string, bounce func(killed func()) time.Time) {
	hub := hubtest.Start(b, []string{"-redis", redisURL, "-apps", "100", "-jwt-secret", clusterSecret, "-node", "hub-a"})
	hub.WaitReady(200)
	c := wstest.Dial(b, wsURL(hub), mint(b, "100", "watcher", false, "G"))
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "id": 1})
	c.ReadOp("subscribed")

	var mu sync.Mutex
	sentAt := map[int]time.Time{}    // seq -> when its callback was sent
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
			mu.Lock()
			sentAt[seq] = time.Now()
			mu.Unlock()
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
	// firstAfter returns the first event, by seq, whose callback was sent
	// after t and acknowledged, and when it was acknowledged and
	// delivered.
	firstAfter := func(t time.Time) (ack, got time.Time, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		best := -1
		for seq := range acked {
			if sentAt[seq].After(t) && (best < 0 || seq < best) {
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
	var fromAnswer, fromWrite, fromKill []float64
	for b.Loop() {
		for range resumeBounces {
			var killed time.Time
			answered := bounce(func() { killed = time.Now() })
			var ack, got time.Time
			require.Eventually(b, func() bool {
				var ok bool
				ack, got, ok = firstAfter(killed)
				return ok
			}, 30*time.Second, time.Millisecond, "an event published after the kill reaches the client")
			if answered.IsZero() {
				fromKill = append(fromKill, ms(got.Sub(killed)))
			} else {
				// An event may get through in the moments before the
				// probe's own PING sees the server back: no wait.
				fromAnswer = append(fromAnswer, max(0, ms(got.Sub(answered))))
			}
			// The event may reach the client before its callback's answer
			// reaches the sender: that counts as no wait.
			fromWrite = append(fromWrite, max(0, ms(got.Sub(ack))))
			if os.Getenv("RESUME_LOG") != "" {
				b.Logf("killed %s, answered %s, first write acknowledged %s, delivered %s", killed.Format("15:04:05.000"), answered.Format("15:04:05.000"), ack.Format("15:04:05.000"), got.Format("15:04:05.000"))
			}
			time.Sleep(time.Second)
		}
	}
	report := func(v []float64, unit string) {
		if len(v) > 0 {
			b.ReportMetric(median(v), unit)
			b.ReportMetric(slices.Max(v), unit+"-max")
		}
	}
	report(fromAnswer, "ms-from-answer")
	report(fromKill, "ms-from-kill")
	report(fromWrite, "ms-from-write")
	b.ReportMetric(0, "ns/op")
	b.Logf("from answer (ms): %v; from kill (ms): %v; from write (ms): %v", fromAnswer, fromKill, fromWrite)
	// RESUME_LOG=file keeps the hub's log, with each step of each resume.
	if f := os.Getenv("RESUME_LOG"); f != "" {
		require.NoError(b, os.WriteFile(f, []byte(hub.Stderr()), 0o644))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
