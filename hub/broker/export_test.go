package broker

import (
	"context"
	"sync"
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

// ChannelsForTest lists the channels the in-process broker keeps a record
// of.
func ChannelsForTest(m *Memory) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.channels))
	for k := range m.channels {
		out = append(out, k.app+"/"+k.channel)
	}
	return out
}

// KeysForTest lists the keys of the Redis data set, every shard of a
// cluster, with their TTLs, but for the data set's own id.
func (r *Redis) KeysForTest(ctx context.Context) (map[string]time.Duration, error) {
	keys := map[string]time.Duration{}
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if r.isRunKey(k) {
				continue
			}
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			keys[k] = ttl
			mu.Unlock()
		}
		return iter.Err()
	}
	if r.cluster != nil {
		return keys, r.cluster.ForEachMaster(ctx, scan)
	}
	return keys, scan(ctx, r.client.(*redis.Client))
}

// PublishChannelsPerCall is the most channels of one publish script call.
const PublishChannelsPerCall = publishChannelsPerCall

// ReplicasOnlineForTest is how many replicas the primary at addr had
// online when the broker last asked it, and whether it has asked.
func (r *Redis) ReplicasOnlineForTest(addr string) (int, bool) {
	r.wait.mu.Lock()
	defer r.wait.mu.Unlock()
	n, ok := r.wait.online[addr]
	return n, ok
}
