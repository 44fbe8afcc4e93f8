package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

func pub(id string, channels ...string) broker.Message {
	return broker.Message{App: "1", ID: id, Channels: channels, Data: []byte(id)}
}

// The writes a primary acknowledged but had not replicated are gone when
// its replica is promoted: the new primary hands their offsets out again,
// to other events, under the same epoch. A client holding a position from
// before is told its stream is not recovered, whether the new stream has
// reached that offset again or not; one holding a position the new
// primary has goes on.
func TestRedisFailoverThatLostWrites(t *testing.T) {
	primary, replica := redistest.StartReplicated(t, redistest.Options{})
	ctx := context.Background()
	b := newRedis(t, "redis://"+primary.Addr(), brokertest.DefaultConfig)
	var kept []broker.Position
	for i := 1; i <= 3; i++ {
		r, err := b.Publish(ctx, pub(fmt.Sprint("kept", i), "group:F"))
		require.NoError(t, err)
		kept = append(kept, r.Positions[0])
	}
	require.Eventually(t, func() bool {
		n, _ := replica.Client().XLen(ctx, b.StreamKeyForTest("1", "group:F")+":hist").Result()
		return n == 3
	}, 10*time.Second, 10*time.Millisecond, "the replica has the first three")

	// The replica stalls and its link goes: the next writes are the
	// primary's alone, acknowledged all the same.
	replica.Pause()
	primary.CutReplicas()
	var lost []broker.Position
	for i := 1; i <= 2; i++ {
		r, err := b.Publish(ctx, pub(fmt.Sprint("lost", i), "group:F"))
		require.NoError(t, err)
		lost = append(lost, r.Positions[0])
	}
	primary.Kill()
	replica.Resume()
	replica.Promote()

	nb := newRedis(t, "redis://"+replica.Addr(), brokertest.DefaultConfig) // the hub, following the failover
	h, err := nb.History(ctx, "1", "group:F", &kept[2])
	require.NoError(t, err)
	assert.True(t, h.Recovered, "the new primary has what was replicated")
	assert.Equal(t, kept[2], h.Latest)
	h, err = nb.History(ctx, "1", "group:F", &lost[1])
	require.NoError(t, err)
	assert.False(t, h.Recovered, "a position beyond the new primary's latest")
	for i := 1; i <= 3; i++ {
		_, err := nb.Publish(ctx, pub(fmt.Sprint("after", i), "group:F"))
		require.NoError(t, err)
	}
	h, err = nb.History(ctx, "1", "group:F", &kept[2])
	require.NoError(t, err)
	assert.True(t, h.Recovered)
	require.Len(t, h.Publications, 3, "what came after the failover")
	assert.Equal(t, "after1", string(h.Publications[0].Data))
	assert.Equal(t, kept[2].Epoch, h.Latest.Epoch, "the same epoch: only tags tell the streams apart")
	for _, p := range lost {
		h, err = nb.History(ctx, "1", "group:F", &p)
		require.NoError(t, err)
		assert.False(t, h.Recovered, "%s: its offset now holds another event", p)
		assert.Empty(t, h.Publications)
	}
}
