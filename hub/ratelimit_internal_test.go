package hub

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFrameBudget(t *testing.T) {
	const rate, burst = 2.0, 3 // two a second, three at once; closed at 10 owed
	s := int64(time.Second)
	for _, tc := range []struct {
		name   string
		frames []int64 // when each frame is read, in nanoseconds
		want   []verdict
	}{
		{"burst at once", []int64{0, 0, 0}, []verdict{frameAllowed, frameAllowed, frameAllowed}},
		{"past the burst", []int64{0, 0, 0, 0}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameRefused}},
		{"refilled at the rate", []int64{0, 0, 0, s / 2, s / 2}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameAllowed, frameRefused}},
		{"steady at the rate", []int64{0, s / 2, s, 3 * s / 2, 2 * s, 5 * s / 2}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameAllowed, frameAllowed, frameAllowed}},
		{"never more than the burst saved", []int64{0, 100 * s, 100 * s, 100 * s, 100 * s}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameAllowed, frameRefused}},
		{"refused frames are owed", []int64{0, 0, 0, 0, 0, s, s}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameRefused, frameRefused, frameRefused, frameRefused}},
		{"owed repaid", []int64{0, 0, 0, 0, 0, 2 * s}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameRefused, frameRefused, frameAllowed}},
		{"a clock that steps back", []int64{s, 0, 0, 0}, []verdict{frameAllowed, frameAllowed, frameAllowed, frameRefused}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFrameBudget(0, burst)
			var got []verdict
			for _, at := range tc.frames {
				got = append(got, b.take(at, rate, burst))
			}
			assert.Equal(t, tc.want, got)
		})
	}
	b := newFrameBudget(0, burst)
	n := 0
	for b.take(0, rate, burst) != frameTooMany {
		n++
	}
	assert.Equal(t, burst+10, n, "closed once 10 frames are owed, the least")
}
