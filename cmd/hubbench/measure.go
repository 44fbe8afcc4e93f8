package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/imhub/imhub/internal/hubload"
)

// Result is one run's figures. Names are stable: scripts read the JSON.
type Result struct {
	Preset         string  `json:"preset"`
	Target         string  `json:"target"`
	Broker         string  `json:"broker"`
	Conns          int     `json:"conns"`
	Channels       int     `json:"channels"`
	ConnectSeconds float64 `json:"connect_seconds"`
	TargetRate     float64 `json:"target_callbacks_per_s"`
	Published      int64   `json:"callbacks_acked"`
	Refused        int64   `json:"callbacks_refused"`
	CallbacksPerS  float64 `json:"callbacks_per_s"`
	// CallbackP50ms and CallbackP99ms are how long the server took to
	// answer the callbacks (messages) it accepted, from sending to the
	// answer.
	CallbackP50ms  float64 `json:"callback_p50_ms"`
	CallbackP99ms  float64 `json:"callback_p99_ms"`
	Expected       int64   `json:"deliveries_expected"`
	Received       int64   `json:"deliveries_received"`
	Lost           int64   `json:"deliveries_lost"`
	Repeats        int64   `json:"deliveries_repeated"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	P50ms          float64 `json:"latency_p50_ms"`
	P90ms          float64 `json:"latency_p90_ms"`
	P99ms          float64 `json:"latency_p99_ms"`
	P999ms         float64 `json:"latency_p999_ms"`
	Maxms          float64 `json:"latency_max_ms"`
	HubCPU         float64 `json:"hub_cpu_seconds"`
	HubCPUPerM     float64 `json:"hub_cpu_seconds_per_million_deliveries"`
	HubRSSBefore   int64   `json:"hub_rss_bytes_before"`
	HubRSSLoaded   int64   `json:"hub_rss_bytes_loaded"`
	HubRSSAfter    int64   `json:"hub_rss_bytes_after"`
	RSSPerConnKiB  float64 `json:"hub_rss_kib_per_conn"`
	GoroutinesIdle int64   `json:"hub_goroutines_before"`
	GoroutinesEnd  int64   `json:"hub_goroutines_after"`
	ToolCPU        float64 `json:"tool_cpu_seconds"`
	Seconds        float64 `json:"seconds"`
	// BytesPerDelivery is what the clients read per delivery, protocol
	// headers included: the servers' frames should be of one size.
	BytesPerDelivery float64 `json:"bytes_per_delivery"`
	// RSSIdleKiB is the server's RSS per connection once every client
	// is connected and subscribed, before any publishing.
	RSSIdleKiB float64 `json:"rss_kib_per_idle_conn,omitempty"`
	// With -forward: what the backend received of the callbacks the hub
	// accepted, how fast, and how long after the last callback it had
	// them all.
	ForwardAccepted int64   `json:"forward_accepted,omitempty"`
	ForwardReceived int64   `json:"forward_received,omitempty"`
	ForwardMissing  int64   `json:"forward_missing,omitempty"`
	ForwardRepeats  int64   `json:"forward_repeats,omitempty"`
	ForwardsPerS    float64 `json:"forwards_per_s,omitempty"`
	// ForwardsPerSPublishing is the rate while callbacks were still
	// coming: the forwards compete with them for the hub and Redis.
	ForwardsPerSPublishing float64 `json:"forwards_per_s_while_publishing,omitempty"`
	ForwardDrainSeconds    float64 `json:"forward_drain_seconds,omitempty"`
	// Spread is how the clients' own p99s lie, when the run measures it
	// (the room preset): the median client's against the slowest's.
	Spread *spread `json:"client_spread,omitempty"`
	// ClientsGone is how many clients the server had closed (or lost) by
	// the end of the step.
	ClientsGone int64 `json:"clients_gone,omitempty"`
}

// measure connects the fleet, publishes for the duration, drains, and
// reads the hub's cost.
func measure(ctx context.Context, cfg Config, e *env, progress io.Writer) (*Result, error) {
	res := &Result{Preset: cfg.Preset.name, Target: cfg.Target, Broker: brokerOf(cfg), Conns: cfg.Conns, Channels: cfg.Channels, TargetRate: cfg.Rate}
	_, res.HubRSSBefore, _ = procStats(e.pid)
	res.GoroutinesIdle = goroutines(e.hub)
	fmt.Fprintf(progress, "connecting %d clients over %d channels…\n", cfg.Conns, cfg.Channels)
	f, took, err := connect(ctx, cfg, e.hub, progress)
	if err != nil {
		return nil, err
	}
	res.ConnectSeconds = took.Seconds()
	step, err := publishFor(ctx, cfg, e, f, cfg.Rate, progress)
	f.close()
	if err != nil {
		return nil, err
	}
	step.fill(res)
	// Memory flat: the hub gives back what the clients took.
	time.Sleep(3 * time.Second)
	_, res.HubRSSAfter, _ = procStats(e.pid)
	res.GoroutinesEnd = goroutines(e.hub)
	return res, nil
}

// step is one publishing period.
type step struct {
	rate            float64
	acked, refused  int64
	expected, got   int64
	repeats         int64
	seconds         float64
	hubCPU, toolCPU float64
	rssLoaded       int64
	wire            int64 // bytes the clients read
	// settle is how long after publishing ended the last delivery
	// came (or the 5 s the drain waits).
	settle            time.Duration
	p50, p90, p99     float64
	p999, max         float64
	cbP50, cbP99      float64 // how long the accepted messages took to be answered
	conns, connsAlive int
	// forwarding: what the backend received in this step, and when it
	// had every accepted callback, counted from the end of publishing.
	forwarding bool
	fwd        counts
	fwdByEnd   int64 // received by the end of publishing
	drain      time.Duration
	// spread is the clients' own p99s, when the fleet records them.
	spread *spread
	gone   int64 // clients closed by the server so far
}

func (s step) fill(r *Result) {
	r.Published, r.Refused, r.Expected, r.Received = s.acked, s.refused, s.expected, s.got
	r.Lost = max(s.expected-s.got, 0)
	r.Repeats = s.repeats
	r.Seconds = s.seconds
	r.CallbacksPerS = float64(s.acked) / s.seconds
	r.DeliveriesPerS = float64(s.got) / s.seconds
	r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Maxms = s.p50, s.p90, s.p99, s.p999, s.max
	r.CallbackP50ms, r.CallbackP99ms = s.cbP50, s.cbP99
	r.Spread, r.ClientsGone = s.spread, s.gone
	r.HubCPU, r.ToolCPU, r.HubRSSLoaded = s.hubCPU, s.toolCPU, s.rssLoaded
	if s.got > 0 {
		r.BytesPerDelivery = float64(s.wire) / float64(s.got)
	}
	if s.got > 0 {
		r.HubCPUPerM = s.hubCPU / float64(s.got) * 1e6
	}
	if s.forwarding {
		r.ForwardAccepted, r.ForwardReceived, r.ForwardMissing, r.ForwardRepeats = s.fwd.accepted, s.fwd.distinct, s.fwd.missing, s.fwd.repeats
		r.ForwardDrainSeconds = s.drain.Seconds()
		r.ForwardsPerS = float64(s.fwd.distinct) / (s.seconds + s.drain.Seconds())
		r.ForwardsPerSPublishing = float64(s.fwdByEnd) / s.seconds
	}
	if r.Conns > 0 {
		r.RSSPerConnKiB = float64(s.rssLoaded-r.HubRSSBefore) / float64(r.Conns) / 1024
	}
}

func publishFor(ctx context.Context, cfg Config, e *env, f *fleet, rate float64, progress io.Writer) (step, error) {
	c := cfg
	c.Rate = rate
	p := newPublisher(c, e.hub)
	answers := newAnswerTimes()
	p.OnAck = func(seq int64, sent time.Time) {
		answers.record(time.Since(sent))
		if e.backend != nil {
			// The backend must receive each callback the hub accepted.
			e.backend.expect(seq)
		}
	}
	var fwd0 counts
	if e.backend != nil {
		fwd0 = e.backend.counts()
	}
	f.latency() // start clean
	if f.clients != nil {
		clientSpread(f.clients)
	}
	got0, rep0, wire0 := f.received.Load(), f.repeats.Load(), f.wire.Load()
	cpu0, _, _ := procStats(e.pid)
	tool0 := selfCPU()
	start := time.Now()
	pctx, stop := context.WithTimeout(ctx, cfg.Duration)
	done := make(chan struct{})
	if !cfg.Preset.idle {
		go func() { p.Run(pctx); close(done) }()
	} else {
		close(done)
	}
	tick := time.NewTicker(time.Second)
	for waiting := true; waiting; {
		select {
		case <-pctx.Done():
			waiting = false
		case <-tick.C:
			_, rss, _ := procStats(e.pid)
			fmt.Fprintf(progress, "  %4.0fs  callbacks %d  deliveries %d/%d  hub rss %d MiB",
				time.Since(start).Seconds(), p.Acked.Load(), f.received.Load()-got0, p.Expected.Load(), rss>>20)
			if e.backend != nil {
				fmt.Fprintf(progress, "  forwarded %d", e.backend.counts().distinct-fwd0.distinct)
			}
			fmt.Fprintln(progress)
		}
	}
	tick.Stop()
	stop()
	<-done
	// Idle keep-alive connections would count as the hub's goroutines.
	defer p.client.CloseIdleConnections()
	elapsed := time.Since(start)
	var (
		drain    time.Duration
		fwdByEnd int64
	)
	if e.backend != nil {
		fwdByEnd = e.backend.counts().distinct - fwd0.distinct
		fmt.Fprintf(progress, "  waiting for the backend to receive every accepted callback…\n")
		// Not an error here: the run reports what is missing and fails.
		drain, _ = e.backend.waitDrained(ctx, cfg.drainLimit)
	}
	// Drain: what was published arrives, or is lost.
	drainStart := time.Now()
	deadline := drainStart.Add(5 * time.Second)
	for f.received.Load()-got0 < p.Expected.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(drainStart)
	cpu1, rss, _ := procStats(e.pid)
	h := f.latency()
	s := step{
		rate: rate, acked: p.Acked.Load(), refused: p.Refused.Load(), expected: p.Expected.Load(),
		got: f.received.Load() - got0, repeats: f.repeats.Load() - rep0, seconds: elapsed.Seconds(), hubCPU: cpu1 - cpu0, toolCPU: selfCPU() - tool0,
		rssLoaded: rss, wire: f.wire.Load() - wire0, settle: drained,
		p50: ms(h.ValueAtQuantile(50)), p90: ms(h.ValueAtQuantile(90)), p99: ms(h.ValueAtQuantile(99)),
		p999: ms(h.ValueAtQuantile(99.9)), max: ms(h.Max()),
	}
	s.cbP50, s.cbP99 = answers.quantiles()
	s.gone = f.gone.Load()
	if f.clients != nil {
		sp := clientSpread(f.clients)
		s.spread = &sp
	}
	if e.backend != nil {
		c := e.backend.counts()
		s.forwarding, s.drain, s.fwdByEnd = true, drain, fwdByEnd
		s.fwd = counts{accepted: c.accepted - fwd0.accepted, missing: c.missing, distinct: c.distinct - fwd0.distinct, repeats: c.repeats - fwd0.repeats}
	}
	return s, ctx.Err()
}

func ms(us int64) float64 { return float64(us) / 1000 }

// findMax raises the rate by half each step, with the same clients, until
// deliveries are lost or p99 passes 1s, and reports the last good step.
func findMax(ctx context.Context, cfg Config, e *env, progress io.Writer) (*Result, error) {
	res := &Result{Preset: cfg.Preset.name, Target: cfg.Target, Broker: brokerOf(cfg), Conns: cfg.Conns, Channels: cfg.Channels}
	_, res.HubRSSBefore, _ = procStats(e.pid)
	res.GoroutinesIdle = goroutines(e.hub)
	f, took, err := connect(ctx, cfg, e.hub, progress)
	if err != nil {
		return nil, err
	}
	res.ConnectSeconds = took.Seconds()
	defer func() {
		f.close()
		time.Sleep(3 * time.Second)
		_, res.HubRSSAfter, _ = procStats(e.pid)
		res.GoroutinesEnd = goroutines(e.hub)
	}()
	var good *step
	// The rate rises by half each step until one fails; then two more
	// steps halve the interval between the last good rate and the failed
	// one, so that the answer is not only a power of 1.5.
	rate, failed := cfg.Rate, 0.0
	for i := 0; i < 12; i++ {
		fmt.Fprintf(progress, "step %d: %.0f callbacks/s (%.0f deliveries/s)\n", i+1, rate, rate*float64(cfg.Conns)/float64(max(cfg.Channels, 1)))
		s, err := publishFor(ctx, cfg, e, f, rate, progress)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "  → %.0f deliveries/s, lost %d, repeated %d, p99 %.1f ms\n", float64(s.got)/s.seconds, s.expected-s.got, s.repeats, s.p99)
		ok := s.got == s.expected && s.repeats == 0 && s.p99 <= 1000 && float64(s.acked) >= 0.9*rate*s.seconds
		if ok {
			good = &s
		} else {
			failed = rate
		}
		if failed == 0 {
			rate *= 1.5
			continue
		}
		if good == nil || failed/good.rate < 1.1 {
			break
		}
		rate = (good.rate + failed) / 2
	}
	if good == nil {
		return nil, fmt.Errorf("even the first step (%.0f callbacks/s) lost deliveries or was too slow", cfg.Rate)
	}
	res.TargetRate = good.rate
	good.fill(res)
	return res, nil // the deferred close fills in the after figures first
}

func brokerOf(cfg Config) string {
	switch {
	case cfg.Target == targetFloor:
		return "none"
	case !cfg.Start:
		return "external"
	case cfg.Redis:
		return "redis"
	}
	return "memory"
}

// goroutines reads go_goroutines from the hub's metrics; -1 when it
// cannot.
func goroutines(base string) int64 {
	m, _ := hubload.Scrape(context.Background(), base)
	n, ok := m["go_goroutines"]
	if !ok {
		return -1
	}
	return int64(n)
}

func (r *Result) print(w io.Writer, jsonOnly bool) {
	if !jsonOnly {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		row := func(k, format string, v ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, v...)...) }
		row("scenario", "%s against %s (%s broker)", orDash(r.Preset), r.Target, r.Broker)
		row("connections", "%d over %d channels, connected in %.1fs", r.Conns, r.Channels, r.ConnectSeconds)
		row("callbacks", "%d acked, %d refused, %.0f/s (target %.0f/s); answered in p50 %.2f ms, p99 %.2f ms",
			r.Published, r.Refused, r.CallbacksPerS, r.TargetRate, r.CallbackP50ms, r.CallbackP99ms)
		row("deliveries", "%d of %d expected, %d lost, %d repeated, %.0f/s", r.Received, r.Expected, r.Lost, r.Repeats, r.DeliveriesPerS)
		row("latency", "p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms", r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Maxms)
		if sp := r.Spread; sp != nil {
			row("client p99s", "median client %.1f ms, slowest %.1f ms (%.2f×), over %d clients", sp.MedianP99ms, sp.SlowestP99ms, sp.ratio(), sp.Clients)
		}
		if r.ForwardAccepted > 0 {
			row("forwards", "%d of %d accepted received by the backend, %d missing, %d repeated; %.0f/s while publishing, %.0f/s to the end; all in %.2fs after the last callback",
				r.ForwardReceived, r.ForwardAccepted, r.ForwardMissing, r.ForwardRepeats, r.ForwardsPerSPublishing, r.ForwardsPerS, r.ForwardDrainSeconds)
		}
		row("hub cpu", "%.1f s, %.1f s per million deliveries", r.HubCPU, r.HubCPUPerM)
		row("hub rss", "%d MiB before, %d MiB loaded (%.1f KiB per connection), %d MiB after", r.HubRSSBefore>>20, r.HubRSSLoaded>>20, r.RSSPerConnKiB, r.HubRSSAfter>>20)
		row("hub goroutines", "%d before, %d after", r.GoroutinesIdle, r.GoroutinesEnd)
		row("hubbench cpu", "%.1f s (it shares the machine)", r.ToolCPU)
		tw.Flush()
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "%s\n", b)
}

func orDash(s string) string {
	if s == "" {
		return "custom"
	}
	return s
}
