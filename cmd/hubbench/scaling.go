package main

// The scaling preset: what a delivery costs as the work grows, along two
// axes, each point a fresh server (and Redis) with the fanout load shaped
// to it:
//
//   - connections: 1,000, 5,000, 10,000 and 18,000, 100 to a channel,
//     each receiving 2 deliveries/s (the fanout preset's rate per
//     connection), so that the load grows with them;
//   - subscribers per channel: 1, 10, 100, 1,000 and 10,000 over 10,000
//     connections, at 20,000 deliveries/s where the messages/s that takes
//     stays within 1,000/s (below the ingest rate of a busy machine), and
//     at 1,000 messages/s below that: a delivery to a channel of one
//     subscriber carries a whole message's ingest.
//
// It writes a Markdown table and an SVG plot of CPU per delivery and p99
// along each axis to -plot (the table beside it, .md).

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// scalePoint is one load and what it cost.
type scalePoint struct {
	Axis     string  `json:"axis"` // scaleConns or scaleSubs
	Conns    int     `json:"conns"`
	Channels int     `json:"channels"`
	Subs     int     `json:"subscribers_per_channel"`
	Rate     float64 `json:"messages_per_s"`
	Result   *Result `json:"result"`
}

const (
	scaleConns = "connections"
	scaleSubs  = "subscribers per channel"
)

// scalingPlan is the loads of a scaling run.
type scalingPlan struct {
	Conns       []int   // connection counts, 100 subscribers to a channel
	PerConnRate float64 // deliveries/s each connection receives
	SubsPerChan []int   // subscribers per channel, over SubsConns connections
	SubsConns   int
	Deliveries  float64 // deliveries/s along the subscribers axis…
	MaxMessages float64 // …within this many messages/s
	PerChannel  int     // subscribers to a channel along the connections axis
}

func defaultScalingPlan() scalingPlan {
	return scalingPlan{
		Conns: []int{1000, 5000, 10000, 18000}, PerConnRate: 2, PerChannel: 100,
		SubsPerChan: []int{1, 10, 100, 1000, 10000}, SubsConns: 10000, Deliveries: 20000, MaxMessages: 1000,
	}
}

// points are the loads of the plan.
func (p scalingPlan) points() []scalePoint {
	var pts []scalePoint
	for _, n := range p.Conns {
		ch := max(n/p.PerChannel, 1)
		pts = append(pts, scalePoint{Axis: scaleConns, Conns: n, Channels: ch, Subs: n / ch,
			Rate: float64(n) * p.PerConnRate / float64(n/ch)})
	}
	for _, s := range p.SubsPerChan {
		n := p.SubsConns
		ch := max(n/s, 1)
		pts = append(pts, scalePoint{Axis: scaleSubs, Conns: n, Channels: ch, Subs: n / ch,
			Rate: min(p.Deliveries/float64(n/ch), p.MaxMessages)})
	}
	return pts
}

func runScaling(ctx context.Context, cfg Config, out, progress io.Writer) error {
	return scaling(ctx, cfg, defaultScalingPlan(), out, progress)
}

func scaling(ctx context.Context, cfg Config, plan scalingPlan, out, progress io.Writer) error {
	pts := plan.points()
	for i := range pts {
		pt := &pts[i]
		c := cfg
		c.Conns, c.Channels, c.Rate = pt.Conns, pt.Channels, pt.Rate
		fmt.Fprintf(progress, "== %s: %d connections, %d channels, %.0f messages/s\n", pt.Axis, pt.Conns, pt.Channels, pt.Rate)
		pctx, cancel := context.WithTimeout(ctx, c.Duration+c.budget())
		res, err := runOnce(pctx, c, measure, progress, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("%s, %d connections, %d channels: %w", pt.Axis, pt.Conns, pt.Channels, err)
		}
		pt.Result = res
	}
	var table strings.Builder
	writeScalingTable(&table, cfg, pts)
	if !cfg.JSONOnly {
		fmt.Fprint(out, table.String())
	}
	var svg strings.Builder
	if err := writeScalingSVG(&svg, cfg, pts); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Plot, []byte(svg.String()), 0o644); err != nil {
		return fmt.Errorf("write the plot: %w", err)
	}
	md := strings.TrimSuffix(cfg.Plot, ".svg") + ".md"
	if err := os.WriteFile(md, []byte(table.String()), 0o644); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	fmt.Fprintf(progress, "wrote %s and %s\n", cfg.Plot, md)
	return nil
}

func writeScalingTable(w io.Writer, cfg Config, pts []scalePoint) {
	fmt.Fprintf(w, "%s, %s broker, %s per point, each point a fresh server\n\n", cfg.Target, brokerOf(cfg), cfg.Duration)
	fmt.Fprintln(w, "| axis | connections | subscribers per channel | messages/s sent (target) | deliveries/s | CPU per 10⁶ deliveries | p50 / p99 | lost |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, p := range pts {
		r := p.Result
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f (%.0f) | %.0f | %.1f s | %.1f / %.1f ms | %d |\n",
			p.Axis, p.Conns, p.Subs, r.CallbacksPerS, p.Rate, r.DeliveriesPerS, r.HubCPUPerM, r.P50ms, r.P99ms, r.Lost)
	}
	fmt.Fprintln(w)
}

// writeScalingSVG draws four charts: CPU per delivery and p99 along each
// axis, the subscribers axis on a log scale.
func writeScalingSVG(w io.Writer, cfg Config, pts []scalePoint) error {
	series := func(axis string, y func(*Result) float64) []xy {
		var s []xy
		for _, p := range pts {
			if p.Axis != axis || p.Result == nil {
				continue
			}
			x := float64(p.Conns)
			if axis == scaleSubs {
				x = float64(p.Subs)
			}
			s = append(s, xy{x, y(p.Result)})
		}
		return s
	}
	cpu := func(r *Result) float64 { return r.HubCPUPerM }
	p99 := func(r *Result) float64 { return r.P99ms }
	// A log scale cannot show a zero: a run too short for the clock
	// ticks of /proc reads no CPU at all. Then the scale is linear.
	fanCPU := series(scaleSubs, cpu)
	logCPU := len(fanCPU) > 0
	for _, p := range fanCPU {
		logCPU = logCPU && p.Y > 0
	}
	fanTitle := "CPU per 10⁶ deliveries, by fan-out"
	if logCPU {
		fanTitle += " (log)"
	}
	charts := []chart{
		{Title: "CPU per 10⁶ deliveries, by connections", X: "connections (100 per channel, 2 deliveries/s each)", Y: "CPU-s", Points: series(scaleConns, cpu)},
		{Title: "p99 latency, by connections", X: "connections", Y: "ms", Points: series(scaleConns, p99)},
		{Title: fanTitle, X: "subscribers per channel (10,000 connections)", Y: "CPU-s", LogX: true, LogY: logCPU, Points: fanCPU},
		{Title: "p99 latency, by fan-out", X: "subscribers per channel", Y: "ms", LogX: true, Points: series(scaleSubs, p99)},
	}
	title := fmt.Sprintf("%s (%s broker), measured %s", cfg.Target, brokerOf(cfg), time.Now().UTC().Format("2006-01-02"))
	return drawCharts(w, title, charts, 2)
}
