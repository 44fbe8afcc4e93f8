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

// hubcat publish and presence against a -dev hub: the published event
// reaches a subscriber, presence sees it, and the hub's refusals are shown.
func TestHubcatPublishAndPresence(t *testing.T) {
	const key = "hubcat-test-key-0123456789"
	p := hubtest.Start(t, []string{"-dev", "-api-keys", "1400000000:" + key})
	base := "http://" + p.Addr
	env := func(k string) string {
		if k == "HUB_API_KEY" {
			return key
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var watched hubtest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{dev: base, subs: "group:G1", count: 1}, strings.NewReader(""), &watched)
	}()
	require.Eventually(t, func() bool { return strings.Contains(watched.String(), `"op":"subscribed","channel":"group:G1"`) },
		10*time.Second, 10*time.Millisecond)

	var out, errOut bytes.Buffer
	require.NoError(t, runAPI(ctx, "presence", []string{"-hub", base, "-channel", "group:G1"}, env, &out, &errOut), errOut.String())
	assert.Equal(t, `{"users":{"dev":1}}`+"\n", out.String(), "the dev token is for user dev")

	out.Reset()
	require.NoError(t, runAPI(ctx, "publish", []string{"-hub", base, "-channel", "group:G1", "-idempotency-key", "k1", `{"text":"shipped"}`}, env, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), `"offset":"1:`)
	require.NoError(t, <-done)
	assert.Contains(t, watched.String(), `"type":"custom"`)
	assert.Contains(t, watched.String(), `"data":{"text":"shipped"}`)

	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"wrong key", []string{"-hub", base, "-key", "wrong-key-0123456789", "-channel", "user:a", "1"}, env, "401 Unauthorized: API key is not valid"},
		{"no key", []string{"-hub", base, "-channel", "user:a", "1"}, func(string) string { return "" }, "-key or $HUB_API_KEY is required"},
		{"not JSON", []string{"-hub", base, "-channel", "user:a", "hello"}, env, "not JSON"},
		{"the firehose", []string{"-hub", base, "-channel", "app", "1"}, env, "400 Bad Request: channel \"app\" is the firehose"},
		{"no data", []string{"-hub", base, "-channel", "user:a"}, env, "want the event's data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runAPI(ctx, "publish", tc.args, tc.env, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	out.Reset()
	require.NoError(t, runAPI(ctx, "presence", []string{"-hub", base, "-user", "nobody"}, env, &out, &errOut))
	assert.Equal(t, `{"connections":0,"online":false}`+"\n", out.String())
}
