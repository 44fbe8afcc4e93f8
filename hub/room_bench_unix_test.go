//go:build unix

package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubload"
	"github.com/imhub/imhub/internal/hubtest"
)

// room is a hub with n clients over real loopback sockets, all in one
// channel, each reading on a goroutine of its own and recording how long
// after its publication each event reached it.
type room struct {
	b       *broker.Memory
	clients []*roomClient
	sentAt  []atomic.Int64 // unix ns at which event i was published
	got     atomic.Int64   // events received, by every client
	readers sync.WaitGroup
}

// roomClient is one client's connection and the lag of each event it
// received, in order.
type roomClient struct {
	c   *hubload.WSConn
	lag []time.Duration
}

// newRoom connects n clients to a fresh hub and subscribes each to
// group:R. events is how many events the run publishes at most.
func newRoom(tb testing.TB, cfg hub.Config, n, events int) *room {
	tb.Helper()
	v, err := auth.New(context.Background(), auth.Config{Secret: secret, Apps: []string{"1"}})
	if err != nil {
		tb.Fatal(err)
	}
	b := broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Minute})
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.MaxConnsPerIP = n + 10
	h := hub.New(cfg, b, v)
	srv := hubtest.Serve(tb, h, b, h)
	host := strings.TrimPrefix(srv.URL, "http://")
	r := &room{b: b, clients: make([]*roomClient, n), sentAt: make([]atomic.Int64, events)}
	tb.Cleanup(func() {
		for _, c := range r.clients {
			if c != nil {
				_ = c.c.SetDeadline(time.Now())
			}
		}
		r.readers.Wait()
	})
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "channel": "group:R"})
	var d net.Dialer
	for i := range r.clients {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := hubload.DialWS(ctx, &d, host, hubload.Token(string(secret), "1", fmt.Sprint("u", i), time.Hour, false))
		cancel()
		if err != nil {
			tb.Fatalf("client %d: %v", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := c.Write(hubload.OpText, sub); err != nil {
			tb.Fatalf("client %d: %v", i, err)
		}
		for range 3 { // connected, subscribed to its user, to group:R
			if _, err := c.Next(); err != nil {
				tb.Fatalf("client %d: %v", i, err)
			}
		}
		_ = c.SetDeadline(time.Time{})
		rc := &roomClient{c: c, lag: make([]time.Duration, 0, events)}
		r.clients[i] = rc
		r.readers.Go(func() { r.read(rc) })
	}
	return r
}

var eventMarker = []byte(`"n":`)

func (r *room) read(rc *roomClient) {
	for {
		b, err := rc.c.Next()
		if err != nil {
			return
		}
		at := bytes.Index(b, eventMarker)
		if at < 0 {
			continue
		}
		i := hubload.Number(b[at+len(eventMarker):])
		rc.lag = append(rc.lag, time.Duration(time.Now().UnixNano()-r.sentAt[i].Load()))
		r.got.Add(1)
	}
}

// publish publishes event i of the room's channel.
func (r *room) publish(tb testing.TB, i int) {
	r.sentAt[i].Store(time.Now().UnixNano())
	data := fmt.Appendf(nil, `{"id":"e%d","type":"group.message.sent","app":"1","time":1490686222000,"group_id":"R","body":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"%s"}}],"n":%d}`,
		i, strings.Repeat("x", 200), i)
	if _, err := r.b.Publish(context.Background(), broker.Message{App: "1", ID: fmt.Sprint("e", i), Channels: []string{"group:R"}, Data: data}); err != nil {
		tb.Fatal(err)
	}
}

// waitFor waits until want events have been received in all, or a minute.
func (r *room) waitFor(want int64) bool {
	deadline := time.Now().Add(time.Minute)
	for r.got.Load() < want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// clientP99s is each client's p99 lag in milliseconds, and the lags
// forgotten.
func (r *room) clientP99s() []float64 {
	var p99s []float64
	for _, c := range r.clients {
		if len(c.lag) == 0 {
			continue
		}
		s := slices.Sorted(slices.Values(c.lag))
		p99s = append(p99s, float64(s[(len(s)*99+99)/100-1])/1e6)
		c.lag = c.lag[:0]
	}
	return p99s
}

// BenchmarkRoom measures the fan-out of one busy channel to thousands of
// sessions over real loopback sockets: b.N events published at a fixed
// rate, or (rate=burst) as fast as the fan-out takes them, far past what
// the sockets can be written at, then the wait until every client has
// every event. It reports the process's CPU time per delivery (the
// clients' reading included: the same in every run) and how fairly the
// sessions were served: each client's p99 lag, the median client's and
// the slowest client's, and their ratio (1 when every client is served
// alike).
//
//	go test -run '^$' -bench BenchmarkRoom -benchtime 200x -count 5 ./hub/
//
// Each runs with WriteDelay off and on.
func BenchmarkRoom(b *testing.B) {
	for _, n := range []int{2000} {
		for _, rate := range roomRates {
			for _, delay := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond} {
				name := fmt.Sprintf("clients=%d/rate=%d/write-delay=%s", n, rate, delay)
				if rate == 0 {
					name = fmt.Sprintf("clients=%d/rate=burst/write-delay=%s", n, delay)
				}
				b.Run(name, func(b *testing.B) { benchRoom(b, hub.Config{WriteDelay: delay}, n, rate) })
			}
		}
	}
}

// roomRates are the rates BenchmarkRoom runs at: 0 is a burst.
var roomRates = []int{0, 50}

func benchRoom(b *testing.B, cfg hub.Config, n, rate int) {
	cfg.SendQueue = max(b.N, 1024) + 16
	r := newRoom(b, cfg, n, b.N)
	cpu0, writes0 := cpuTime(), writeCalls()
	b.ResetTimer()
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
	}
	for i := 0; i < b.N; i++ {
		if tick != nil {
			<-tick.C
		}
		r.publish(b, i)
	}
	if !r.waitFor(int64(b.N) * int64(n)) {
		b.Fatalf("%d of %d deliveries within a minute", r.got.Load(), b.N*n)
	}
	b.StopTimer()
	deliveries := float64(b.N * n)
	b.ReportMetric(float64(cpuTime()-cpu0)/deliveries, "cpu-ns/delivery")
	if w := writeCalls(); w >= 0 && writes0 >= 0 {
		b.ReportMetric(float64(w-writes0)/deliveries, "writes/delivery")
	}
	p99s := r.clientP99s()
	med, slowest := median(p99s), slices.Max(p99s)
	b.ReportMetric(med, "median-client-p99-ms")
	b.ReportMetric(slowest, "slowest-client-p99-ms")
	b.ReportMetric(slowest/med, "spread")
}

// writeCalls is how many write system calls the process has made (Linux's
// /proc/self/io, syscw), or -1 where it cannot be read: the hub's socket
// writes, nearly all of them once the clients have subscribed.
func writeCalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// cpuTime is the CPU time the process has used, user and system, in ns.
func cpuTime() int64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return u.Utime.Nano() + u.Stime.Nano()
}

func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
