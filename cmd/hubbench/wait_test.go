package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// The wait preset runs once at a tiny size, so that it cannot rot: a hub
// without waiting and one with auto, each on a primary with a replica;
// the one with auto has the primary run WAITs.
func TestTinyWaitRun(t *testing.T) {
	cfg := defaultConfig()
	presets["wait"](&cfg)
	cfg.Preset, cfg.HubBin = "wait", hubtest.Binary(t)
	cfg.Duration, cfg.Publishers, cfg.Rate, cfg.Rounds = time.Second, 4, 200, 1
	out, err := runTool(t, cfg)
	require.NoError(t, err)
	var r WaitReport
	require.NoError(t, json.Unmarshal(lastLine(out), &r), "the last line is JSON")
	require.Len(t, r.Rounds, 1)
	require.Len(t, r.Rounds[0], 2)
	for _, run := range r.Rounds[0] {
		assert.Positive(t, run.Res.Published, run.Wait)
		assert.Positive(t, run.Res.CallbackP99ms, run.Wait)
		if run.Wait == "0" {
			assert.Zero(t, run.Waits, "no WAIT without waiting")
		} else {
			assert.Positive(t, run.Waits, "auto waits for the replica")
		}
	}
	assert.Contains(t, string(out), "callback p99 ms")
}

func TestWaitNeedsItsOwnRedis(t *testing.T) {
	cfg := defaultConfig()
	presets["wait"](&cfg)
	cfg.Preset, cfg.Redis = "wait", false
	assert.ErrorContains(t, cfg.validate(), "give -start -redis")
	cfg.Redis, cfg.Target = true, targetCentrifugo
	assert.ErrorContains(t, cfg.validate(), "no -target")
}
