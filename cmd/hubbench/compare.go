package main

// The compare preset: imhub, Centrifugo and the floor in turns, in one
// run, the same load on each, and the ratios between them. Each server
// gets a Redis of its own (the floor has no broker), and on each, with
// the same clients:
//
//  1. load: cfg.Rate messages/s over cfg.Channels channels for
//     cfg.Duration (10,000 connections, 100 channels, 200/s: 20,000
//     deliveries/s);
//  2. saturation: 32 senders as fast as the server answers them, for
//     half of cfg.Duration; the deliveries/s that came, and the load
//     tool's own CPU, which shares the machine;
//  3. ingest, after the clients have gone: 64 senders, no subscribers,
//     for half of cfg.Duration: imhub's signed callbacks/s against
//     Centrifugo's publish API calls/s, each on its own Redis.
//
// Idle RSS per connection is read once every client is subscribed, before
// any publishing.

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// compareSide is one server's figures.
type compareSide struct {
	Target  string  `json:"target"`
	IdleKiB float64 `json:"rss_kib_per_idle_conn"`
	Load    *Result `json:"load"`
	Sat     *Result `json:"saturation"`
	Ingest  *Result `json:"ingest,omitempty"`
}

func (c Config) compareBudget() time.Duration {
	perTarget := 2*time.Minute + time.Duration(c.Conns)*4*time.Millisecond + 2*c.Duration
	return time.Duration(3*max(c.Rounds, 1)) * perTarget
}

// compareRound is one measurement of each server, taken in turns.
type compareRound []compareSide

// runCompare measures each target in turn, cfg.Rounds times, and prints
// the figures and ratios. Measuring the servers alternately, rather than
// each several times in a row, shares the machine's drift (other work on
// shared cores) between them.
func runCompare(ctx context.Context, cfg Config, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.compareBudget())
	defer cancel()
	var rounds []compareRound
	frame := cfg.FrameBytes
	for r := range max(cfg.Rounds, 1) {
		var round compareRound
		for _, t := range []string{targetHub, targetCentrifugo, targetFloor} {
			c := cfg
			c.Target = t
			if t == targetFloor {
				c.Redis = false
				c.FrameBytes = frame
			}
			if cfg.Rounds > 1 {
				fmt.Fprintf(progress, "== round %d of %d: %s\n", r+1, cfg.Rounds, t)
			} else {
				fmt.Fprintf(progress, "== %s\n", t)
			}
			side, err := compareOne(ctx, c, progress)
			if err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			// The floor's frames are the size of the hub's, as first
			// measured: the same in every round.
			if t == targetHub && frame == 0 && side.Load.BytesPerDelivery > floorHeader {
				frame = int(math.Round(side.Load.BytesPerDelivery))
			}
			round = append(round, side)
		}
		rounds = append(rounds, round)
	}
	printReport(out, cfg.JSONOnly, func(w io.Writer) { printCompare(w, cfg, rounds) }, rounds)
	return nil
}

