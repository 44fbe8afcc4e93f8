package main

import (
	"context"
	"time"
)

// reclaimMinPeak is the fewest sessions worth reclaiming after: below it,
// what they held is small beside the process itself.
const reclaimMinPeak = 256

// reclaimMemory gives the memory of sessions that left back to the
// operating system. The Go runtime frees it for reuse at its next
// collection, which an idle process may not run for two minutes, and then
// returns it to the system gradually. A replica that lost most of its
// clients (drained to others in a deploy, a network blip) would keep its
// peak RSS all that time, and RSS is what a container's memory limit and
// the scheduler see. So when the sessions fall below half of their peak
// since the last reclaim, free runs (debug.FreeOSMemory: one collection),
// told the peak and the sessions now. It checks every period until ctx is
// done.
func reclaimMemory(ctx context.Context, sessions func() int, period time.Duration, free func(peak, now int)) {
	t := time.NewTicker(period)
	defer t.Stop()
	peak := sessions()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := sessions()
		peak = max(peak, n)
		if peak >= reclaimMinPeak && n < peak/2 {
			free(peak, n)
			peak = n
		}
	}
}
