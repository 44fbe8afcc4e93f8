package main

// The room preset: one busy channel, every client in it, at fixed message
// rates stepped up past the servers' knees. Each target (imhub,
// Centrifugo, the floor) is measured in turn, fleet by fleet: a fresh
// server, the fleet connected to the one channel, then each rate for
// -duration with the same clients. Besides deliveries/s, the fleet's
// latency percentiles, CPU per delivery and loss, each step gives the
// spread of per-client latency (clientlat.go): the slowest client's p99
// against the median client's, which says whether some clients are
// served seconds late while others are current.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultRoomSteps are the room preset's fleets and rates: 2,000 clients
// at 10, 25, 50 and 100 messages/s (20,000 to 200,000 deliveries/s), and
// 10,000 at 5 and 10.
const defaultRoomSteps = "2000:10,25,50,100;10000:5,10"

// roomFleet is a number of clients in the one channel and the rates they
// are measured at, in order.
type roomFleet struct {
	Clients int
	Rates   []float64
}

// parseRoomSteps reads -room-steps: fleets separated by ";", each
// "clients:rate,rate,…".
func parseRoomSteps(s string) ([]roomFleet, error) {
	var plan []roomFleet
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, rates, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("-room-steps %q: want clients:rate,rate,… in each step", part)
		}
		clients, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || clients < 1 {
			return nil, fmt.Errorf("-room-steps %q: clients must be a whole number above 0", part)
		}
		fl := roomFleet{Clients: clients}
		for r := range strings.SplitSeq(rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("-room-steps %q: rates must be messages/s above 0", part)
			}
			fl.Rates = append(fl.Rates, v)
		}
		plan = append(plan, fl)
	}
	if len(plan) == 0 {
		return nil, errors.New("-room-steps names no step")
	}
	return plan, nil
}

// parseTargets reads -targets: servers separated by commas, each named
// once.
func parseTargets(s string) ([]string, error) {
	var ts []string
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t != targetHub && t != targetCentrifugo && t != targetFloor:
			return nil, fmt.Errorf("-targets: %q is not imhub, centrifugo or floor", t)
		case slices.Contains(ts, t):
			return nil, fmt.Errorf("-targets names %s twice", t)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// checkRoom refuses a room run it could not carry out.
func checkRoom(c Config) error {
	plan, err := parseRoomSteps(c.RoomSteps)
	if err != nil {
		return err
	}
	targets, err := parseTargets(c.Targets)
	if err != nil {
		return err
	}
	switch {
	case !c.Start:
		return errors.New("room starts each server itself: give -start")
	case slices.Contains(targets, targetCentrifugo) && !c.Redis:
		return errors.New("Centrifugo is measured with its Redis engine: give -redis (or leave it out of -targets)")
	case c.UserChannels || c.Forward:
		return errors.New("room has one group channel: no -user-channels, no -forward")
	}
	for _, fl := range plan {
		if fl.Clients > 28000*c.Sources {
			return fmt.Errorf("-room-steps: %d clients are more than the source addresses have ports: raise -sources", fl.Clients)
		}
	}
	return nil
}

// RoomRun is one step: a target, its fleet, a rate, and what it did.
type RoomRun struct {
	Round   int     `json:"round"`
	Target  string  `json:"target"`
	Clients int     `json:"clients"`
	Rate    float64 `json:"messages_per_s"`
	Result  *Result `json:"result"`
}

// RoomReport is the room preset's figures, each step in the order run.
type RoomReport struct {
	Runs []RoomRun `json:"runs"`
}

// roomBudget bounds a whole room run.
func (c Config) roomBudget(plan []roomFleet, targets int) time.Duration {
	var per time.Duration
	for _, fl := range plan {
		per += 2*time.Minute + time.Duration(fl.Clients)*4*time.Millisecond + time.Duration(len(fl.Rates))*(c.Duration+10*time.Second)
	}
	return time.Duration(max(c.Rounds, 1)*targets) * per
}

func runRoom(ctx context.Context, cfg Config, out, progress io.Writer) error {
	plan, err := parseRoomSteps(cfg.RoomSteps)
	if err != nil {
		return err
	}
	targets, err := parseTargets(cfg.Targets)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.roomBudget(plan, len(targets)))
	defer cancel()
	var rep RoomReport
	frame := cfg.FrameBytes
	for r := range max(cfg.Rounds, 1) {
		for _, t := range targets {
			for _, fl := range plan {
				c := cfg
				c.Target, c.Conns, c.Channels, c.ClientSpread = t, fl.Clients, 1, true
				if t == targetFloor {
					c.Redis, c.FrameBytes = false, frame
				}
				fmt.Fprintf(progress, "== round %d of %d: %s, %d clients in one channel\n", r+1, cfg.Rounds, t, fl.Clients)
				runs, err := roomSteps(ctx, c, fl.Rates, progress)
				if err != nil {
					return fmt.Errorf("%s, %d clients: %w", t, fl.Clients, err)
				}
				for _, run := range runs {
					run.Round = r + 1
					rep.Runs = append(rep.Runs, run)
					// The floor's frames are the size of the hub's, as
					// first measured.
					if t == targetHub && frame == 0 && run.Result.BytesPerDelivery > floorHeader {
						frame = int(math.Round(run.Result.BytesPerDelivery))
					}
				}
			}
		}
	}
	printReport(out, cfg.JSONOnly, func(w io.Writer) { printRoom(w, cfg, plan, targets, rep) }, rep)
	return nil
}

