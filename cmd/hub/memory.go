package main

import (
	"context"
	"time"
)

// reclaimMinPeak is the fewest sessions worth reclaiming after: below it,
// what they held is small beside the process itself.
const reclaimMinPeak = 256

// reclaimMemory gives memory the process no longer needs back to the
// operating system, at two moments:
//
//   - after a fall: sessions that left. The Go runtime frees their memory
//     for reuse at its next collection, which an idle process may not run
//     for two minutes, and then returns it to the system gradually. A
//     replica that lost most of its clients (drained to others in a
//     deploy, a network blip) would keep its peak RSS all that time, and
//     RSS is what a container's memory limit and the scheduler see. So
//     when the sessions fall below half of their peak since the last
//     reclaim, free runs.
//   - after a rise: a crowd of sessions that arrived (a deploy's
//     reconnects, a start). Each connect leaves about three times what
//     the session keeps as garbage (the HTTP server's request buffers,
//     dropped at the upgrade, the handshake and the token), and the heap
//     grown for it stays resident though nothing uses it. So when the
//     sessions have grown by half (at least reclaimMinPeak) since the last
//     reclaim and arrivals have slowed to a trickle, free runs.
//
// free (debug.FreeOSMemory: one collection) is told why and the sessions
// before and now. It checks every period until ctx is done.
func reclaimMemory(ctx context.Context, sessions func() int, period time.Duration, free func(why reclaimWhy, from, now int)) {
	t := time.NewTicker(period)
	defer t.Stop()
	peak := sessions()
	low, last := peak, peak
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := sessions()
		peak, low = max(peak, n), min(low, n)
		switch {
		case peak >= reclaimMinPeak && n < peak/2:
			free(reclaimFall, peak, n)
			peak, low = n, n
		case n-low >= max(reclaimMinPeak, low/2) && n-last < reclaimMinPeak/4:
			free(reclaimRise, low, n)
			peak, low = n, n
		}
		last = n
	}
}

// reclaimWhy says which change of the sessions made reclaimMemory free
// memory.
type reclaimWhy int

const (
	reclaimFall reclaimWhy = iota // most sessions left
	reclaimRise                   // many arrived
)
