package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redistest"
)

// published counts the history entries of each of chans: one per
// publication, as the history here keeps them all.
func published(t *testing.T, srv *redistest.Server, b *broker.Redis, chans ...string) []int64 {
	t.Helper()
	out := make([]int64, len(chans))
	for i, ch := range chans {
		n, err := srv.Client().XLen(context.Background(), b.StreamKeyForTest("1", ch)+":hist").Result()
		if err != nil {
			n = -1 // not a stream
		}
		out[i] = n
	}
	return out
}

func newPublishBroker(t *testing.T, srv *redistest.Server) *broker.Redis {
	t.Helper()
	flush(t, srv)
	return newRedis(t, srv.URL(), broker.Config{DedupeWindow: time.Minute, HistorySize: 1000, HistoryTTL: time.Minute})
}

// A channel whose keys refuse the publication fails on its own: the
// channels after it are published all the same, the error names it, and a
// retry once its keys are right publishes it alone, once.
func TestRedisPublishFailureStaysOnItsChannel(t *testing.T) {
	srv := redistest.Start(t)
	b := newPublishBroker(t, srv)
	ctx := context.Background()
	rc := srv.Client()
	chans := []string{"group:A", "user:B", "user:C", "app"}
	bad := b.StreamKeyForTest("1", "user:B")
	// A valid meta hash, so the script goes on to the history, which is
	// not a stream.
	require.NoError(t, rc.HSet(ctx, bad+":meta", "e", "ep", "o", 5).Err())
	require.NoError(t, rc.Set(ctx, bad+":hist", "not a stream", 0).Err())

	m := broker.Message{App: "1", ID: "m1", Channels: chans, Data: []byte("x")}
	_, err := b.Publish(ctx, m)
	require.Error(t, err)
	assert.ErrorIs(t, err, broker.ErrUnavailable)
	assert.Contains(t, err.Error(), "to user:B")
	assert.Contains(t, err.Error(), "WRONGTYPE")
	assert.Equal(t, []int64{1, -1, 1, 1}, published(t, srv, b, chans...), "every channel but user:B published")

	require.NoError(t, rc.Del(ctx, bad+":hist").Err())
	res, err := b.Publish(ctx, m)
	require.NoError(t, err)
	assert.False(t, res.Duplicate, "user:B was published now")
	assert.Equal(t, []int64{1, 1, 1, 1}, published(t, srv, b, chans...), "user:B alone published again")
	for i, p := range res.Positions {
		assert.NotZero(t, p.Offset, "position of %s", chans[i])
	}

	res, err = b.Publish(ctx, m)
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, []int64{1, 1, 1, 1}, published(t, srv, b, chans...))
}
