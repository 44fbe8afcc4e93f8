package broker

import (
	"context"
	"slices"
	"sync"
	"time"
)

// batcher lets concurrent publications share Redis round trips. A caller
// that finds fewer than max batches in flight runs one itself, carrying its
// own work and whatever else waits; a caller that finds max in flight waits,
// and its work goes out with the next batch. Nothing is delayed to gather a
// batch: while Redis is answering one, the next fills by itself, so a
// publication on its own costs what it did alone, and many at once cost one
// round trip (one read and one write on each side) per batch rather than one
// each.
type batcher struct {
	max     int // batches in flight at once
	size    int // most requests in one batch
	exec    func(ctx context.Context, batch []*pubReq)
	mu      sync.Mutex
	pending []*pubReq
	running int
}

// pubReq is one publication waiting for, or carried by, a batch.
type pubReq struct {
	ctx  context.Context
	m    Message
	res  Result
	err  error
	done chan bool // true: the caller is to run the next batch itself
}

var pubReqPool = sync.Pool{New: func() any { return &pubReq{done: make(chan bool, 1)} }}

// do runs r in a batch and returns when it has its result. A caller whose
// ctx ends while its work still waits leaves with ctx's error, its work
// never sent; once its work is in a batch it waits for the batch, which
// runs until the latest deadline among its callers (see batchContext).
func (b *batcher) do(ctx context.Context, r *pubReq) {
	r.ctx = ctx
	b.mu.Lock()
	if b.running >= b.max {
		b.pending = append(b.pending, r)
		b.mu.Unlock()
		var lead bool
		select {
		case lead = <-r.done:
		case <-ctx.Done():
			b.mu.Lock()
			if i := slices.Index(b.pending, r); i >= 0 {
				b.pending = slices.Delete(b.pending, i, i+1)
				b.mu.Unlock()
				r.err = ctx.Err()
				return
			}
			b.mu.Unlock()
			lead = <-r.done // taken already: its batch answers
		}
		if !lead {
			return
		}
		// Handed the next batch to run (its slot in flight with it), so
		// its own work has not gone out yet.
		b.mu.Lock()
	} else {
		b.running++
	}
	n := min(len(b.pending), b.size-1)
	batch := make([]*pubReq, 0, n+1)
	batch = append(append(batch, r), b.pending[:n]...)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	b.mu.Unlock()

	bctx, cancel := batchContext(batch)
	b.exec(bctx, batch)
	cancel()

	b.mu.Lock()
	var next *pubReq
	if len(b.pending) > 0 {
		// Hand the slot on to a waiter rather than looping here: this
		// caller has its result and should not be kept by others' work.
		next = b.pending[0]
		b.pending = append(b.pending[:0], b.pending[1:]...)
	} else {
		b.running--
	}
	b.mu.Unlock()
	for _, q := range batch[1:] {
		q.done <- false
	}
	if next != nil {
		next.done <- true
	}
}

// batchContext is the context a batch runs in. The batch carries the work
// of several callers, so one caller's cancellation must not fail it for
// the others; it ends at the latest of their deadlines, or has none if one
// of them has none.
func batchContext(batch []*pubReq) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	for _, q := range batch {
		d, ok := q.ctx.Deadline()
		if !ok {
			return ctx, func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(ctx, latest)
}

// At most publishBatches pipelines of publications are in flight at once,
// each of up to publishBatchSize messages. Two keep Redis busy while the
// next batch is encoded; more would split the waiting work into smaller
// batches. The waiting work is bounded by the callers, each of whom waits.
var publishBatches, publishBatchSize = 2, 64
