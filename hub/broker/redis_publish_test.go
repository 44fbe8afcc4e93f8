package broker_test

import (
	"context"
	"fmt"
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

// A message with more channels than one script call takes is published to
// them all, in order, in several calls; a retry publishes to none again,
// and to one alone whose dedupe key is gone.
func TestRedisPublishManyChannels(t *testing.T) {
	srv := redistest.Start(t)
	b := newPublishBroker(t, srv)
	ctx := context.Background()
	n := 2*broker.PublishChannelsPerCall + 5
	chans := make([]string, n)
	names := map[string]int{}
	for i := range chans {
		chans[i] = fmt.Sprint("user:U", i)
		names[b.StreamKeyForTest("1", chans[i])] = i
	}
	ps := srv.Client().PSubscribe(ctx, "*")
	t.Cleanup(func() { _ = ps.Close() })
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	next := func() int {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		msg, err := ps.ReceiveMessage(rctx)
		require.NoError(t, err)
		i, ok := names[msg.Channel]
		require.True(t, ok, "published to %s", msg.Channel)
		return i
	}

	// The server knows the script from now on: each call is one EVALSHA.
	_, err = b.Publish(ctx, broker.Message{App: "1", ID: "warm", Channels: []string{"user:warm"}, Data: []byte("x")})
	require.NoError(t, err)
	_, err = ps.ReceiveMessage(ctx)
	require.NoError(t, err)
	calls := redistest.CommandCalls(t, srv, "evalsha")
	m := broker.Message{App: "1", ID: "m1", Channels: chans, Data: []byte("x")}
	res, err := b.Publish(ctx, m)
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, 3, redistest.CommandCalls(t, srv, "evalsha")-calls, "script calls for %d channels", n)
	for i := range chans {
		require.Equal(t, i, next(), "publication %d", i)
		require.Equal(t, uint64(1), res.Positions[i].Offset, "position of %s", chans[i])
	}

	res, err = b.Publish(ctx, m)
	require.NoError(t, err)
	assert.True(t, res.Duplicate)

	gone := broker.PublishChannelsPerCall + 3
	require.NoError(t, srv.Client().Del(ctx, b.StreamKeyForTest("1", chans[gone])+":seen:m1").Err())
	res, err = b.Publish(ctx, m)
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, gone, next())
	for i, c := range published(t, srv, b, chans...) {
		want := int64(1)
		if i == gone {
			want = 2
		}
		require.Equal(t, want, c, "publications to %s", chans[i])
	}
}

// A message published to some of its channels already (its dedupe key set
// there) is published to the others, and is no duplicate.
func TestRedisPublishPartlyDuplicate(t *testing.T) {
	srv := redistest.Start(t)
	b := newPublishBroker(t, srv)
	ctx := context.Background()
	first, err := b.Publish(ctx, broker.Message{App: "1", ID: "m1", Channels: []string{"group:A"}, Data: []byte("x")})
	require.NoError(t, err)

	res, err := b.Publish(ctx, broker.Message{App: "1", ID: "m1", Channels: []string{"group:A", "group:B"}, Data: []byte("x")})
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, first.Positions[0], res.Positions[0], "group:A's first position")
	assert.Equal(t, uint64(1), res.Positions[1].Offset)
	assert.Equal(t, []int64{1, 1}, published(t, srv, b, "group:A", "group:B"))
}

// A dedupe key written before they held a position (value "1") still
// marks its channel as done: the channel is not published again, its
// position is unknown, and the others are published.
func TestRedisPublishOldDedupeKey(t *testing.T) {
	srv := redistest.Start(t)
	b := newPublishBroker(t, srv)
	ctx := context.Background()
	require.NoError(t, srv.Client().Set(ctx, b.StreamKeyForTest("1", "group:A")+":seen:m1", "1", time.Minute).Err())

	res, err := b.Publish(ctx, broker.Message{App: "1", ID: "m1", Channels: []string{"group:A", "group:B"}, Data: []byte("x")})
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, broker.Position{}, res.Positions[0])
	assert.Equal(t, uint64(1), res.Positions[1].Offset)
	assert.Equal(t, []int64{0, 1}, published(t, srv, b, "group:A", "group:B"))

	res, err = b.Publish(ctx, broker.Message{App: "1", ID: "m1", Channels: []string{"group:A"}, Data: []byte("x")})
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
}
