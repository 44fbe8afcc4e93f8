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

// SubscribeRawForTest subscribes name on the connection that would carry
// it, without recording it, as go-redis does with names it was once given
// when it connects again.
func (r *Redis) SubscribeRawForTest(ctx context.Context, app, channel string) error {
	sc, err := r.connFor(ctx, r.streamKey(app, channel), false)
	if err != nil {
		return err
	}
	sc.mu.Lock()
	ps := sc.ps
	sc.mu.Unlock()
	return ps.Subscribe(ctx, r.streamKey(app, channel))
}

// SendForTest sends channel's (un)subscribe as the broker would on the
// connection that carries it.
func (r *Redis) SendForTest(ctx context.Context, app, channel string, subscribe bool) error {
	name := r.streamKey(app, channel)
	sc, err := r.connFor(ctx, name, false)
	if err != nil {
		return err
	}
	sc.send(ctx, name, subscribe)
	return sc.sync(ctx, func() {})
}
