package broker

import (
	"testing"
	"time"
)

// What an empty channel's position read at t0 recovers, as the channel's
// state later stands.
func TestReplayFromEmpty(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	life := time.Hour
	since := Position{Epoch: emptyEpoch("run1", t0)}
	stream := func(start time.Time, n uint64) streamState {
		st := streamState{latest: Position{Offset: n, Epoch: "e1"}, start: start, run: "run1", now: start.Add(time.Minute), life: life}
		for i := uint64(1); i <= n; i++ {
			st.held = append(st.held, Publication{Position: Position{Offset: i, Epoch: "e1"}})
		}
		return st
	}
	empty := func(now time.Time) streamState {
		return streamState{latest: Position{Epoch: emptyEpoch("run1", now)}, run: "run1", now: now, life: life}
	}
	for _, tc := range []struct {
		name  string
		since Position
		st    streamState
		want  int
		ok    bool
	}{
		{"still empty", since, empty(t0.Add(time.Minute)), 0, true},
		{"still empty, read again much later", since, empty(t0.Add(2 * life)), 0, false},
		{"a stream started soon after", since, stream(t0.Add(time.Minute), 3), 3, true},
		{"a stream started before (clocks apart)", since, stream(t0.Add(-time.Second), 2), 2, true},
		{"a stream started after another could have come and gone", since, stream(t0.Add(life+time.Second), 3), 0, false},
		{"a stream of unknown start", since, stream(time.Time{}, 1), 0, false},
		{"another data set", since, func() streamState { st := stream(t0.Add(time.Minute), 1); st.run = "run2"; return st }(), 0, false},
		{"history no longer reaches the start", since, func() streamState { st := stream(t0.Add(time.Minute), 3); st.held = st.held[1:]; return st }(), 0, false},
		{"an offset past 0 of an empty epoch", Position{Offset: 1, Epoch: since.Epoch}, stream(t0.Add(time.Minute), 3), 0, false},
		{"a malformed empty epoch", Position{Epoch: "run1.!"}, stream(t0.Add(time.Minute), 3), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pubs, ok := tc.st.replay(tc.since)
			if ok != tc.ok || len(pubs) != tc.want {
				t.Fatalf("replay = %d publications, %v; want %d, %v", len(pubs), ok, tc.want, tc.ok)
			}
		})
	}
}

// Offsets as clients give them back: the tagged form, the older one
// without a tag, and what is neither.
func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Position
		ok   bool
	}{
		{"17:k3x9:0a1b2c3d4e5f", Position{Offset: 17, Epoch: "k3x9", Tag: "0a1b2c3d4e5f"}, true},
		{"17:k3x9", Position{Offset: 17, Epoch: "k3x9"}, true},
		{"0:run.mxcw476h", Position{Epoch: "run.mxcw476h"}, true},
		{"17:k3x9:", Position{}, false},
		{"17:k3x9:XYZ", Position{}, false},
		{"17:k3x9:0a1b:extra", Position{}, false},
		{"17:k3x9:" + "0123456789abcdef0123456789", Position{}, false},
		{"17::0a1b", Position{}, false},
		{"x:k3x9", Position{}, false},
		{"17", Position{}, false},
	} {
		got, err := ParsePosition(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%q reads back as %q", tc.in, got.String())
		}
	}
}