func compareOne(ctx context.Context, cfg Config, progress io.Writer) (compareSide, error) {
	side := compareSide{Target: cfg.Target}
	e, err := setUp(ctx, cfg, progress)
	if err != nil {
		return side, err
	}
	defer e.tearDown()
	_, rss0, _ := procStats(e.pid)
	fmt.Fprintf(progress, "connecting %d clients over %d channels…\n", cfg.Conns, cfg.Channels)
	f, took, err := connect(ctx, cfg, e.hub, progress)
	if err != nil {
		return side, err
	}
	defer f.close()
	// Let the server settle before its idle memory is read.
	time.Sleep(2 * time.Second)
	_, rssIdle, _ := procStats(e.pid)
	if cfg.Conns > 0 {
		side.IdleKiB = float64(rssIdle-rss0) / float64(cfg.Conns) / 1024
	}
	result := func(c Config, s step) *Result {
		r := &Result{Preset: c.Preset.name, Target: c.Target, Broker: brokerOf(c), Conns: c.Conns, Channels: c.Channels,
			TargetRate: c.Rate, HubRSSBefore: rss0, ConnectSeconds: took.Seconds(), RSSIdleKiB: side.IdleKiB}
		s.fill(r)
		if s.settle > 0 && s.got > 0 {
			// At saturation deliveries may still come after the last
			// message is acknowledged: they count over the whole time.
			r.DeliveriesPerS = float64(s.got) / (s.seconds + s.settle.Seconds())
		}
		return r
	}
	fmt.Fprintf(progress, "load: %.0f messages/s for %s\n", cfg.Rate, cfg.Duration)
	s, err := publishFor(ctx, cfg, e, f, cfg.Rate, progress)
	if err != nil {
		return side, err
	}
	side.Load = result(cfg, s)
	sat := cfg
	sat.Publishers, sat.Duration = 32, cfg.Duration/2
	fmt.Fprintf(progress, "saturation: %d senders as fast as answered for %s\n", sat.Publishers, sat.Duration)
	s, err = publishFor(ctx, sat, e, f, 0, progress)
	if err != nil {
		return side, err
	}
	side.Sat = result(sat, s)
	f.close()
	if cfg.Target == targetFloor {
		return side, nil
	}
	ing := cfg
	ing.Conns, ing.Publishers, ing.Duration = 0, 64, cfg.Duration/2
	fmt.Fprintf(progress, "ingest: %d senders, no subscribers, for %s\n", ing.Publishers, ing.Duration)
	s, err = publishFor(ctx, ing, e, newFleet(), 0, progress)
	if err != nil {
		return side, err
	}
	side.Ingest = result(ing, s)
	return side, nil
}

// compareRow is one figure of each side, and whether less is better.
type compareRow struct {
	name   string
	unit   string
	of     func(compareSide) (float64, bool)
	digits int
}

func compareRows() []compareRow {
	ld := func(f func(*Result) float64) func(compareSide) (float64, bool) {
		return func(s compareSide) (float64, bool) {
			if s.Load == nil {
				return 0, false
			}
			return f(s.Load), true
		}
	}
	st := func(f func(*Result) float64) func(compareSide) (float64, bool) {
		return func(s compareSide) (float64, bool) {
			if s.Sat == nil {
				return 0, false
			}
			return f(s.Sat), true
		}
	}
	return []compareRow{
		{"load: deliveries/s", "", ld(func(r *Result) float64 { return r.DeliveriesPerS }), 0},
		{"load: CPU per 10⁶ deliveries", "s", ld(func(r *Result) float64 { return r.HubCPUPerM }), 1},
		{"load: p99 latency", "ms", ld(func(r *Result) float64 { return r.P99ms }), 1},
		{"load: p50 latency", "ms", ld(func(r *Result) float64 { return r.P50ms }), 1},
		{"load: loss", "%", ld(lossPercent), 4},
		{"load: RSS per connection", "KiB", ld(func(r *Result) float64 { return r.RSSPerConnKiB }), 1},
		{"idle: RSS per subscribed connection", "KiB", func(s compareSide) (float64, bool) { return s.IdleKiB, s.Load != nil }, 1},
		{"bytes read per delivery", "B", ld(func(r *Result) float64 { return r.BytesPerDelivery }), 0},
		{"saturation: deliveries/s", "", st(func(r *Result) float64 { return r.DeliveriesPerS }), 0},
		{"saturation: CPU per 10⁶ deliveries", "s", st(func(r *Result) float64 { return r.HubCPUPerM }), 1},
		{"saturation: p99 latency", "ms", st(func(r *Result) float64 { return r.P99ms }), 1},
		{"saturation: loss", "%", st(lossPercent), 4},
		{"saturation: server CPU share", "cores", st(func(r *Result) float64 { return r.HubCPU / r.Seconds }), 2},
		{"saturation: load tool CPU share", "cores", st(func(r *Result) float64 { return r.ToolCPU / r.Seconds }), 2},
		{"ingest: messages/s accepted (0 subscribers)", "", func(s compareSide) (float64, bool) {
			if s.Ingest == nil {
				return 0, false
			}
			return s.Ingest.CallbacksPerS, true
		}, 0},
		{"ingest: CPU per 10⁴ messages", "s", func(s compareSide) (float64, bool) {
			if s.Ingest == nil || s.Ingest.Published == 0 {
				return 0, false
			}
			return s.Ingest.HubCPU / float64(s.Ingest.Published) * 1e4, true
		}, 2},
	}
}

