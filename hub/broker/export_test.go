package broker

import "context"

// FlushForTest empties the Redis database.
func (r *Redis) FlushForTest(ctx context.Context) error { return r.client.FlushAll(ctx).Err() }
