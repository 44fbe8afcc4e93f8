package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/api"
	"github.com/imhub/imhub/hub/apiclient"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/hub/presence"
	"github.com/imhub/imhub/internal/redistest"
)

const key = "the-key-of-app-100-xyz"

func serve(t *testing.T, pub api.Publisher, quota ...api.Quota) string {
	t.Helper()
	var q api.Quota
	if len(quota) > 0 {
		q = quota[0]
	}
	srv := httptest.NewServer(api.New(api.Config{
		Keys:        []api.Key{{App: "100", Key: key}},
		MaxBody:     256,
		Quota:       q,
		Publisher:   pub,
		Presence:    presence.New(presence.Config{}),
		Bus:         control.NewBus(control.BusConfig{}, func(control.Command) int { return 0 }),
		Revocations: control.NewRevocations(control.RevocationsConfig{}),
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The client's errors are the API's answers: each matches the sentinel of
// its status and carries the hub's message.
func TestErrors(t *testing.T) {
	url := serve(t, broker.NewMemory(broker.Config{DedupeWindow: time.Minute}))
	ctx := context.Background()
	ok := apiclient.New(url, "100", key)
	for _, tc := range []struct {
		name string
		call func() error
		want error
		msg  string
	}{
		{"wrong key", func() error {
			_, _, err := apiclient.New(url, "100", "wrong").Publish(ctx, "user:a", 1, "")
			return err
		}, apiclient.ErrUnauthorized, "not valid"},
		{"other app", func() error {
			_, err := apiclient.New(url, "200", key).Disconnect(ctx, "a")
			return err
		}, apiclient.ErrForbidden, "not for app 200"},
		{"app not served", func() error {
			_, err := apiclient.New(url, "999", key).Presence(ctx, "app")
			return err
		}, apiclient.ErrForbidden, "not for app 999"},
		{"over the quota", func() error {
			c := apiclient.New(serve(t, broker.NewMemory(broker.Config{}), api.Quota{Rate: 0.01, Burst: 1}), "100", key)
			if _, err := c.Connections(ctx, "a"); err != nil {
				return fmt.Errorf("first call: %w", err)
			}
			_, err := c.Connections(ctx, "a")
			var e *apiclient.Error
			if errors.As(err, &e) && e.RetryAfter != 100*time.Second {
				return fmt.Errorf("RetryAfter %v, not 100s", e.RetryAfter)
			}
			return err
		}, apiclient.ErrRateLimited, "rate limit"},
		{"bad channel", func() error {
			_, _, err := ok.Publish(ctx, "app", 1, "")
			return err
		}, apiclient.ErrBadRequest, "firehose"},
		{"too large", func() error {
			_, _, err := ok.Publish(ctx, "user:a", make([]int, 200), "")
			return err
		}, apiclient.ErrTooLarge, "larger than 256"},
		{"future revocation", func() error {
			_, err := ok.Revoke(ctx, "a", time.Now().Add(time.Hour))
			return err
		}, apiclient.ErrBadRequest, "in the future"},
		{"proxy: bad gateway", func() error {
			_, err := apiclient.New(proxy(t, http.StatusBadGateway), "100", key).Connections(ctx, "a")
			return err
		}, apiclient.ErrUnavailable, "502"},
		{"proxy: gateway timeout", func() error {
			_, _, err := apiclient.New(proxy(t, http.StatusGatewayTimeout), "100", key).Publish(ctx, "user:a", 1, "k")
			return err
		}, apiclient.ErrUnavailable, "504"},
		{"no hub", func() error {
			_, err := apiclient.New("http://127.0.0.1:1", "100", key).Connections(ctx, "a")
			return err
		}, apiclient.ErrUnavailable, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorContains(t, err, tc.msg)
			for _, other := range []error{apiclient.ErrBadRequest, apiclient.ErrUnauthorized, apiclient.ErrForbidden, apiclient.ErrNotFound, apiclient.ErrTooLarge, apiclient.ErrRateLimited, apiclient.ErrUnavailable} {
				if other != tc.want {
					assert.False(t, errors.Is(err, other), "matches %v too", other)
				}
			}
		})
	}

	off, dup, err := ok.Publish(ctx, "user:a", map[string]string{"text": "hi"}, "k")
	require.NoError(t, err)
	assert.False(t, dup)
	again, dup, err := ok.Publish(ctx, "user:a", map[string]string{"text": "hi"}, "k")
	require.NoError(t, err)
	assert.True(t, dup)
	assert.Equal(t, off, again)
	n, err := ok.Disconnect(ctx, "a")
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = ok.Revoke(ctx, "a", time.Now())
	require.NoError(t, err)
	assert.Zero(t, n)
}

// With Redis down a publish is refused 503, to be retried with the same
// idempotency key, rather than answered and lost.
func TestPublishBrokerDown(t *testing.T) {
	srv := redistest.Start(t)
	b, err := broker.NewRedis(broker.RedisConfig{URL: srv.URL(), Config: broker.Config{DedupeWindow: time.Minute, HistorySize: 10, HistoryTTL: time.Minute}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	c := apiclient.New(serve(t, b), "100", key)
	_, _, err = c.Publish(context.Background(), "user:a", 1, "k1")
	require.NoError(t, err, "published while Redis is up")
	srv.Stop()
	_, _, err = c.Publish(context.Background(), "user:a", 2, "k2")
	assert.ErrorIs(t, err, apiclient.ErrUnavailable)
	assert.ErrorContains(t, err, "try again with the same idempotency_key")
}

// proxy is a load balancer in front of no live hub: it answers status, with
// a page of its own rather than the hub's JSON.
func proxy(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>"+http.StatusText(status)+"</html>", status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
