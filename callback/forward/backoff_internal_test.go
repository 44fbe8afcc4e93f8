package forward

import (
	"testing"
	"time"
)

// The wait before a retry is random ("full jitter") and bounded by
// RetryBase doubling per attempt, up to RetryMax.
func TestBackoff(t *testing.T) {
	f := New(Config{RetryBase: time.Second, RetryMax: time.Minute}, NewMemoryStore(1), nil)
	for _, tc := range []struct {
		attempt int
		max     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {7, time.Minute}, {40, time.Minute}, {1 << 20, time.Minute}} {
		seen := map[time.Duration]bool{}
		var longest time.Duration
		for range 200 {
			d := f.backoff(tc.attempt)
			if d < 0 || d > tc.max {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", tc.attempt, d, tc.max)
			}
			seen[d] = true
			longest = max(longest, d)
		}
		if len(seen) < 100 {
			t.Errorf("attempt %d: only %d distinct waits in 200: not jittered", tc.attempt, len(seen))
		}
		if longest < tc.max/2 {
			t.Errorf("attempt %d: longest wait %v of 200 is under half the bound %v", tc.attempt, longest, tc.max)
		}
	}
}
