package broker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// FlushForTest empties the Redis database, every shard of a cluster.
func (r *Redis) FlushForTest(ctx context.Context) error {
	if r.cluster != nil {
		return r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.FlushAll(ctx).Err()
		})
	}
	return r.client.FlushAll(ctx).Err()
}

// StreamKeyForTest is the hash-tagged name of a channel's keys.
func (r *Redis) StreamKeyForTest(app, channel string) string { return r.streamKey(app, channel) }

// SetClockForTest replaces the in-process broker's clock.
func SetClockForTest(m *Memory, now func() time.Time) { m.now = now }
