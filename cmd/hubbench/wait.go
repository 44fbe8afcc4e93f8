package main

// The wait preset: what -redis-wait-replicas costs. Each round starts two
// hubs in turn, each with a Redis primary and a replica of its own (the
// replica synced and confirming writes first), one with waiting off and
// one with auto (a WAIT for the replica after each batch of
// publications), and runs the ingest load against it: 64 senders of
// signed callbacks as fast as the hub answers, no subscribers. The order
// of the two alternates from round to round, so that the machine's drift
// falls on both; the figures are the medians. The primary's count of
// WAITs says that each side did wait, or did not.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/redisprobe"
)

// The sides of a wait round: the hub's -redis-wait-replicas.
const (
	waitOff  = "0"
	waitAuto = "auto"
)

// WaitRun is one side of a round.
type WaitRun struct {
	Wait string  `json:"redis_wait_replicas"`
	Res  *Result `json:"result"`
	// Waits is how many WAIT commands the primary ran for the hub.
	Waits int `json:"primary_wait_calls"`
}

// WaitReport is the wait preset's figures: each round's two runs, in the
// order they ran.
type WaitReport struct {
	Rounds [][]WaitRun `json:"rounds"`
}

// checkWait refuses a wait run that would not start each hub with a Redis
// and a replica of its own.
func checkWait(c Config) error {
	if !c.Start || !c.Redis || c.Target != targetHub {
		return errors.New("wait starts each hub with a Redis and a replica of its own: give -start -redis, no -target")
	}
	return nil
}

// runWait measures waiting off and auto in turns, cfg.Rounds times each,
// and prints the medians. A run with auto in which the hub never waited,
// or one with waiting off in which it did, fails the whole: its figures
// would not be what they say.
func runWait(ctx context.Context, cfg Config, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(2*cfg.Rounds)*(cfg.Duration+cfg.budget()))
	defer cancel()
	var rep WaitReport
	for r := range cfg.Rounds {
		sides := []string{waitOff, waitAuto}
		if r%2 == 1 {
			slices.Reverse(sides)
		}
		var round []WaitRun
		for _, w := range sides {
			c := cfg
			c.replica, c.hubArgs = true, append(slices.Clone(cfg.hubArgs), "-redis-wait-replicas", w)
			fmt.Fprintf(progress, "== round %d of %d: -redis-wait-replicas %s\n", r+1, cfg.Rounds, w)
			run := WaitRun{Wait: w}
			res, err := runOnce(ctx, c, measure, progress, func(e *env, _ *backend) error {
				var err error
				run.Waits, err = waitCalls(ctx, e.redisSock)
				return err
			})
			if err == nil {
				err = run.check()
			}
			if err != nil {
				return fmt.Errorf("round %d, -redis-wait-replicas %s: %w", r+1, w, err)
			}
			run.Res = res
			round = append(round, run)
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	rep.print(out, cfg.JSONOnly)
	return nil
}

// check refuses a run whose primary's WAITs do not match its side.
func (r WaitRun) check() error {
	switch {
	case r.Wait == waitAuto && r.Waits == 0:
		return errors.New("the hub never waited for the replica (no WAIT on the primary)")
	case r.Wait == waitOff && r.Waits > 0:
		return fmt.Errorf("the hub waited for the replica with waiting off (%d WAITs on the primary)", r.Waits)
	}
	return nil
}

// waitCalls is how many WAITs the Redis on sock ran since its counts were
// reset.
func waitCalls(ctx context.Context, sock string) (int, error) {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	st, err := redisprobe.CommandStat(ctx, c, "wait")
	if err != nil {
		return 0, fmt.Errorf("the primary's WAITs: %w", err)
	}
	return st["calls"], nil
}

// print writes the table of medians and each run's line (unless
// jsonOnly), and the JSON line.
func (rep WaitReport) print(w io.Writer, jsonOnly bool) { printReport(w, jsonOnly, rep.table, rep) }

// table is what a person reads: each figure's median with waiting off and
// auto, and their ratio, then each run as it went.
func (rep WaitReport) table(w io.Writer) {
	writeColumns(w, rep.medians)
	for i, round := range rep.Rounds {
		for _, run := range round {
			fmt.Fprintf(w, "round %d, -redis-wait-replicas %s: %.0f callbacks/s, p50 %.2f ms, p99 %.2f ms, %d refused, %d WAITs\n",
				i+1, run.Wait, run.Res.CallbacksPerS, run.Res.CallbackP50ms, run.Res.CallbackP99ms, run.Res.Refused, run.Waits)
		}
	}
}

// medians are table's figures, tab-separated: each side's median over the
// rounds, and auto's over waiting off's.
func (rep WaitReport) medians(tw io.Writer) {
	med := func(wait string, of func(*Result) float64) float64 {
		var vs []float64
		for _, round := range rep.Rounds {
			for _, run := range round {
				if run.Wait == wait {
					vs = append(vs, of(run.Res))
				}
			}
		}
		return median(vs)
	}
	fmt.Fprintf(tw, "medians of %d rounds\t-redis-wait-replicas 0\tauto (WAIT 1)\tauto / 0\n", len(rep.Rounds))
	for _, m := range []struct {
		name, format string
		of           func(*Result) float64
	}{
		{"callbacks/s", "%.0f", func(r *Result) float64 { return r.CallbacksPerS }},
		{"callback p50 ms", "%.2f", func(r *Result) float64 { return r.CallbackP50ms }},
		{"callback p99 ms", "%.2f", func(r *Result) float64 { return r.CallbackP99ms }},
		{"hub cpu s", "%.1f", func(r *Result) float64 { return r.HubCPU }},
	} {
		off, on := med(waitOff, m.of), med(waitAuto, m.of)
		fmt.Fprintf(tw, "%s\t"+m.format+"\t"+m.format+"\t%s\n", m.name, off, on, quotient(on, off))
	}
}
