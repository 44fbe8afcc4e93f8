package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/redistest"
)

// Past -api-burst an app is refused with 429 and a Retry-After, every call
// alike; another app's quota is its own; /metrics counts the refusals by
// app and by call.
func TestBinaryAPIQuota(t *testing.T) {
	// A request every 100 s: none comes back during the test.
	p := startAPIHub(t, "-api-rate", "0.01", "-api-burst", "2")
	eve := dialUser(t, p, mintAt(t, "eve", time.Now()))
	for i := range 2 {
		resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, fmt.Sprintf(`{"channel":"user:eve","data":%d}`, i))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		assert.Equal(t, out["offset"], eve.ReadOp("event").Offset)
	}
	resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, `{"channel":"user:eve","data":"over"}`)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", resp.Header.Get("Retry-After"))
	assert.True(t, secs >= 1 && secs <= 100, "Retry-After %d: the wait for a request at 0.01 a second", secs)
	assert.Contains(t, out["error"], "app 100 is over this hub's server API rate limit (0.01 requests a second, 2 at once)")
	resp, _ = apiCall(t, p, "GET", "/api/presence?user=eve", apiKey, "")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "presence counts too")

	resp, out = apiCall(t, p, "POST", "/api/publish", apiKey2, `{"channel":"user:eve","data":"app 200"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "app 200 has a quota of its own: %v", out)

	_, metrics := p.Get("/metrics")
	assert.Contains(t, metrics, `imhub_api_rate_limited_total{app="100"} 2`)
	assert.NotContains(t, metrics, `imhub_api_rate_limited_total{app="200"}`)
	assert.Contains(t, metrics, `imhub_api_requests_total{call="publish",code="429"} 1`)
	assert.Contains(t, metrics, `imhub_api_requests_total{call="presence",code="429"} 1`)
}

// What a channel published to for the first time costs Redis, the figures
// README quotes (go test -run TestAPIChannelRedisCost -v ./cmd/hub/): the
// bytes Redis's used_memory grows by per fresh channel, first while its
// history and dedupe keys live (-history-ttl and -dedupe-window, 10
// minutes), then while only its offsets live (24 hours); and the keys, with
// the time to live of each.
func TestAPIChannelRedisCost(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	p := startNodes(t, srv.URL(), 1, "-api-keys", "100:"+apiKey, "-api-rate", "0")[0]
	used := func() int64 {
		t.Helper()
		require.NoError(t, rc.Do(ctx, "MEMORY", "PURGE").Err())
		info, err := rc.Info(ctx, "memory").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				return n
			}
		}
		t.Fatalf("no used_memory in INFO memory:\n%s", info)
		return 0
	}
	// The firehose's keys, made by the first publish, are not a fresh
	// channel's: it is there before the count starts.
	resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, `{"channel":"user:warmup","data":{"text":"your order shipped"}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	const n = 2000
	before := used()
	keysBefore, err := rc.DBSize(ctx).Result()
	require.NoError(t, err)
	for i := range n {
		body := fmt.Sprintf(`{"channel":"user:u%06d","data":{"text":"your order shipped"},"idempotency_key":"order-%06d"}`, i, i)
		resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
	}
	during := used()
	keysAfter, err := rc.DBSize(ctx).Result()
	require.NoError(t, err)

	// Each fresh channel's keys and how long they live.
	ttls := map[string]time.Duration{}
	var channelKeys []string
	iter := rc.Scan(ctx, 0, "imhub:{100:user:u000000}*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		channelKeys = append(channelKeys, k)
		ttl, err := rc.PTTL(ctx, k).Result()
		require.NoError(t, err)
		bytes, err := rc.MemoryUsage(ctx, k).Result()
		require.NoError(t, err)
		kind := k[strings.LastIndex(k, "}:")+2:]
		kind, _, _ = strings.Cut(kind, ":")
		ttls[kind] = ttl
		t.Logf("key %s: %d bytes (MEMORY USAGE), expires in %v", k, bytes, ttl.Round(time.Minute))
	}
	require.NoError(t, iter.Err())
	require.Len(t, channelKeys, 3, "a history stream, an offsets hash and a dedupe key: %v", channelKeys)
	assert.InDelta(t, (24 * time.Hour).Seconds(), ttls["meta"].Seconds(), 60, "offsets outlive silence by a day")
	assert.InDelta(t, (10 * time.Minute).Seconds(), ttls["hist"].Seconds(), 60, "history lives -history-ttl")
	assert.InDelta(t, (10 * time.Minute).Seconds(), ttls["seen"].Seconds(), 60, "the dedupe key lives -dedupe-window")
	// The firehose gets a dedupe key of each publish too.
	assert.Equal(t, int64(4*n), keysAfter-keysBefore, "three keys per channel and a dedupe key in the firehose")

	// What is left once the 10-minute keys have expired.
	var expiring []string
	iter = rc.Scan(ctx, 0, "imhub:{100:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.Contains(k, ":user:warmup}") {
			continue // counted before
		}
		if strings.HasSuffix(k, ":hist") && !strings.Contains(k, ":app}") || strings.Contains(k, ":seen:") {
			expiring = append(expiring, k)
		}
	}
	require.NoError(t, iter.Err())
	for len(expiring) > 0 {
		batch := expiring[:min(len(expiring), 500)]
		expiring = expiring[len(batch):]
		require.NoError(t, rc.Del(ctx, batch...).Err())
	}
	after := used()
	perChannel := float64(during-before) / n
	perDay := float64(after-before) / n
	t.Logf("redis used_memory per fresh channel: %.0f bytes for its first 10 minutes, %.0f bytes of them for 24 hours", perChannel, perDay)
	t.Logf("so 100 fresh channels a second (-api-rate's default) hold %.0f MB after 10 minutes, and %.0f MB of offsets after a day; 4,800 a second hold %.0f MB after 10 minutes",
		perChannel*100*600/1e6, perDay*100*86400/1e6, perChannel*4800*600/1e6)
	assert.Greater(t, perChannel, perDay, "history and dedupe keys cost more than the offsets")
	assert.Positive(t, perDay, "the offsets hash stays")
}
