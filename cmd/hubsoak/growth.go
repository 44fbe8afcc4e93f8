package main

import (
	"fmt"
	"math"
	"slices"
)

// Growth detection for the soak: does a series sampled at a steady
// interval (a hub's RSS, heap, goroutines, open files; Redis's memory) keep
// growing, on a machine whose noise is larger than a slow leak's step?
//
// The rule, in three parts:
//
//  1. The first third of the samples is warm-up and is not judged: pools
//     fill, the history of every channel fills, the heap finds its size.
//  2. Level: the median of the last third must exceed the median of the
//     middle third by more than the tolerance. Medians ignore single
//     spikes, and over a window of several GC cycles a sawtooth's median
//     sits at its middle, so neither noise nor GC makes a difference.
//  3. Trend: the least-squares slope over the last half of the judged
//     part, times the judged part's length, must also exceed the
//     tolerance. A step (a Redis restart, a burst of connections) that
//     then stays flat moves the medians once but leaves the slope of what
//     follows at zero; a leak moves both.
//
// Only a series that fails both is growing. The tolerance is the largest
// of an absolute floor (a few MiB of memory, a few goroutines), a share of
// the middle third's median, and three times the middle third's median
// absolute deviation (the noise the machine showed while the run was
// steady).

// growthLimit is how much a series may rise and still count as flat.
type growthLimit struct {
	Abs float64 // floor, in the series' unit
	Rel float64 // share of the steady level
}

// growthVerdict is the judgement of one series, with its figures.
type growthVerdict struct {
	Growing   bool
	Judged    bool    // enough samples after warm-up to judge
	Middle    float64 // median of the middle third
	Last      float64 // median of the last third
	Rise      float64 // projected rise over the judged part by the slope
	Tolerance float64
}

func (v growthVerdict) String() string { return v.in(1) }

// in writes the verdict with its figures divided by unit.
func (v growthVerdict) in(unit float64) string {
	switch {
	case !v.Judged:
		return "too few samples to judge"
	case v.Growing:
		return fmt.Sprintf("GROWING: median %.1f → %.1f, trend %+.1f, tolerance %.1f", v.Middle/unit, v.Last/unit, v.Rise/unit, v.Tolerance/unit)
	}
	return fmt.Sprintf("flat: median %.1f → %.1f, trend %+.1f, tolerance %.1f", v.Middle/unit, v.Last/unit, v.Rise/unit, v.Tolerance/unit)
}

// minJudged is the fewest samples after warm-up a judgement needs.
const minJudged = 12

// judgeGrowth applies the rule above to samples taken at equal intervals.
func judgeGrowth(samples []float64, lim growthLimit) growthVerdict {
	n := len(samples)
	third := n / 3
	judged := samples[third:]
	if len(judged) < minJudged {
		return growthVerdict{}
	}
	middle, last := samples[third:2*third], samples[2*third:]
	v := growthVerdict{Judged: true, Middle: median(middle), Last: median(last)}
	noise := 3 * mad(middle)
	v.Tolerance = math.Max(lim.Abs, math.Max(lim.Rel*math.Abs(v.Middle), noise))
	tail := judged[len(judged)/2:]
	v.Rise = slope(tail) * float64(len(judged))
	v.Growing = v.Last-v.Middle > v.Tolerance && v.Rise > v.Tolerance
	return v
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mad is the median absolute deviation from the median.
func mad(xs []float64) float64 {
	m := median(xs)
	d := make([]float64, len(xs))
	for i, x := range xs {
		d[i] = math.Abs(x - m)
	}
	return median(d)
}

// slope is the least-squares slope of xs against their index.
func slope(xs []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range xs {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}
