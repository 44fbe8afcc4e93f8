package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
)

// -redis-wait-replicas is auto unless set: 0 turns waiting off, a number
// waits for that many; -redis-wait-timeout bounds the wait. Anything else
// is refused with a line naming the flag.
func TestConfigRedisWait(t *testing.T) {
	base := []string{"-apps", "1", "-jwt-secret", testSecret}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want broker.WaitConfig
		err  string
	}{
		{"default", nil, nil, broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 100 * time.Millisecond}, ""},
		{"auto", []string{"-redis-wait-replicas", "auto"}, nil, broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 100 * time.Millisecond}, ""},
		{"off", []string{"-redis-wait-replicas", "0"}, nil, broker.WaitConfig{Timeout: 100 * time.Millisecond}, ""},
		{"two, from the environment", nil, map[string]string{"HUB_REDIS_WAIT_REPLICAS": "2", "HUB_REDIS_WAIT_TIMEOUT": "250ms"},
			broker.WaitConfig{Replicas: 2, Timeout: 250 * time.Millisecond}, ""},
		{"negative", []string{"-redis-wait-replicas", "-1"}, nil, broker.WaitConfig{}, "want auto, 0 (off) or a number of replicas"},
		{"a word", []string{"-redis-wait-replicas", "all"}, nil, broker.WaitConfig{}, "-redis-wait-replicas"},
		{"no timeout", []string{"-redis-wait-timeout", "0s"}, nil, broker.WaitConfig{}, "-redis-wait-timeout must be greater than zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(append([]string(nil), base...), tc.args...), env(tc.env), &bytes.Buffer{})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.RedisWait)
		})
	}
}