func lossPercent(r *Result) float64 {
	if r.Expected == 0 {
		return 0
	}
	return float64(r.Lost) / float64(r.Expected) * 100
}

// ratio is a/b as text, "—" when it has no meaning.
func ratio(a, b float64, aok, bok bool) string {
	switch {
	case !aok || !bok:
		return "—"
	case a == 0 && b == 0:
		return "="
	case b == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// printCompare writes the figures of each side and the ratios as a
// Markdown table, ready for BENCHMARKS.md. Over several rounds a figure is
// the median of the rounds', and a ratio the median of the rounds' ratios
// (each round's sides measured close together), with their range.
func printCompare(w io.Writer, cfg Config, rounds []compareRound) {
	fmt.Fprintf(w, "\n%d connections, %d channels, %.0f messages/s (%.0f deliveries/s) for %s; saturation and ingest %s each",
		cfg.Conns, cfg.Channels, cfg.Rate, cfg.Rate*float64(cfg.Conns)/float64(max(cfg.Channels, 1)), cfg.Duration, cfg.Duration/2)
	if len(rounds) > 1 {
		fmt.Fprintf(w, "; %d rounds in turns, medians (ratios: median, and range)", len(rounds))
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintln(w, "| figure | imhub | Centrifugo | floor | imhub / Centrifugo | imhub / floor |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range compareRows() {
		cell := func(target string) string {
			v, ok := r.median(rounds, target)
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%.*f %s", r.digits, v, r.unit)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.name, cell(targetHub), cell(targetCentrifugo), cell(targetFloor),
			r.ratios(rounds, targetHub, targetCentrifugo), r.ratios(rounds, targetHub, targetFloor))
	}
	fmt.Fprintln(w)
}

// side is the round's measurement of target.
func (rd compareRound) side(target string) compareSide {
	for _, s := range rd {
		if s.Target == target {
			return s
		}
	}
	return compareSide{Target: target}
}

// median is the median over the rounds of the row's figure for target.
func (r compareRow) median(rounds []compareRound, target string) (float64, bool) {
	var vs []float64
	for _, rd := range rounds {
		if v, ok := r.of(rd.side(target)); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	return median(vs), true
}

// ratios is the row's a/b of each round as text: the one ratio, or the
// median with the range over several rounds.
func (r compareRow) ratios(rounds []compareRound, a, b string) string {
	return ratioOverRounds(len(rounds), func(i int) (float64, float64, bool, bool) {
		av, aok := r.of(rounds[i].side(a))
		bv, bok := r.of(rounds[i].side(b))
		return av, bv, aok, bok
	})
}

// ratioOverRounds is a/b over n rounds as text, pair(i) giving round i's
// two figures and whether each was measured: the one ratio, or the median
// of the rounds' own ratios with their range, since each round's sides
// were measured close together and the machine's load moves between
// rounds.
func ratioOverRounds(n int, pair func(i int) (a, b float64, aok, bok bool)) string {
	var vs []float64
	text := "—"
	for i := range n {
		av, bv, aok, bok := pair(i)
		text = ratio(av, bv, aok, bok)
		if aok && bok && bv != 0 {
			vs = append(vs, av/bv)
		}
	}
	if n == 1 || len(vs) < n {
		// One round, or rounds without a ratio of meaning: the last.
		return text
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(vs), slices.Min(vs), slices.Max(vs))
}

// median is the middle of vs, or the mean of the two in the middle; 0 for
// none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