// roomSteps starts the server, connects the fleet to the one channel, and
// measures each rate in turn with the same clients.
func roomSteps(ctx context.Context, cfg Config, rates []float64, progress io.Writer) ([]RoomRun, error) {
	e, err := setUp(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	defer e.tearDown()
	_, rss0, _ := procStats(e.pid)
	fmt.Fprintf(progress, "connecting %d clients…\n", cfg.Conns)
	f, took, err := connect(ctx, cfg, e.hub, progress)
	if err != nil {
		return nil, err
	}
	defer f.close()
	var runs []RoomRun
	for _, rate := range rates {
		fmt.Fprintf(progress, "%.0f messages/s (%.0f deliveries/s) for %s\n", rate, rate*float64(cfg.Conns), cfg.Duration)
		s, err := publishFor(ctx, cfg, e, f, rate, progress)
		if err != nil {
			return nil, err
		}
		r := &Result{Preset: cfg.Preset.name, Target: cfg.Target, Broker: brokerOf(cfg), Conns: cfg.Conns, Channels: 1,
			TargetRate: rate, HubRSSBefore: rss0, ConnectSeconds: took.Seconds()}
		s.fill(r)
		if sp := r.Spread; sp != nil {
			fmt.Fprintf(progress, "  → %.0f deliveries/s, p99 %.1f ms, client p99s %.1f / %.1f ms, lost %d\n",
				r.DeliveriesPerS, r.P99ms, sp.MedianP99ms, sp.SlowestP99ms, r.Lost)
		}
		runs = append(runs, RoomRun{Target: cfg.Target, Clients: cfg.Conns, Rate: rate, Result: r})
	}
	return runs, nil
}

// roomFigure is one column of the room table: a figure of a step's result.
type roomFigure struct {
	head   string
	of     func(*Result) float64
	format func(float64) string
}

func roomFigures() []roomFigure {
	ms := func(v float64) string { return fmt.Sprintf("%.1f ms", v) }
	spreadOr := func(f func(spread) float64) func(*Result) float64 {
		return func(r *Result) float64 {
			if r.Spread == nil {
				return 0
			}
			return f(*r.Spread)
		}
	}
	return []roomFigure{
		{"deliveries/s", func(r *Result) float64 { return r.DeliveriesPerS }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		{"p50", func(r *Result) float64 { return r.P50ms }, ms},
		{"p99", func(r *Result) float64 { return r.P99ms }, ms},
		{"p99.9", func(r *Result) float64 { return r.P999ms }, ms},
		{"median client's p99", spreadOr(func(s spread) float64 { return s.MedianP99ms }), ms},
		{"slowest client's p99", spreadOr(func(s spread) float64 { return s.SlowestP99ms }), ms},
		{"spread", spreadOr(spread.ratio), func(v float64) string { return fmt.Sprintf("%.2f×", v) }},
		{"CPU per 10⁶ deliveries", func(r *Result) float64 { return r.HubCPUPerM }, func(v float64) string { return fmt.Sprintf("%.1f s", v) }},
		{"loss", lossPercent, func(v float64) string { return fmt.Sprintf("%.3f %%", v) }},
		{"clients closed", func(r *Result) float64 { return float64(r.ClientsGone) }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	}
}

// roomSustainedP99 is the tail within which a server is said to sustain
// a room's rate, in milliseconds: a quarter of a second, about where a
// live room's viewers notice that the chat lags the stream.
const roomSustainedP99 = 250.0

// results are target's results of one step, a round's each.
func (rep RoomReport) results(target string, clients int, rate float64) []*Result {
	var rs []*Result
	for _, run := range rep.Runs {
		if run.Target == target && run.Clients == clients && run.Rate == rate {
			rs = append(rs, run.Result)
		}
	}
	return rs
}

// result is target's result of one step in one round, or nil.
func (rep RoomReport) result(round int, target string, clients int, rate float64) *Result {
	for _, run := range rep.Runs {
		if run.Round == round && run.Target == target && run.Clients == clients && run.Rate == rate {
			return run.Result
		}
	}
	return nil
}

// roomRatio is one column of the room's table of ratios: a figure of one
// target's result over another's, in the same round.
type roomRatio struct {
	head string
	a, b string
	of   func(*Result) float64
}

func roomRatios() []roomRatio {
	p99 := func(r *Result) float64 { return r.P99ms }
	cpu := func(r *Result) float64 { return r.HubCPUPerM }
	return []roomRatio{
		{"p99, imhub / Centrifugo", targetHub, targetCentrifugo, p99},
		{"p99.9, imhub / Centrifugo", targetHub, targetCentrifugo, func(r *Result) float64 { return r.P999ms }},
		// The floor does nothing but write: where its tail is near a
		// server's, the clients' reading, not the server, sets it.
		{"p99, floor / Centrifugo", targetFloor, targetCentrifugo, p99},
		{"CPU per delivery, imhub / Centrifugo", targetHub, targetCentrifugo, cpu},
		{"CPU per delivery, imhub / floor", targetHub, targetFloor, cpu},
	}
}

// sustains is the largest of fl's rates at which target's median p99 is
// within roomSustainedP99, nothing was lost and the deliveries asked
// arrived (a server whose publisher cannot send the rate does not sustain
// it, however short its tail), whether that is the fleet's
// highest rate (so that a higher step might be sustained too), and whether
// any was.
func (rep RoomReport) sustains(target string, fl roomFleet) (rate float64, top, ok bool) {
	for i, r := range fl.Rates {
		rs := rep.results(target, fl.Clients, r)
		if len(rs) == 0 {
			continue
		}
		p99s, rates := make([]float64, len(rs)), make([]float64, len(rs))
		var lost int64
		for j, x := range rs {
			p99s[j], rates[j], lost = x.P99ms, x.DeliveriesPerS, lost+x.Lost
		}
		asked := r * float64(fl.Clients)
		if median(p99s) <= roomSustainedP99 && lost == 0 && median(rates) >= 0.95*asked && r >= rate {
			rate, top, ok = r, i == len(fl.Rates)-1, true
		}
	}
	return rate, top, ok
}

// printRoom writes the steps as Markdown tables, ready for BENCHMARKS.md:
// a row for each fleet, rate and target, each figure the median over the
// rounds; then each step's ratios, the median of the rounds' own ratios
// with their range; then the largest rate each target sustained.
func printRoom(w io.Writer, cfg Config, plan []roomFleet, targets []string, rep RoomReport) {
	fmt.Fprintf(w, "\nroom: every client in one channel, %s per step", cfg.Duration)
	if cfg.Rounds > 1 {
		fmt.Fprintf(w, "; %d rounds in turns, medians", cfg.Rounds)
	}
	fmt.Fprint(w, "\n\n")
	figs := roomFigures()
	fmt.Fprint(w, "| clients | messages/s | server |")
	for _, f := range figs {
		fmt.Fprintf(w, " %s |", f.head)
	}
	fmt.Fprint(w, "\n|---|---|---|")
	fmt.Fprint(w, strings.Repeat("---|", len(figs)))
	fmt.Fprintln(w)
	for _, fl := range plan {
		for _, rate := range fl.Rates {
			for _, t := range targets {
				rs := rep.results(t, fl.Clients, rate)
				if len(rs) == 0 {
					continue
				}
				fmt.Fprintf(w, "| %d | %g | %s |", fl.Clients, rate, t)
				for _, f := range figs {
					vs := make([]float64, len(rs))
					for i, r := range rs {
						vs[i] = f.of(r)
					}
					fmt.Fprintf(w, " %s |", f.format(median(vs)))
				}
				fmt.Fprintln(w)
			}
		}
	}
	fmt.Fprintln(w)
	printRoomRatios(w, cfg, plan, targets, rep)
}

// printRoomRatios writes the ratios of each step between the targets that
// were run, and the largest rate each sustained.
func printRoomRatios(w io.Writer, cfg Config, plan []roomFleet, targets []string, rep RoomReport) {
	var cols []roomRatio
	for _, c := range roomRatios() {
		if slices.Contains(targets, c.a) && slices.Contains(targets, c.b) {
			cols = append(cols, c)
		}
	}
	rounds := max(cfg.Rounds, 1)
	if len(cols) > 0 {
		fmt.Fprint(w, "| step |")
		for _, c := range cols {
			fmt.Fprintf(w, " %s |", c.head)
		}
		fmt.Fprint(w, "\n|---|", strings.Repeat("---|", len(cols)), "\n")
		for _, fl := range plan {
			for _, rate := range fl.Rates {
				fmt.Fprintf(w, "| %d clients at %g/s |", fl.Clients, rate)
				for _, c := range cols {
					fmt.Fprintf(w, " %s |", ratioOverRounds(rounds, func(i int) (float64, float64, bool, bool) {
						a, b := rep.result(i+1, c.a, fl.Clients, rate), rep.result(i+1, c.b, fl.Clients, rate)
						if a == nil || b == nil {
							return 0, 0, a != nil, b != nil
						}
						return c.of(a), c.of(b), true, true
					}))
				}
				fmt.Fprintln(w)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "largest rate sustained with p99 within %.0f ms, nothing lost and 95%% of the deliveries asked made (medians of the rounds):\n", roomSustainedP99)
	for _, fl := range plan {
		fmt.Fprintf(w, "- %d clients:", fl.Clients)
		for i, t := range targets {
			sep := ","
			if i == 0 {
				sep = ""
			}
			switch rate, top, ok := rep.sustains(t, fl); {
			case !ok:
				fmt.Fprintf(w, "%s %s none of the rates", sep, t)
			case top:
				fmt.Fprintf(w, "%s %s %g/s or more (the highest rate run)", sep, t, rate)
			default:
				fmt.Fprintf(w, "%s %s %g/s", sep, t, rate)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}
