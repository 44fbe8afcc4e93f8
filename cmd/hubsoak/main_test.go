package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

// A soak of seconds, with a Redis restart and every kind of client, so
// that the soak cannot rot: the clients' loss is counted, every kind of
// traffic ran, and Redis came back. (Growth is not judged on hubs this
// young; TestJudgeGrowth covers the rule.)
func TestShortSoak(t *testing.T) {
	cfg := defaultConfig()
	cfg.HubBin, cfg.Duration, cfg.Rate = hubtest.Binary(t), 20*time.Second, 20
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

// The defaults are the soak BENCHMARKS.md describes: an hour, callbacks
// at 20/s (group and one-to-one), 100 users over 20 groups; flags win.
func TestParseArgs(t *testing.T) {
	var usage bytes.Buffer
	cfg, err := parseArgs(nil, &usage)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, cfg.Duration)
	assert.Equal(t, 20.0, cfg.Rate)
	assert.True(t, cfg.UserChannels)
	assert.Equal(t, 100, cfg.Conns)
	assert.Equal(t, 20, cfg.Channels)
	assert.Equal(t, 4, cfg.Publishers)
	assert.Equal(t, "bin/hub", cfg.HubBin)
	assert.Zero(t, cfg.Sample, "the plan's")
	assert.False(t, cfg.Small)
	require.NoError(t, cfg.validate())

	cfg, err = parseArgs([]string{"-duration", "10m", "-soak-sample", "2s", "-soak-small", "-rate", "5"}, &usage)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Minute, cfg.Duration)
	assert.Equal(t, 2*time.Second, cfg.Sample)
	assert.True(t, cfg.Small)
	assert.Equal(t, 5.0, cfg.Rate)

	_, err = parseArgs([]string{"-hub", "http://127.0.0.1:8080"}, &usage)
	require.Error(t, err, "a soak starts its own hubs")
	assert.Contains(t, usage.String(), "flag provided but not defined: -hub")
}

// Each rejection says what to change.
func TestConfigChecks(t *testing.T) {
	tests := []struct {
		name string
		set  func(*config)
		want string
	}{
		{"too short", func(c *config) { c.Duration = time.Minute }, "between 2m and 24h"},
		{"too long", func(c *config) { c.Duration = 25 * time.Hour }, "between 2m and 24h"},
		{"negative rate", func(c *config) { c.Rate = -1 }, "must not be negative"},
		{"negative users", func(c *config) { c.Conns = -1 }, "must not be negative"},
		{"no channels at all", func(c *config) { c.Channels, c.UserChannels = 0, false }, "-channels or -user-channels"},
		{"no senders", func(c *config) { c.Publishers = 0 }, "-publishers must be at least 1"},
		{"the shortest", func(c *config) { c.Duration = 2 * time.Minute }, ""},
		{"user channels only", func(c *config) { c.Channels = 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
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
