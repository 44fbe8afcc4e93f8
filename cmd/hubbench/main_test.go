package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) {
	// The floor is this binary started again (floor.go).
	if floorMain() {
		return
	}
	hubtest.Main(m)
}

// hubbench runs once at a tiny size against a hub it starts, with each
// broker, so that it cannot rot; the figures of real runs are in
// BENCHMARKS.md.
func TestTinyRun(t *testing.T) {
	for _, redis := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "redis"}[redis], func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Start, cfg.HubBin, cfg.Redis = true, hubtest.Binary(t), redis
			cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration, cfg.UserChannels = 30, 3, 40, 1500*time.Millisecond, true
			out, err := runTool(t, cfg)
			require.NoError(t, err)
			var r Result
			require.NoError(t, json.Unmarshal(lastLine(out), &r), "the last line is JSON")
			assert.Positive(t, r.Published)
			assert.Zero(t, r.Refused)
			assert.Equal(t, r.Expected, r.Received, "no delivery lost")
			assert.Zero(t, r.Lost)
			assert.Zero(t, r.Repeats)
			assert.Positive(t, r.P99ms)
			assert.Positive(t, r.HubRSSLoaded)
			assert.True(t, bytes.Contains(out, []byte("deliveries")), "and a table for people")
		})
	}
}

func TestConfigChecks(t *testing.T) {
	c := defaultConfig()
	assert.ErrorContains(t, c.validate(), "-hub URL")
	c.Start = true
	c.Conns, c.Sources = 60000, 1
	assert.ErrorContains(t, c.validate(), "raise -sources")
	assert.Equal(t, "fanout", presetArg([]string{"-preset", "fanout", "-redis"}))
	assert.Equal(t, "idle", presetArg([]string{"--preset=idle"}))
}

// A soak of seconds, with a Redis restart and every kind of client, so
// that the soak cannot rot: the clients' loss is counted, every kind of
// traffic ran, and Redis came back. (Growth is not judged on hubs this
// young; TestJudgeGrowth covers the rule.)
func TestShortSoak(t *testing.T) {
	cfg := defaultConfig()
	presets["soak"](&cfg)
	cfg.Preset, cfg.HubBin, cfg.Duration, cfg.Rate = "soak", hubtest.Binary(t), 20*time.Second, 20
	// Few channels and users, each with a steady client, so that most
	// events are checked for loss.
	cfg.Channels, cfg.Conns = 2, 8
	plan := soakPlan{Hubs: 2, Steady: 4, Churners: 4, Slow: 2, Sample: 500 * time.Millisecond,
		Restarts: []time.Duration{8 * time.Second}, RedisDown: 2 * time.Second, BulkEvery: 3 * time.Second}
	var out, progress bytes.Buffer
	failures, err := soak(context.Background(), cfg, plan, &out, &progress)
	require.NoError(t, err, progress.String())
	for _, f := range failures {
		// Growth is not judged here, nor whether a loaded machine let
		// the sampler take enough samples to judge it.
		if !strings.Contains(f, "keeps growing") && !strings.Contains(f, "too few samples") {
			t.Errorf("soak: %s\n%s\n%s", f, out.String(), progress.String())
		}
	}
	assert.Contains(t, out.String(), "hub1 rss")
	assert.Contains(t, out.String(), "redis used_memory")
	assert.Contains(t, progress.String(), "restarting Redis")
}

// runTool runs hubbench with cfg and returns what it printed on its
// standard output.
func runTool(t *testing.T, cfg Config) ([]byte, error) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	progress, err := os.CreateTemp(t.TempDir(), "progress")
	require.NoError(t, err)
	runErr := run(context.Background(), cfg, out, progress)
	b, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	return b, runErr
}

// lastLine is the last line of out, where a run prints its JSON result.
func lastLine(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}
