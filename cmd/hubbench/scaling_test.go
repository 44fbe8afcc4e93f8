package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// svgCount parses an SVG document to its end and counts its elements by
// name; a document that is not well-formed XML fails the test.
func svgCount(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	n := map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "well-formed XML")
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				require.Equal(t, "svg", e.Name.Local, "the root is svg")
				require.Equal(t, "http://www.w3.org/2000/svg", e.Name.Space)
			}
			depth++
			n[e.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	require.Zero(t, depth, "every element closed")
	return n
}

func TestDrawCharts(t *testing.T) {
	pts := func(k int) []xy {
		var p []xy
		for i := 1; i <= k; i++ {
			p = append(p, xy{math.Pow(10, float64(i-1)), float64(i) * 1.5})
		}
		return p
	}
	charts := []chart{
		{Title: "a <&> b", X: "x", Y: "y", Points: pts(4)},
		{Title: "b", X: "x", Y: "y", Points: pts(4)},
		{Title: "c", X: "x", Y: "y", LogX: true, Points: pts(5)},
		{Title: "d", X: "x", Y: "y", LogX: true, LogY: true, Points: pts(1)},
		{Title: "e", X: "x", Y: "y", LogY: true, Points: pts(3)},
		{Title: "empty", X: "x", Y: "y"},
	}
	var b bytes.Buffer
	require.NoError(t, drawCharts(&b, "title & more", charts, 2))
	n := svgCount(t, b.Bytes())
	assert.Equal(t, 4+4+5+1+3, n["circle"], "a marker for each point")
	assert.Equal(t, 5, n["polyline"], "a line for each chart with points")
	assert.Equal(t, 6, n["g"], "a group for each chart")
}

func TestDrawChartsRefusesBadPoints(t *testing.T) {
	for name, c := range map[string]chart{
		"zero on a log scale": {LogX: true, Points: []xy{{0, 1}}},
		"NaN":                 {Points: []xy{{1, math.NaN()}}},
		"negative":            {Points: []xy{{1, -1}}},
		"zero on a log y":     {LogY: true, Points: []xy{{1, 0}}},
	} {
		assert.Error(t, drawCharts(io.Discard, "t", []chart{c}, 1), name)
	}
	assert.Error(t, drawCharts(io.Discard, "t", nil, 1), "no charts")
}

func TestNiceCeilAndLabel(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0, 1}, {0.3, 0.5}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {18.1, 20}, {230, 500}} {
		assert.InDelta(t, tt.want, niceCeil(tt.in), 1e-9, "niceCeil(%g)", tt.in)
	}
	for _, tt := range []struct {
		in   float64
		want string
	}{{18000, "18k"}, {1000, "1k"}, {1500, "1500"}, {100, "100"}, {12.34, "12.3"}, {2.5, "2.50"}, {3, "3"}} {
		assert.Equal(t, tt.want, label(tt.in))
	}
}

// The loads of the plan: a fixed rate per connection along one axis, a
// fixed delivery rate within the message cap along the other.
func TestScalingPlanPoints(t *testing.T) {
	pts := defaultScalingPlan().points()
	require.Len(t, pts, 9)
	type load struct {
		axis            string
		conns, ch, subs int
		rate            float64
	}
	want := []load{
		{scaleConns, 1000, 10, 100, 20}, {scaleConns, 5000, 50, 100, 100}, {scaleConns, 10000, 100, 100, 200}, {scaleConns, 18000, 180, 100, 360},
		{scaleSubs, 10000, 10000, 1, 1000}, {scaleSubs, 10000, 1000, 10, 1000}, {scaleSubs, 10000, 100, 100, 200},
		{scaleSubs, 10000, 10, 1000, 20}, {scaleSubs, 10000, 1, 10000, 2},
	}
	for i, p := range pts {
		assert.Equal(t, want[i], load{p.Axis, p.Conns, p.Channels, p.Subs, p.Rate}, "point %d", i)
	}
}

// A scaling run of three tiny points against the floor writes its table
// and a plot with a marker for each point on each of its two figures.
func TestTinyScaling(t *testing.T) {
	cfg := defaultConfig()
	withPreset(&cfg, "scaling")
	cfg.Target, cfg.Redis, cfg.Duration = targetFloor, false, time.Second
	cfg.Plot = filepath.Join(t.TempDir(), "scaling.svg")
	plan := scalingPlan{Conns: []int{10, 20}, PerConnRate: 10, PerChannel: 5,
		SubsPerChan: []int{4}, SubsConns: 8, Deliveries: 80, MaxMessages: 100}
	require.NoError(t, cfg.validate())
	var out, progress bytes.Buffer
	require.NoError(t, scaling(context.Background(), cfg, plan, &out, &progress), progress.String())
	svg, err := os.ReadFile(cfg.Plot)
	require.NoError(t, err)
	n := svgCount(t, svg)
	assert.Equal(t, 2*3, n["circle"], "CPU and p99 for each of three points")
	md, err := os.ReadFile(strings.TrimSuffix(cfg.Plot, ".svg") + ".md")
	require.NoError(t, err)
	assert.Equal(t, out.String(), string(md), "the table printed is the table written")
	rows := 0
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "| "+scaleConns+" |") || strings.HasPrefix(line, "| "+scaleSubs+" |") {
			rows++
		}
	}
	assert.Equal(t, 3, rows, "a row for each point")
	assert.Contains(t, string(md), "| connections | 20 | 5 |")
}

// A point that read no CPU (a run shorter than the clock ticks of /proc)
// is drawn on a linear scale rather than failing the run.
func TestScalingPlotWithZeroCPU(t *testing.T) {
	cfg := defaultConfig()
	pts := []scalePoint{
		{Axis: scaleConns, Conns: 10, Subs: 5, Result: &Result{HubCPUPerM: 0, P99ms: 1}},
		{Axis: scaleSubs, Conns: 10, Subs: 1, Result: &Result{HubCPUPerM: 0, P99ms: 2}},
		{Axis: scaleSubs, Conns: 10, Subs: 10, Result: &Result{HubCPUPerM: 3, P99ms: 2}},
	}
	var b bytes.Buffer
	require.NoError(t, writeScalingSVG(&b, cfg, pts))
	assert.Equal(t, 6, svgCount(t, b.Bytes())["circle"])
	assert.NotContains(t, b.String(), "(log)")
	pts[1].Result.HubCPUPerM = 1
	b.Reset()
	require.NoError(t, writeScalingSVG(&b, cfg, pts))
	assert.Contains(t, b.String(), "by fan-out (log)")
}
