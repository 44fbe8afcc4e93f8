package hub

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Each step of a send queue, from a fresh one: what it holds and says
// after it.
func TestSendQueueSteps(t *testing.T) {
	frame := func(n int) []byte { return make([]byte, n) }
	type state struct {
		frames, queued, burst int
		writing, closed       bool
	}
	get := func(q *sendQueue) state {
		return state{len(q.queue), q.queued, q.burst, q.writing, q.closed}
	}
	for _, tc := range []struct {
		name  string
		steps []func(q *sendQueue) any
		want  []any
	}{
		{"the first frame starts the writer, the next does not",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { q.push(frame(10), 0); return q.startWriting() },
				func(q *sendQueue) any { q.push(frame(5), 0); return q.startWriting() },
				func(q *sendQueue) any { return get(q) },
			},
			[]any{true, false, state{2, 15, 0, true, false}}},
		{"replay frames are counted apart and lift the frame limit",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any {
					q.push(frame(1), 0)
					q.pushBurst(frame(1), 0)
					q.pushBurst(frame(1), 0)
					return q.full(2)
				},
				func(q *sendQueue) any { return q.full(1) },
				func(q *sendQueue) any { return get(q) },
			},
			[]any{false, true, state{3, 3, 2, false, false}}},
		{"bytes over the budget",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { q.push(frame(100), 0); return q.overBudget(100) },
				func(q *sendQueue) any { q.push(frame(1), 0); return q.overBudget(100) },
			},
			[]any{false, true}},
		{"a batch taken and written frees its bytes and serves the next queue",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any {
					q.startWriting()
					q.push(frame(10), 0)
					q.push(frame(20), 0)
					return len(q.next())
				},
				func(q *sendQueue) any { return get(q) },
				func(q *sendQueue) any {
					b := q.spare
					q.written(make([][]byte, 2), 30)
					return b == nil && q.spare != nil
				},
				func(q *sendQueue) any { return get(q) },
			},
			[]any{2, state{0, 30, 0, true, false}, true, state{0, 0, 0, true, false}}},
		{"an empty queue stops the writer and clears the burst",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { q.startWriting(); q.pushBurst(frame(1), 0); return len(q.next()) },
				func(q *sendQueue) any { q.written(make([][]byte, 1), 1); return q.next() == nil },
				func(q *sendQueue) any { return get(q) },
				func(q *sendQueue) any { return q.startWriting() },
			},
			[]any{1, true, state{0, 0, 0, false, false}, true}},
		{"an idle queue gives back the room a burst took",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any {
					for range 100 {
						q.pushBurst(frame(1), 0)
					}
					q.written(q.next(), 100)
					q.next()
					return q.queue == nil && q.spare == nil
				},
			},
			[]any{true}},
		{"the first close asked for wins",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { return q.requestClose(CloseTooSlow, "slow") },
				func(q *sendQueue) any { return q.requestClose(closeNormal, "") },
				func(q *sendQueue) any { return []any{q.closed, q.code, q.reason} },
			},
			[]any{true, false, []any{true, CloseTooSlow, "slow"}}},
		{"dropped and the rest taken",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { q.push(frame(1), 0); q.push(frame(1), 0); return q.drop() },
				func(q *sendQueue) any { q.push(frame(1), 0); return len(q.rest()) },
				func(q *sendQueue) any { return len(q.queue) },
			},
			[]any{2, 1, 0}},
		{"the lag is that of the oldest frame waiting, queued or being written",
			[]func(q *sendQueue) any{
				func(q *sendQueue) any { return q.lagging(1000, 10) },
				func(q *sendQueue) any {
					q.startWriting()
					q.push(frame(1), 100)
					q.push(frame(1), 150)
					return q.lagging(110, 10)
				},
				func(q *sendQueue) any { return q.lagging(111, 10) },
				// The writer takes both; one more comes meanwhile.
				func(q *sendQueue) any { q.next(); q.push(frame(1), 200); return q.lagging(111, 10) },
				// Written: the one queued at 200 is the oldest now.
				func(q *sendQueue) any {
					q.written(make([][]byte, 2), 2)
					return []bool{q.lagging(205, 10), q.lagging(211, 10)}
				},
				func(q *sendQueue) any { q.written(q.next(), 1); q.next(); return q.lagging(1e9, 10) },
				func(q *sendQueue) any { q.push(frame(1), 300); q.drop(); return q.lagging(1e9, 10) },
				func(q *sendQueue) any { q.push(frame(1), 400); q.rest(); return q.lagging(1e9, 10) },
			},
			[]any{false, false, true, true, []bool{false, true}, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q sendQueue
			for i, step := range tc.steps {
				assert.Equal(t, tc.want[i], step(&q), "step %d", i)
			}
		})
	}
}
