//go:build centrifugo

package main

// The centrifugo target against a real Centrifugo. It needs the binary
// `make bench-compare` installs, so it runs there (go test -tags
// centrifugo), and fails rather than skips when the binary is missing.

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCentrifugoTarget(t *testing.T) {
	bin := os.Getenv("CENTRIFUGO_BIN")
	if bin == "" {
		bin = defaultCentrifugoBin()
	}
	require.FileExists(t, bin, "Centrifugo: make bench-compare installs it")
	for _, user := range []bool{false, true} {
		t.Run(map[bool]string{false: "groups", true: "groups and personal channels"}[user], func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Target, cfg.Start, cfg.Redis, cfg.CentrifugoBin = targetCentrifugo, true, true, bin
			cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration, cfg.UserChannels = 30, 3, 40, 1500*time.Millisecond, user
			out, err := runTool(t, cfg)
			require.NoError(t, err)
			var r Result
			require.NoError(t, json.Unmarshal(lastLine(out), &r))
			assert.Equal(t, targetCentrifugo, r.Target)
			assert.Positive(t, r.Published)
			assert.Zero(t, r.Refused)
			assert.Equal(t, r.Expected, r.Received, "no delivery lost")
			assert.Zero(t, r.Repeats)
			assert.Positive(t, r.P99ms)
			assert.Greater(t, r.BytesPerDelivery, float64(cfg.Payload), "the publication carries the event")
		})
	}
}
