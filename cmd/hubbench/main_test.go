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
			var r Result
			out := runFor(t, cfg, &r)
			assert.Positive(t, r.Published)
			assert.Zero(t, r.Refused)
			assert.Equal(t, r.Expected, r.Received, "no delivery lost")
			assert.Zero(t, r.Lost)
			assert.Zero(t, r.Repeats)
			assert.Positive(t, r.P99ms)
			assert.Positive(t, r.CallbackP50ms, "how long the hub took to answer")
			assert.GreaterOrEqual(t, r.CallbackP99ms, r.CallbackP50ms)
			assert.Positive(t, r.HubRSSLoaded)
			assert.True(t, bytes.Contains(out, []byte("deliveries")), "and a table for people")
			assert.True(t, bytes.Contains(out, []byte("answered in p50")), "with the answer times")
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

// runFor runs hubbench with cfg, which must succeed, and decodes the JSON
// line it ends with into figures; it returns all that it printed.
func runFor(t *testing.T, cfg Config, figures any) []byte {
	t.Helper()
	out, err := runTool(t, cfg)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(lastLine(out), figures), "the last line is JSON")
	return out
}

// lastLine is the last line of out, where a run prints its JSON result.
func lastLine(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}
