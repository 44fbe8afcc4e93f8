package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// series makes n samples of f(i) plus uniform noise of ±noise, the same
// noise on every run.
func series(n int, noise float64, f func(i int) float64) []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i) + (r.Float64()*2-1)*noise
	}
	return out
}

func TestJudgeGrowth(t *testing.T) {
	const mib = 1 << 20
	mem := growthLimit{Abs: 8 * mib, Rel: 0.05}
	gor := growthLimit{Abs: 20, Rel: 0.05}
	cases := []struct {
		name    string
		samples []float64
		lim     growthLimit
		growing bool
	}{
		{"flat, noisy", series(60, 10*mib, func(int) float64 { return 100 * mib }), mem, false},
		{"flat, a few spikes", series(60, 2*mib, func(i int) float64 {
			if i%17 == 0 {
				return 300 * mib
			}
			return 100 * mib
		}), mem, false},
		{"steady growth", series(60, 2*mib, func(i int) float64 { return 100*mib + float64(i)*mib }), mem, true},
		{"steady growth in heavy noise", series(360, 20*mib, func(i int) float64 { return 100*mib + float64(i)*mib/3 }), mem, true},
		{"growth below the tolerance", series(60, mib, func(i int) float64 { return 100*mib + float64(i)*mib/20 }), mem, false},
		{"step after a restart in the middle third, then flat", series(60, 2*mib, func(i int) float64 {
			if i >= 35 {
				return 140 * mib
			}
			return 100 * mib
		}), mem, false},
		{"step early in the middle third, then flat", series(60, 2*mib, func(i int) float64 {
			if i >= 22 {
				return 140 * mib
			}
			return 100 * mib
		}), mem, false},
		{"a step at every restart: growth", series(60, 2*mib, func(i int) float64 { return 100*mib + float64(i/8)*10*mib }), mem, true},
		{"GC sawtooth", series(60, mib, func(i int) float64 { return 100*mib + float64(i%7)*8*mib }), mem, false},
		{"GC sawtooth on a rising floor", series(90, mib, func(i int) float64 {
			return 100*mib + float64(i%7)*8*mib + 2*float64(i)*mib
		}), mem, true},
		{"goroutines with churn", series(60, 25, func(i int) float64 { return 300 + 40*math.Sin(float64(i)) }), gor, false},
		{"goroutines leaking", series(60, 10, func(i int) float64 { return 300 + 3*float64(i) }), gor, true},
		{"warm-up growth, then flat", series(60, mib, func(i int) float64 { return 100*mib + float64(min(i, 18))*5*mib }), mem, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := judgeGrowth(c.samples, c.lim)
			assert.True(t, v.Judged)
			assert.Equal(t, c.growing, v.Growing, v.String())
		})
	}
}

func TestJudgeGrowthTooShort(t *testing.T) {
	v := judgeGrowth([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, growthLimit{Abs: 1})
	assert.False(t, v.Judged)
	assert.False(t, v.Growing)
	assert.Contains(t, v.String(), "too few")
}
