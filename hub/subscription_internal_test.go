package hub

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/imhub/imhub/hub/broker"
)

func pos(off uint64, epoch string) broker.Position { return broker.Position{Offset: off, Epoch: epoch} }

// tagged is pos with a Tag.
func tagged(off uint64, epoch, tag string) broker.Position {
	return broker.Position{Offset: off, Epoch: epoch, Tag: tag}
}

func TestSubscriptionFollows(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sent  broker.Position
		pos   broker.Position
		link  string // the Tag pos names before it
		want  step
		after bool
	}{
		{"the next", pos(5, "e"), pos(6, "e"), "", stepNext, true},
		{"the last again", pos(5, "e"), pos(5, "e"), "", stepSent, false},
		{"an older one", pos(5, "e"), pos(2, "e"), "", stepEarlier, false},
		{"one missing before it", pos(5, "e"), pos(7, "e"), "", stepGap, true},
		{"a new stream", pos(5, "e"), pos(1, "f"), "", stepGap, false},
		{"a new stream from where the old one was", pos(5, "e"), pos(6, "f"), "", stepGap, false},
		{"the first of a stream joined at its start", pos(0, "e"), pos(1, "e"), "", stepNext, true},
		{"the first of the stream after an empty channel", pos(0, "run.abc"), pos(1, "f"), "", stepNext, true},
		{"a later one of the stream after an empty channel", pos(0, "run.abc"), pos(2, "f"), "", stepGap, false},
		{"the first of a stream after offset 0 of another stream", pos(0, "e"), pos(1, "f"), "", stepGap, false},
		{"the next, after the one sent", tagged(5, "e", "a5"), tagged(6, "e", "a6"), "a5", stepNext, true},
		{"the next, after another one at the offset sent", tagged(5, "e", "a5"), tagged(6, "e", "b6"), "b5", stepGap, true},
		{"the next, from a node that keeps no tags", tagged(5, "e", "a5"), pos(6, "e"), "", stepNext, true},
		{"the last again, the same event", tagged(5, "e", "a5"), tagged(5, "e", "a5"), "a4", stepSent, false},
		{"another event at the offset sent", tagged(5, "e", "a5"), tagged(5, "e", "b5"), "a4", stepGap, false},
		{"another event at an older offset", tagged(5, "e", "a5"), tagged(3, "e", "b3"), "a2", stepEarlier, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &subscription{channel: "group:G"}
			sub.sentUpTo(tc.sent)
			assert.Equal(t, tc.want, sub.follows(tc.pos, tc.link))
			assert.Equal(t, tc.after, sub.after(tc.pos, tc.link), "after")
		})
	}
}

// The steps of a subscription's join and repair, each from the state the
// one before left.
func TestSubscriptionSteps(t *testing.T) {
	type state struct{ held, marked bool }
	get := func(sub *subscription) state { return state{sub.held(), sub.markedForRepair} }
	for _, tc := range []struct {
		name  string
		steps []func(*subscription) any
		want  []any // what each step returned, or the state after it
		end   state
	}{
		{
			name: "a subscribe joins and goes live",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.startJoin(); return get(s) },
				func(s *subscription) any { return s.joined(pos(3, "e")) },
			},
			want: []any{state{held: true}, false},
		},
		{
			name: "a repair asked for while joining runs after it",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.startJoin(); return nil },
				func(s *subscription) any { s.wantRepair(); s.markForRepair(); return get(s) },
				func(s *subscription) any { return s.takeForRepair() },
				func(s *subscription) any { return s.joined(pos(3, "e")) },
			},
			want: []any{nil, state{held: true, marked: true}, false, true},
		},
		{
			name: "a failed join with no repair wanted goes on as it was",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.startJoin(); return nil },
				func(s *subscription) any { return s.joinFailed() },
			},
			want: []any{nil, false},
		},
		{
			name: "a failed join with a repair wanted asks for it",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.startJoin(); s.wantRepair(); return nil },
				func(s *subscription) any { return s.joinFailed() },
			},
			want: []any{nil, true},
			end:  state{held: true},
		},
		{
			name: "a repair pass takes a marked subscription once",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.wantRepair(); s.markForRepair(); return s.takeForRepair() },
				func(s *subscription) any { return s.takeForRepair() },
				func(s *subscription) any { return get(s) },
				func(s *subscription) any { s.repaired(); return get(s) },
			},
			want: []any{true, false, state{held: true}, state{}},
		},
		{
			name: "a delayed retry holds back but is not taken before it is marked",
			steps: []func(*subscription) any{
				func(s *subscription) any { s.wantRepair(); return s.takeForRepair() },
			},
			want: []any{false},
			end:  state{held: true},
		},
		{
			name: "failed repairs are counted until one reads history",
			steps: []func(*subscription) any{
				func(s *subscription) any { return s.repairFailed() },
				func(s *subscription) any { return s.repairFailed() },
				func(s *subscription) any { s.repairRead(); return s.repairFailed() },
			},
			want: []any{1, 2, 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &subscription{channel: "group:G"}
			var got []any
			for _, st := range tc.steps {
				got = append(got, st(sub))
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.end, get(sub), "the state at the end")
		})
	}
}

