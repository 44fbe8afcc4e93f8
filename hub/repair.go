package hub

import (
	"context"
	"sync"
	"time"

	"github.com/imhub/imhub/hub/broker"
)

// Gap repair. A subscription whose live stream has a hole (the broker's
// connection dropped, or the channel's stream started again) holds its
// live publications back and asks for a repair; a pool of workers reads
// the channel's history once for all the subscriptions of the channel that
// asked, and each of them sends what it lacks, then what it held back.

const (
	repairWorkers = 8
	repairRetry   = 200 * time.Millisecond
	repairMaxWait = 5 * time.Second
)

// repairQueue is the hub's queue of channels to repair, worked by a pool
// that starts on first use and stops in Drain.
type repairQueue struct {
	once    sync.Once
	mu      sync.Mutex
	keys    []chanKey
	queued  map[chanKey]bool
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	workers sync.WaitGroup
}

// enqueueRepair queues channel k for repair.
func (h *Hub) enqueueRepair(k chanKey) {
	q := &h.repairs
	q.once.Do(func() {
		q.queued = make(map[chanKey]bool)
		q.wake = make(chan struct{}, repairWorkers)
		q.done = make(chan struct{})
		for range repairWorkers {
			q.workers.Go(h.repairWorker)
		}
	})
	q.mu.Lock()
	if q.stopped || q.queued[k] {
		q.mu.Unlock()
		return
	}
	q.queued[k] = true
	q.keys = append(q.keys, k)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (h *Hub) repairWorker() {
	q := &h.repairs
	for {
		q.mu.Lock()
		for len(q.keys) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
			case <-q.done:
				return
			}
			q.mu.Lock()
		}
		k := q.keys[0]
		q.keys = q.keys[1:]
		// Requests from here on queue the channel again: they may come
		// after this worker has looked at the subscriptions.
		delete(q.queued, k)
		q.mu.Unlock()
		h.repairChannel(k)
	}
}

// stopRepairs ends the workers, after their current repair.
func (h *Hub) stopRepairs() {
	q := &h.repairs
	q.once.Do(func() { q.done = make(chan struct{}) })
	q.mu.Lock()
	if !q.stopped {
		q.stopped = true
		close(q.done)
	}
	q.mu.Unlock()
	q.workers.Wait()
}

// retryDelay backs off a subscription's failed repairs.
func retryDelay(fails int) time.Duration {
	return min(repairRetry<<min(fails, 8), repairMaxWait)
}

// repairItem is a subscription a repair pass took, with its subscribe's
// count (gen) and the last position sent to it (since) when taken.
type repairItem struct {
	s     *Session
	sub   *subscription
	gen   uint64
	since broker.Position
}

// takeRepairs collects the subscriptions of k that asked for a repair.
func (h *Hub) takeRepairs(k chanKey) []repairItem {
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	ch := sh.channels[k]
	if ch == nil {
		return nil
	}
	var items []repairItem
	for s, sub := range ch.subs {
		if it, ok := s.takeForRepair(sub); ok {
			items = append(items, it)
		}
	}
	return items
}

// repairResult is what history says for one starting point.
type repairResult struct {
	hist      broker.History
	err       error
	restarted bool // the stream started again; hist is the new one from its start
}

func (h *Hub) repairChannel(k chanKey) {
	items := h.takeRepairs(k)
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.BrokerTimeout)
	defer cancel()
	// One read per epoch the subscriptions are in (nearly always one),
	// from the oldest position among them.
	from := map[string]broker.Position{}
	for _, it := range items {
		if p, ok := from[it.since.Epoch]; !ok || it.since.Offset < p.Offset {
			from[it.since.Epoch] = it.since
		}
	}
	results := map[broker.Position]repairResult{}
	read := func(since broker.Position) repairResult {
		if r, ok := results[since]; ok {
			return r
		}
		hist, err := h.broker.History(ctx, k.app, k.channel, &since)
		r := repairResult{hist: hist, err: err}
		if err == nil && !hist.Recovered && since.Epoch != hist.Latest.Epoch {
			// The stream started again (Redis lost its keys). What is lost
			// is lost, and the client is told; what the new stream holds
			// from its start is still sent.
			if fresh, ferr := h.broker.History(ctx, k.app, k.channel, &broker.Position{}); ferr == nil && fresh.Recovered {
				r = repairResult{hist: fresh, restarted: true}
			}
		}
		results[since] = r
		return r
	}
	for _, it := range items {
		oldest := from[it.since.Epoch]
		r := read(oldest)
		if r.err == nil && !r.restarted && it.since != oldest && (!r.hist.Recovered || !r.hist.Holds(it.since)) {
			// The oldest cannot be recovered, and this one may; or the
			// stream holds the oldest but not what this one was sent at
			// its offset (Redis handed the offset out again): history
			// from this one says so.
			r = read(it.since)
		}
		it.s.applyRepair(it, r)
	}
}
