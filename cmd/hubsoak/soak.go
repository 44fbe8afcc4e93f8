package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/imhub/imhub/internal/hubload"
	"github.com/imhub/imhub/internal/retry"
)

// soakPlan is the shape of a soak run besides config.
type soakPlan struct {
	Hubs      int
	Steady    int           // well-behaved clients, checked for loss
	Churners  int           // clients that come and go
	Slow      int           // clients closed 4008, again and again
	Sample    time.Duration // between samples
	Restarts  []time.Duration
	RedisDown time.Duration // how long Redis stays away at a restart
	BulkEvery time.Duration // between bursts for the slow clients
}

// defaultSoakPlan restarts Redis in the middle of the run and every 15
// minutes before, but not in the last third: that is where growth is
// judged, and a restart's step there would look like growth.
func defaultSoakPlan(d time.Duration) soakPlan {
	p := soakPlan{Hubs: 2, Steady: 40, Churners: 60, Slow: 6, Sample: 10 * time.Second,
		RedisDown: 5 * time.Second, BulkEvery: 30 * time.Second}
	for t := 15 * time.Minute; t < d*2/3; t += 15 * time.Minute {
		p.Restarts = append(p.Restarts, t)
	}
	if !slices.Contains(p.Restarts, d/2) {
		p.Restarts = append(p.Restarts, d/2)
		slices.Sort(p.Restarts)
	}
	return p
}

// soakMetric is one sampled resource: how to read it, how much it may rise.
type soakMetric struct {
	name  string // as printed
	prom  string // the hub's metric; empty for Redis's used_memory
	unit  float64
	limit growthLimit
}

const mib = 1 << 20

var soakMetrics = []soakMetric{
	{"rss", "process_resident_memory_bytes", mib, growthLimit{Abs: 8 * mib, Rel: 0.05}},
	{"heap", "go_memstats_heap_inuse_bytes", mib, growthLimit{Abs: 4 * mib, Rel: 0.05}},
	{"goroutines", "go_goroutines", 1, growthLimit{Abs: 30, Rel: 0.05}},
	{"fds", "process_open_fds", 1, growthLimit{Abs: 10, Rel: 0.05}},
}

var redisMetric = soakMetric{"redis used_memory", "", mib, growthLimit{Abs: 4 * mib, Rel: 0.05}}

// ack is one acknowledged callback: its event's channel and when it was sent.
type ack struct {
	seq  int64
	sent time.Time
}

type ackLog struct {
	mu   sync.Mutex
	byCh map[string][]ack
}

func (l *ackLog) add(seq int64, channel string, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byCh[channel] = append(l.byCh[channel], ack{seq, sent})
}

// window is a span around a Redis restart: events sent in it may be lost
// with Redis (the client is told), and are counted apart.
type window struct{ from, to time.Time }

func runSoak(ctx context.Context, cfg config, out, progress io.Writer) error {
	plan := defaultSoakPlan(cfg.Duration)
	if cfg.Sample > 0 {
		plan.Sample = cfg.Sample
	}
	if cfg.Small {
		plan.Steady, plan.Churners, plan.Slow = 6, 6, 2
	}
	failures, err := soak(ctx, cfg, plan, out, progress)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		return errors.New("soak failed: " + strings.Join(failures, "; "))
	}
	return nil
}

