package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The table gives each side's figures and the ratios imhub/Centrifugo and
// imhub/floor, with a dash where a side has no such figure.
func TestPrintCompare(t *testing.T) {
	res := func(cpuPerM, p99 float64, lost int64) *Result {
		return &Result{HubCPUPerM: cpuPerM, P99ms: p99, Expected: 10000, Received: 10000 - lost, Lost: lost,
			DeliveriesPerS: 20000, Seconds: 10, HubCPU: 5, ToolCPU: 4, Published: 1000, CallbacksPerS: 100}
	}
	sides := compareRound{
		{Target: targetHub, IdleKiB: 15, Load: res(18, 3, 0), Sat: res(12, 50, 0), Ingest: res(0, 0, 0)},
		{Target: targetCentrifugo, IdleKiB: 45, Load: res(36, 6, 2), Sat: res(24, 100, 0), Ingest: &Result{CallbacksPerS: 50, Published: 500, HubCPU: 5}},
		{Target: targetFloor, IdleKiB: 5, Load: res(12, 2, 0), Sat: res(10, 40, 0)},
	}
	cfg := defaultConfig()
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration = 10000, 100, 200, 30*time.Second
	var b bytes.Buffer
	printCompare(&b, cfg, []compareRound{sides})
	out := b.String()
	assert.Contains(t, out, "10000 connections, 100 channels, 200 messages/s (20000 deliveries/s)")
	row := func(name string) []string {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "| "+name+" |") {
				cells := strings.Split(strings.Trim(line, "| "), " | ")
				require.Len(t, cells, 6, line)
				return cells[1:]
			}
		}
		t.Fatalf("no row %q in\n%s", name, out)
		return nil
	}
	assert.Equal(t, []string{"18.0 s", "36.0 s", "12.0 s", "0.50", "1.50"}, row("load: CPU per 10⁶ deliveries"))
	assert.Equal(t, []string{"3.0 ms", "6.0 ms", "2.0 ms", "0.50", "1.50"}, row("load: p99 latency"))
	assert.Equal(t, []string{"15.0 KiB", "45.0 KiB", "5.0 KiB", "0.33", "3.00"}, row("idle: RSS per subscribed connection"))
	assert.Equal(t, []string{"0.0000 %", "0.0200 %", "0.0000 %", "0.00", "="}, row("load: loss"))
	assert.Equal(t, []string{"100 ", "50 ", "—", "2.00", "—"}, row("ingest: messages/s accepted (0 subscribers)"))
	assert.Equal(t, []string{"0.50 cores", "0.50 cores", "0.50 cores", "1.00", "1.00"}, row("saturation: server CPU share"))
}

// Over several rounds each figure is the median of the rounds', and each
// ratio the median of the rounds' own ratios, with their range: a round's
// sides were measured close together, so a slow round moves both.
func TestPrintCompareRounds(t *testing.T) {
	side := func(target string, cpuPerM, p99 float64) compareSide {
		return compareSide{Target: target, IdleKiB: cpuPerM, Load: &Result{HubCPUPerM: cpuPerM, P99ms: p99, Expected: 1, Received: 1}}
	}
	rounds := []compareRound{
		{side(targetHub, 20, 4), side(targetCentrifugo, 40, 2), side(targetFloor, 10, 1)},
		// A busy machine: everything costs more, the ratios stay.
		{side(targetHub, 30, 40), side(targetCentrifugo, 60, 20), side(targetFloor, 15, 10)},
		{side(targetHub, 26, 9), side(targetCentrifugo, 40, 3), side(targetFloor, 13, 2)},
	}
	cfg := defaultConfig()
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration = 10000, 100, 200, 30*time.Second
	var b bytes.Buffer
	printCompare(&b, cfg, rounds)
	out := b.String()
	assert.Contains(t, out, "3 rounds in turns, medians")
	cells := func(name string) []string {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "| "+name+" |") {
				return strings.Split(strings.Trim(line, "| "), " | ")[1:]
			}
		}
		t.Fatalf("no row %q in\n%s", name, out)
		return nil
	}
	// Medians 26, 40, 13; ratios per round 0.5, 0.5, 0.65 and 2, 2, 2.
	assert.Equal(t, []string{"26.0 s", "40.0 s", "13.0 s", "0.50 (0.50–0.65)", "2.00 (2.00–2.00)"}, cells("load: CPU per 10⁶ deliveries"))
	// Medians 9, 3, 2; ratios per round 2, 2, 3 and 4, 4, 4.5.
	assert.Equal(t, []string{"9.0 ms", "3.0 ms", "2.0 ms", "2.00 (2.00–3.00)", "4.00 (4.00–4.50)"}, cells("load: p99 latency"))
	// Ingest was measured in no round: no figure, no ratio.
	assert.Equal(t, []string{"—", "—", "—", "—", "—"}, cells("ingest: messages/s accepted (0 subscribers)"))
}

func TestRatio(t *testing.T) {
	assert.Equal(t, "0.50", ratio(1, 2, true, true))
	assert.Equal(t, "—", ratio(1, 2, true, false))
	assert.Equal(t, "=", ratio(0, 0, true, true))
	assert.Equal(t, "∞", ratio(1, 0, true, true))
}

// Each target's flags are checked before anything starts.
func TestTargetConfigChecks(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"unknown target", func(c *Config) { c.Target = "nginx" }, "-target must be"},
		{"floor without start", func(c *Config) { c.Target, c.Start, c.Hub = targetFloor, false, "http://x" }, "give -start"},
		{"floor with user channels", func(c *Config) { c.Target, c.UserChannels = targetFloor, true }, "group channels only"},
		{"floor forwarding", func(c *Config) { c.Target, c.Forward = targetFloor, true }, "group channels only"},
		{"centrifugo forwarding", func(c *Config) { c.Target, c.Redis, c.Forward = targetCentrifugo, true, true }, "not with -target centrifugo"},
		{"centrifugo in memory", func(c *Config) { c.Target = targetCentrifugo }, "give -redis"},
		{"compare without redis", func(c *Config) { withPreset(c, "compare"); c.Redis = false }, "-start -redis"},
		{"no rounds", func(c *Config) { c.Rounds = 0 }, "-rounds must be"},
		{"scaling without a plot", func(c *Config) { withPreset(c, "scaling") }, "-plot"},
		{"a floor run", func(c *Config) { withPreset(c, "floor") }, ""},
		{"a centrifugo run", func(c *Config) { c.Target, c.Redis = targetCentrifugo, true }, ""},
		{"a centrifugo already running", func(c *Config) { c.Target, c.Start, c.Hub = targetCentrifugo, false, "http://x" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.Start = true
			tt.set(&c)
			err := c.validate()
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
		})
	}
}
