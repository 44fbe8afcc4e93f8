package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// The wait preset runs once at a tiny size, so that it cannot rot: a hub
// without waiting and one with auto, each on a primary with a replica;
// the one with auto has the primary run WAITs, the other none.
func TestTinyWaitRun(t *testing.T) {
	cfg, err := configFor("wait") // as -preset wait
	require.NoError(t, err)
	cfg.HubBin = hubtest.Binary(t)
	cfg.Duration, cfg.Publishers, cfg.Rate, cfg.Rounds = time.Second, 4, 200, 1
	var r WaitReport
	out := runFor(t, cfg, &r)
	require.Len(t, r.Rounds, 1)
	require.Len(t, r.Rounds[0], 2)
	assert.Equal(t, waitOff, r.Rounds[0][0].Wait, "waiting off first in the first round")
	assert.Equal(t, waitAuto, r.Rounds[0][1].Wait)
	for _, run := range r.Rounds[0] {
		assert.Positive(t, run.Res.Published, run.Wait)
		assert.Zero(t, run.Res.Refused, run.Wait)
		assert.Positive(t, run.Res.CallbackP50ms, run.Wait)
		assert.GreaterOrEqual(t, run.Res.CallbackP99ms, run.Res.CallbackP50ms, run.Wait)
		assert.Equal(t, "redis", run.Res.Broker, run.Wait)
		if run.Wait == waitOff {
			assert.Zero(t, run.Waits, "no WAIT without waiting")
		} else {
			assert.Positive(t, run.Waits, "auto waits for the replica")
		}
	}
	assert.Contains(t, string(out), "callback p99 ms", "and a table for people")
}

// The wait preset needs hubs it starts, each with a Redis of its own; it
// measures the hub only.
func TestWaitNeedsItsOwnRedis(t *testing.T) {
	base := defaultConfig()
	withPreset(&base, "wait")
	require.NoError(t, base.validate())
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no redis", func(c *Config) { c.Redis = false }, "give -start -redis"},
		{"centrifugo", func(c *Config) { c.Target = targetCentrifugo }, "no -target"},
		{"floor", func(c *Config) { c.Target, c.Redis = targetFloor, false }, "no -target"},
		{"a running hub", func(c *Config) { c.Start, c.Hub = false, "http://127.0.0.1:8080" }, "give -start -redis"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			assert.ErrorContains(t, c.validate(), tt.want)
		})
	}
}

// -preset wait takes flags as every preset does; -rounds wins over its
// three.
func TestParseWaitArgs(t *testing.T) {
	var usage bytes.Buffer
	cfg, _, err := parseArgs([]string{"-preset", "wait", "-rounds", "1", "-duration", "5s"}, &usage)
	require.NoError(t, err)
	assert.Equal(t, "wait", cfg.Preset.name)
	assert.Equal(t, 1, cfg.Rounds)
	assert.Equal(t, 5*time.Second, cfg.Duration)
	assert.True(t, cfg.Start && cfg.Redis, "the preset's")
	require.NoError(t, cfg.validate())
}

// A side whose primary's WAITs do not match it is refused: auto that
// never waited, or waiting off that did.
func TestWaitRunCheck(t *testing.T) {
	for _, tt := range []struct {
		run  WaitRun
		want string
	}{
		{WaitRun{Wait: waitAuto, Waits: 3}, ""},
		{WaitRun{Wait: waitOff}, ""},
		{WaitRun{Wait: waitAuto}, "the hub never waited for the replica"},
		{WaitRun{Wait: waitOff, Waits: 2}, "with waiting off (2 WAITs on the primary)"},
	} {
		err := tt.run.check()
		if tt.want == "" {
			assert.NoError(t, err, tt.run)
		} else {
			assert.ErrorContains(t, err, tt.want, tt.run)
		}
	}
}

// The table gives each side's medians over the rounds and their ratio,
// then each run; a side with a figure of 0 has no ratio.
func TestWaitTable(t *testing.T) {
	run := func(wait string, perS, p50, p99, cpu float64, waits int) WaitRun {
		return WaitRun{Wait: wait, Waits: waits, Res: &Result{CallbacksPerS: perS, CallbackP50ms: p50, CallbackP99ms: p99, HubCPU: cpu}}
	}
	rep := WaitReport{Rounds: [][]WaitRun{
		{run(waitOff, 5000, 10, 20, 0, 0), run(waitAuto, 4000, 12, 30, 8, 3000)},
		{run(waitAuto, 6000, 11, 22, 9, 3500), run(waitOff, 6000, 11, 22, 0, 0)},
		{run(waitOff, 5500, 12, 21, 0, 0), run(waitAuto, 5400, 13, 23, 10, 3200)},
	}}
	var b bytes.Buffer
	rep.table(&b)
	want := `medians of 3 rounds  -redis-wait-replicas 0  auto (WAIT 1)  auto / 0
callbacks/s          5500                    5400           0.98
callback p50 ms      11.00                   12.00          1.09
callback p99 ms      21.00                   23.00          1.10
hub cpu s            0.0                     9.0            —
round 1, -redis-wait-replicas 0: 5000 callbacks/s, p50 10.00 ms, p99 20.00 ms, 0 refused, 0 WAITs
round 1, -redis-wait-replicas auto: 4000 callbacks/s, p50 12.00 ms, p99 30.00 ms, 0 refused, 3000 WAITs
round 2, -redis-wait-replicas auto: 6000 callbacks/s, p50 11.00 ms, p99 22.00 ms, 0 refused, 3500 WAITs
round 2, -redis-wait-replicas 0: 6000 callbacks/s, p50 11.00 ms, p99 22.00 ms, 0 refused, 0 WAITs
round 3, -redis-wait-replicas 0: 5500 callbacks/s, p50 12.00 ms, p99 21.00 ms, 0 refused, 0 WAITs
round 3, -redis-wait-replicas auto: 5400 callbacks/s, p50 13.00 ms, p99 23.00 ms, 0 refused, 3200 WAITs
`
	assert.Equal(t, want, b.String())
}

// The quantiles are of the answer times recorded, in milliseconds, and 0
// before any.
func TestAnswerTimes(t *testing.T) {
	a := newAnswerTimes()
	p50, p99 := a.quantiles()
	assert.Zero(t, p50)
	assert.Zero(t, p99)
	for i := 100; i >= 1; i-- { // out of order on purpose
		a.record(time.Duration(i) * time.Millisecond)
	}
	p50, p99 = a.quantiles()
	// To the histogram's three significant digits.
	assert.InDelta(t, 50, p50, 0.05)
	assert.InDelta(t, 99, p99, 0.1)
}
