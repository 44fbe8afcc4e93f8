// Package retry paces retries: a wait that doubles between bounds, with
// jitter, slept until a context ends. The Redis broker's redials, the
// forwarder's queue reads and the Go client's reconnects share it.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Next doubles d, kept within [lo, hi].
func Next(d, lo, hi time.Duration) time.Duration { return min(max(2*d, lo), hi) }

// Jitter returns a wait between d/2 and d: a fleet of nodes that lost the
// same server does not come back in lockstep.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