// soak runs the plan and returns why it failed, if it did; an error is a
// run that could not be made.
func soak(ctx context.Context, cfg config, plan soakPlan, out, progress io.Writer) ([]string, error) {
	progress = &lockedWriter{w: progress} // the sampler and the restarts both write
	env, err := startSoakEnv(ctx, cfg, plan.Hubs, progress)
	if err != nil {
		return nil, err
	}
	passed := false
	defer func() {
		env.stop()
		if passed {
			os.RemoveAll(env.dir)
		} else {
			fmt.Fprintf(progress, "the hubs' logs are in %s\n", env.dir)
		}
	}()
	fmt.Fprintf(progress, "soak for %s: %d steady, %d churning, %d slow clients, %.0f callbacks/s, Redis restarts at %v\n",
		cfg.Duration, plan.Steady, plan.Churners, plan.Slow, cfg.Rate, plan.Restarts)

	// Traffic runs until the end of the run; the clients stop a little
	// after the publishers, to receive what was sent last.
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	clientCtx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	var clients, pubs sync.WaitGroup
	st := &soakStats{}
	steady := make([]*steadyClient, plan.Steady)
	for j := range steady {
		c := &steadyClient{user: "u" + strconv.Itoa(j), group: "G" + strconv.Itoa(j%max(cfg.Channels, 1)),
			hub: env.urls[(j/max(cfg.Channels, 1))%len(env.urls)]}
		steady[j] = c
		clients.Go(func() { c.run(clientCtx, cfg, st) })
	}
	for j := range plan.Churners {
		r := rand.New(rand.NewPCG(uint64(j), 7))
		clients.Go(func() { churn(trafficCtx, cfg, env.urls, plan.Steady, cfg.Conns, st, r) })
	}
	for j := range plan.Slow {
		every := time.Duration(0)
		if j%2 == 1 {
			every = time.Second
		}
		clients.Go(func() { slowClient(trafficCtx, cfg, env.urls[j%len(env.urls)], every, st) })
	}
	if plan.Slow > 0 {
		clients.Go(func() { bulkBursts(trafficCtx, cfg, env.urls[0], plan.BulkEvery, 100, 32<<10) })
	}
	// Let the steady clients subscribe before anything is published.
	retry.Sleep(ctx, 2*time.Second)

	acks := &ackLog{byCh: map[string][]ack{}}
	traffic := hubload.NewTraffic(cfg.Conns, cfg.Channels, cfg.UserChannels, cfg.Payload)
	var publishers []*hubload.Publisher
	for _, u := range env.urls {
		client := hubload.SenderClient(cfg.Publishers)
		defer client.CloseIdleConnections()
		s := hubload.NewHubCallbacks(client, u, cfg.App, cfg.CallbackToken, traffic)
		p := &hubload.Publisher{Rate: cfg.Rate / float64(len(env.urls)), Senders: cfg.Publishers,
			NewSender: hubload.Shared(s),
			OnAck:     func(seq int64, sent time.Time) { acks.add(seq, traffic.Channel(seq), sent) }}
		publishers = append(publishers, p)
		pubs.Go(func() { p.Run(trafficCtx) })
	}

	// Redis restarts, on their own goroutine.
	var (
		wmu     sync.Mutex
		windows []window
	)
	start := time.Now()
	var restarts sync.WaitGroup
	restarts.Go(func() {
		for _, at := range plan.Restarts {
			retry.Sleep(trafficCtx, time.Until(start.Add(at)))
			if trafficCtx.Err() != nil {
				return
			}
			fmt.Fprintf(progress, "  %4.0fs  restarting Redis (away for %s)\n", time.Since(start).Seconds(), plan.RedisDown)
			from := time.Now().Add(-2 * time.Second)
			if err := env.restartRedis(trafficCtx, plan.RedisDown); err != nil {
				fmt.Fprintf(progress, "  Redis restart: %v\n", err)
				return
			}
			// Until the hubs are ready again, and a little after.
			for _, u := range env.urls {
				_ = hubload.WaitReady(trafficCtx, u)
			}
			wmu.Lock()
			windows = append(windows, window{from, time.Now().Add(10 * time.Second)})
			wmu.Unlock()
		}
	})

	// Sampling, until the end of the run.
	series := map[string][]float64{} // "hub1 rss" → samples
	var keys []string
	sample := func() {
		var line strings.Builder
		fmt.Fprintf(&line, "  %4.0fs ", time.Since(start).Seconds())
		for i, u := range env.urls {
			m, err := hubload.Scrape(ctx, u)
			fmt.Fprintf(&line, " | hub%d", i+1)
			if err != nil {
				fmt.Fprintf(&line, " scrape failed: %v", err)
				continue
			}
			for _, sm := range soakMetrics {
				k := fmt.Sprintf("hub%d %s", i+1, sm.name)
				if _, ok := series[k]; !ok {
					keys = append(keys, k)
				}
				series[k] = append(series[k], m[sm.prom])
				fmt.Fprintf(&line, " %s %.1f", sm.name, m[sm.prom]/sm.unit)
			}
			fmt.Fprintf(&line, " conns %.0f", m["imhub_ws_connections"])
		}
		if v, err := env.redisMemory(ctx); err == nil {
			k := redisMetric.name
			if _, ok := series[k]; !ok {
				keys = append(keys, k)
			}
			series[k] = append(series[k], v)
			fmt.Fprintf(&line, " | redis %.1f MiB", v/mib)
		} else {
			fmt.Fprintf(&line, " | redis away")
		}
		fmt.Fprintf(&line, " | connects %d 4002 %d 4008 %d events %d", st.connects.Load(), st.expired.Load(), st.tooSlow.Load(), st.events.Load())
		fmt.Fprintln(progress, line.String())
	}
	tick := time.NewTicker(plan.Sample)
	end := time.After(cfg.Duration)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
			sample()
		}
	}
	tick.Stop()
	stopTraffic()
	pubs.Wait()
	restarts.Wait()
	retry.Sleep(ctx, 5*time.Second) // what was sent last arrives
	stopClients()
	clients.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Closes as the hubs counted them, and the frames of sessions closed
	// as too slow.
	closes := map[string]float64{}
	var dropped float64
	for _, u := range env.urls {
		if m, err := hubload.Scrape(ctx, u); err == nil {
			for k, v := range m {
				if code, ok := strings.CutPrefix(k, `imhub_ws_closes_total{code="`); ok {
					closes[strings.TrimSuffix(code, `"}`)] += v
				}
			}
			dropped += m["imhub_ws_frames_dropped_total"]
		}
	}

	var failures []string
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "series\tstart\tend\tmax\tverdict\n")
	for _, k := range keys {
		sm := redisMetric
		for _, m := range soakMetrics {
			if strings.HasSuffix(k, " "+m.name) {
				sm = m
			}
		}
		s := series[k]
		v := judgeGrowth(s, sm.limit)
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%s\n", k, s[0]/sm.unit, s[len(s)-1]/sm.unit, slices.Max(s)/sm.unit, v.in(sm.unit))
		if v.Growing {
			failures = append(failures, k+" keeps growing")
		}
		if !v.Judged {
			failures = append(failures, k+": too few samples to judge (run longer)")
		}
	}
	tw.Flush()
	if len(series[redisMetric.name]) == 0 {
		failures = append(failures, "Redis's memory was never read")
	}

	// Loss: every acknowledged event on a steady client's channels, sent
	// after it subscribed, reached it.
	var expected, lost, aroundRestart, repeats, told int64
	var unexpected []string
	for _, c := range steady {
		c.mu.Lock()
		for _, ch := range c.channels() {
			for _, a := range acks.byCh[ch] {
				if c.since.IsZero() || a.sent.Before(c.since) {
					continue
				}
				expected++
				if c.got[ch][a.seq] {
					continue
				}
				if inWindows(a.sent, windows) {
					aroundRestart++
				} else {
					lost++
				}
			}
		}
		repeats += c.repeats
		told += c.told
		for _, u := range c.unexpected {
			unexpected = append(unexpected, c.user+": "+u)
		}
		c.mu.Unlock()
	}
	var acked, refused int64
	for _, p := range publishers {
		acked += p.Acked.Load()
		refused += p.Refused.Load()
	}
	fmt.Fprintf(out, "callbacks: %d acknowledged, %d refused\n", acked, refused)
	fmt.Fprintf(out, "steady clients: %d events expected, %d lost, %d missing around a Redis restart (%d gaps told), %d repeated\n",
		expected, lost, aroundRestart, told, repeats)
	fmt.Fprintf(out, "clients: %d connects (%d failed), %d subscribes, %d unsubscribes, %d refreshes (%d answered), closes seen 4002 %d, 4008 %d, other %d; %d events, %d error frames\n",
		st.connects.Load(), st.dialFailures.Load(), st.subscribes.Load(), st.unsubscribes.Load(), st.refreshes.Load(), st.refreshed.Load(),
		st.expired.Load(), st.tooSlow.Load(), st.otherClose.Load(), st.events.Load(), st.errors.Load())
	if e, ok := st.firstError.Load().(string); ok {
		fmt.Fprintf(out, "first error frame: %s\n", e)
	}
	fmt.Fprintf(out, "hub closes by code: %v; frames dropped with sessions closed as too slow: %.0f\n", closes, dropped)
	if lost > 0 {
		failures = append(failures, fmt.Sprintf("%d events lost by steady clients away from any Redis restart", lost))
	}
	if expected == 0 {
		failures = append(failures, "no event was expected by a steady client: the traffic did not run")
	}
	if len(unexpected) > 0 {
		failures = append(failures, fmt.Sprintf("%d steady sessions ended or failed unexpectedly, first: %s", len(unexpected), unexpected[0]))
	}
	// A slow client is seen by the frames dropped with it: the hub counts
	// a 4008 close only when it could write the close frame, and to a
	// client that does not read it mostly cannot.
	if len(windows) < len(plan.Restarts) {
		failures = append(failures, fmt.Sprintf("Redis was restarted %d times of %d", len(windows), len(plan.Restarts)))
	}
	if st.expired.Load() == 0 || dropped == 0 {
		failures = append(failures, "the run did not exercise token expiry (4002) and slow clients (4008)")
	}
	if len(failures) > 0 {
		fmt.Fprintf(out, "verdict: FAIL\n  %s\n", strings.Join(failures, "\n  "))
		return failures, nil
	}
	fmt.Fprintln(out, "verdict: PASS (nothing keeps growing, no event lost)")
	passed = true
	return nil, nil
}

func inWindows(t time.Time, ws []window) bool {
	for _, w := range ws {
		if !t.Before(w.from) && !t.After(w.to) {
			return true
		}
	}
	return false
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
