package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

// A primary with a replica, watched by Sentinel: the primary dies, the
// replica is promoted, and the broker follows it by itself: publishing
// works again and the subscription is back, with a repair requested.
func TestRedisSentinelFailover(t *testing.T) {
	primary := redistest.StartWith(t, redistest.Options{Port: redistest.FreePort(t)})
	replica := redistest.StartWith(t, redistest.Options{Port: redistest.FreePort(t),
		Conf: []string{"replicaof 127.0.0.1 " + strings.TrimPrefix(primary.Addr(), "127.0.0.1:")}})
	sentinel := redistest.StartWith(t, redistest.Options{Port: redistest.FreePort(t), Sentinel: true, Conf: []string{
		"sentinel monitor imhub " + strings.Replace(primary.Addr(), ":", " ", 1) + " 1",
		"sentinel down-after-milliseconds imhub 500",
		"sentinel failover-timeout imhub 5000",
	}})
	ctx := context.Background()
	require.Eventually(t, func() bool {
		info, _ := replica.Client().Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	}, 20*time.Second, 20*time.Millisecond, "the replica syncs")

	b := newRedis(t, "redis+sentinel://"+sentinel.Addr()+"?master_name=imhub", brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	waitReady(t, b, true)
	require.NoError(t, b.Subscribe(ctx, "1", "group:S"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:S"}, Data: []byte("1")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)

	primary.Stop()
	require.Eventually(t, func() bool {
		_, err = b.Publish(ctx, broker.Message{App: "1", ID: "2", Channels: []string{"group:S"}, Data: []byte("2")})
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "publishing goes to the promoted replica")
	info, err := replica.Client().Info(ctx, "replication").Result()
	require.NoError(t, err)
	assert.Contains(t, info, "role:master", "the replica was promoted")
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 20*time.Second, 10*time.Millisecond,
		"the subscription moved to the new primary and a repair was asked for")
	waitReady(t, b, true)
	_, err = b.Publish(ctx, broker.Message{App: "1", ID: "3", Channels: []string{"group:S"}, Data: []byte("3")})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, p := range rec.Publications() {
			if string(p.Data) == "3" {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "publications arrive from the new primary")
}

// rediss:// with a private CA and an ACL user limited to imhub's keys and
// channels: the broker works; without the CA, or with a wrong password, it
// says why it cannot.
func TestRedisTLSAndACL(t *testing.T) {
	port := redistest.FreePort(t)
	tlsConf, caFile := redistest.TLSConf(t, port)
	redistest.StartWith(t, redistest.Options{Conf: append(tlsConf,
		"user imhub on >s3cret resetchannels &imhub:* ~imhub:* +@all -@dangerous")})
	url := fmt.Sprintf("rediss://imhub:s3cret@127.0.0.1:%d", port)

	open := func(url, ca string) *broker.Redis {
		b, err := broker.NewRedis(broker.RedisConfig{Config: brokertest.DefaultConfig, URL: url, CAFile: ca,
			PingInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	ctx := context.Background()
	b := open(url, caFile)
	rec := brokertest.Start(t, b)
	waitReady(t, b, true)
	require.NoError(t, b.Subscribe(ctx, "1", "group:T"))
	_, err := b.Publish(ctx, broker.Message{App: "1", ID: "1", Channels: []string{"group:T"}, Data: []byte("1")})
	require.NoError(t, err)
	rec.WaitCount(t, 1)
	h, err := b.History(ctx, "1", "group:T", &broker.Position{})
	require.NoError(t, err)
	assert.Len(t, h.Publications, 1)

	_, err = open(url, "").Publish(ctx, broker.Message{App: "1", ID: "2", Channels: []string{"group:T"}, Data: []byte("2")})
	require.ErrorIs(t, err, broker.ErrUnavailable)
	assert.Contains(t, err.Error(), "certificate", "the system CAs do not know the server")

	bad := strings.Replace(url, "s3cret", "wrong", 1)
	_, err = open(bad, caFile).Publish(ctx, broker.Message{App: "1", ID: "3", Channels: []string{"group:T"}, Data: []byte("3")})
	require.ErrorIs(t, err, broker.ErrUnavailable)
	assert.Contains(t, err.Error(), "WRONGPASS")
}

func TestRedisURLs(t *testing.T) {
	for _, tc := range []struct {
		url, err string
	}{
		{"redis://localhost:6379/0", ""},
		{"rediss://user:pw@redis.example:6380", ""},
		{"unix:///run/redis.sock", ""},
		{"redis+cluster://10.0.0.1:6379?addr=10.0.0.2:6379&addr=10.0.0.3:6379", ""},
		{"rediss+cluster://user:pw@10.0.0.1:6379", ""},
		{"redis+sentinel://10.0.0.1:26379?master_name=main&addr=10.0.0.2:26379&password=pw", ""},
		{"redis+sentinel://10.0.0.1:26379", "master_name"},
		{"redis+sentinel://10.0.0.1:26379?master_name=m&password=topsecret&bogus=1", "unexpected option"},
		{"redis+cluster://:topsecret@10.0.0.1:6379?bogus=1", "unexpected option"},
		{"redis+cluster://:topsecret@10.0.0.1:63x79", "invalid port"},
		{"rediss+sentinel://:topsecret@10.0.0.1:2x6379?master_name=m", "invalid port"},
		{"unix+cluster:///tmp/x", "unknown scheme"},
		{"http://localhost", "unknown scheme"},
		{"topsecret", "not a URL"},
		{"redis:topsecret@localhost", "not a URL"},
		{"topsecret=redis://localhost", "unparsable URL"},
		{"top secret://localhost", "not a URL"},
		{"redis://:topsecret@localhost:63x79/0#topsecret", "invalid port"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := broker.CheckRedisURL(tc.url, "")
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.NotContains(t, err.Error(), "topsecret")
		})
	}
	_, err := broker.NewRedis(broker.RedisConfig{URL: "rediss://localhost", CAFile: "/nonexistent/ca.pem"})
	assert.ErrorContains(t, err, "redis CA file")
	assert.ErrorContains(t, broker.CheckRedisURL("rediss://localhost", "redis_test.go"), "no PEM certificate")
	_, ca := redistest.TLSConf(t, 1)
	assert.NoError(t, broker.CheckRedisURL("rediss://localhost", ca))
	assert.ErrorContains(t, broker.CheckRedisURL("redis://localhost", ca), "not rediss://")
}

// A Redis URL is shown without its passwords or fragment, and text that
// is no URL not at all.
func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://user:topsecret@10.0.0.1:6379/0":                           "redis://user:xxxxx@10.0.0.1:6379/0",
		"redis+sentinel://10.0.0.1:26379?master_name=m&password=topsecret": "redis+sentinel://10.0.0.1:26379?master_name=m&password=xxxxx",
		"rediss://10.0.0.1:6380/0#topsecret":                               "rediss://10.0.0.1:6380/0",
		"unix://:topsecret@/run/redis.sock":                                "unix://:xxxxx@/run/redis.sock",
		"topsecret":                                                        "(not a URL)",
		"redis://:topsecret@10.0.0.1:63x79":                                "(unparsable URL)",
		// A query that does not decode would lose its password to url.Query.
		"redis://localhost:6379?password=top%zzsecret": "redis://localhost:6379?xxxxx",
	} {
		assert.Equal(t, want, broker.RedactURL(raw), raw)
	}
}

// A password with a character url.Error quotes escaped does not reach the
// error in either form.
func TestRedisURLErrorQuotedPassword(t *testing.T) {
	for _, raw := range []string{`redis://:pa"ss@localhost:6379`, "redis://:pa\\ss@localhost:63x9"} {
		err := broker.CheckRedisURL(raw, "")
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), `pa\"ss`, raw)
		assert.NotContains(t, err.Error(), `pa"ss`, raw)
		assert.NotContains(t, err.Error(), `pa\\ss`, raw)
	}
}

// A subscribe Redis refuses (here: the ACL user may not use the channel)
// is reported as such, never taken for a live subscription.
func TestRedisSubscribeRefused(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Port: redistest.FreePort(t), Conf: []string{
		"user imhub on >s3cret resetchannels &imhub:{1:group:ok} ~imhub:* +@all -@dangerous"}})
	b := newRedis(t, "redis://imhub:s3cret@"+srv.Addr(), brokertest.DefaultConfig)
	brokertest.Start(t, b)
	ctx := context.Background()
	waitReady(t, b, true)
	require.NoError(t, b.Subscribe(ctx, "1", "group:ok"))
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := b.Subscribe(sctx, "1", "group:no")
	require.ErrorIs(t, err, broker.ErrUnavailable)
	assert.ErrorContains(t, err, "not confirmed")
	require.NoError(t, b.Subscribe(ctx, "1", "group:ok"), "the connection carries on")
}
