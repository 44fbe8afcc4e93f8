package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A caller whose context ends while its work waits for a batch leaves at
// once with the context's error, and its work is not sent; a batch runs
// until the latest deadline of its callers.
func TestBatcherWaitersLeaveOnTheirContext(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]string
	var deadlines []time.Time
	b := batcher{max: 1, size: 64, exec: func(ctx context.Context, batch []*pubReq) {
		d, _ := ctx.Deadline()
		mu.Lock()
		var ids []string
		for _, q := range batch {
			ids = append(ids, q.m.ID)
		}
		batches = append(batches, ids)
		deadlines = append(deadlines, d)
		mu.Unlock()
		if batch[0].m.ID == "first" {
			<-release
		}
	}}
	req := func(id string) *pubReq { return &pubReq{m: Message{ID: id}, done: make(chan bool, 1)} }
	pending := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) }

	first := make(chan struct{})
	go func() { b.do(context.Background(), req("first")); close(first) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 }, 5*time.Second, time.Millisecond)

	// Two wait behind the first batch; one of them gives up.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := req("gave-up")
	left := make(chan struct{})
	go func() { b.do(ctx, gaveUp); close(left) }()
	soon, cancelSoon := context.WithTimeout(context.Background(), time.Hour)
	defer cancelSoon()
	later, cancelLater := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancelLater()
	waited := make(chan struct{})
	go func() { b.do(later, req("waited")); close(waited) }()
	require.Eventually(t, func() bool { return pending() == 2 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-left:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter whose context ended did not leave")
	}
	assert.ErrorIs(t, gaveUp.err, context.Canceled)
	assert.Equal(t, 1, pending())

	// A third, with an earlier deadline, joins the next batch.
	third := make(chan struct{})
	go func() { b.do(soon, req("third")); close(third) }()
	require.Eventually(t, func() bool { return pending() == 2 }, 5*time.Second, time.Millisecond)
	close(release)
	for _, c := range []chan struct{}{first, waited, third} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("a caller was never answered")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, [][]string{{"first"}, {"waited", "third"}}, batches, "the one that left is not sent")
	assert.True(t, deadlines[0].IsZero(), "a caller without a deadline: the batch has none")
	want, _ := later.Deadline()
	assert.Equal(t, want, deadlines[1], "the latest deadline of the batch's callers")
}