func TestSubscriptionHold(t *testing.T) {
	sub := &subscription{channel: "group:G"}
	sub.sentUpTo(pos(1, "new"))
	sub.hold([]byte("a"), pos(9, "old"), "", 3, "")
	sub.hold([]byte("b"), pos(2, "new"), "", 3, "")
	p, over := sub.takePending(false)
	assert.False(t, over)
	assert.Len(t, p, 2, "all, when sent is not fresh from the broker")

	sub.hold([]byte("a"), pos(9, "old"), "", 3, "")
	sub.hold([]byte("b"), pos(2, "new"), "", 3, "")
	p, over = sub.takePending(true)
	assert.False(t, over)
	assert.Equal(t, []pendingPub{{[]byte("b"), pos(2, "new"), "", ""}}, p, "fresh: the old stream's are left out")
	sub.keepPending(p)
	p, _ = sub.takePending(false)
	assert.Len(t, p, 1, "kept back")

	for i := range 4 {
		sub.hold([]byte("x"), pos(uint64(i+2), "new"), "", 3, "")
	}
	sub.hold([]byte("y"), pos(9, "new"), "", 3, "")
	p, over = sub.takePending(false)
	assert.True(t, over, "past the limit they are dropped, and history stands in")
	assert.Empty(t, p)
	p, over = sub.takePending(false)
	assert.False(t, over, "said once")
	assert.Empty(t, p)
}

// What was held back covers the gap when its first event not yet sent is
// the one right after the last sent.
func TestSubscriptionPendingCovers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pending  []uint64
		overflow bool
		want     bool
	}{
		{"nothing held", nil, false, false},
		{"the next one held", []uint64{6, 7, 8}, false, true},
		{"sent ones, then the next", []uint64{4, 5, 6}, false, true},
		{"one missing before the first held", []uint64{7, 8}, false, false},
		{"only sent ones", []uint64{4, 5}, false, false},
		{"held ones dropped", []uint64{6}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &subscription{channel: "group:G"}
			sub.sentUpTo(pos(5, "e"))
			for _, o := range tc.pending {
				sub.hold(nil, pos(o, "e"), "", 100, "")
			}
			sub.overflow = tc.overflow
			assert.Equal(t, tc.want, sub.pendingCovers())
		})
	}
	sub := &subscription{channel: "group:G"}
	sub.sentUpTo(pos(5, "e"))
	sub.hold(nil, pos(6, "f"), "", 100, "")
	assert.False(t, sub.pendingCovers(), "a new stream does not go on from the old one")
	sub = &subscription{channel: "group:G"}
	sub.sentUpTo(tagged(5, "e", "a5"))
	sub.hold(nil, tagged(6, "e", "b6"), "b5", 100, "")
	assert.False(t, sub.pendingCovers(), "a stream that holds another event at the offset sent does not go on from it")
}

// Held events cover a history read only while the history is of the
// stream they go on from.
func TestSubscriptionCoveredByPending(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latest  broker.Position
		pending []broker.Position
		want    bool
	}{
		{"the same stream, the next one held", pos(9, "e"), []broker.Position{pos(6, "e"), pos(7, "e")}, true},
		{"the stream started again", pos(2, "f"), []broker.Position{pos(6, "e"), pos(1, "f"), pos(2, "f")}, false},
		{"the stream went back (writes lost in a failover)", pos(3, "e"), []broker.Position{pos(6, "e")}, false},
		{"nothing held", pos(9, "e"), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &subscription{channel: "group:G"}
			sub.sentUpTo(pos(5, "e"))
			for _, p := range tc.pending {
				sub.hold(nil, p, "", 100, "")
			}
			assert.Equal(t, tc.want, sub.coveredByPending(tc.latest))
		})
	}
}
