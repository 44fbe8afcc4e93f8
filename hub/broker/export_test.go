package broker

import (
	"context"
	"time"
)

// FlushForTest empties the Redis database.
func (r *Redis) FlushForTest(ctx context.Context) error { return r.client.FlushAll(ctx).Err() }

// SetClockForTest replaces the in-process broker's clock.
func SetClockForTest(m *Memory, now func() time.Time) { m.now = now }
