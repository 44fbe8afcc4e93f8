package retry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNext(t *testing.T) {
	for _, tc := range []struct{ d, want time.Duration }{
		{0, 20 * time.Millisecond},
		{15 * time.Millisecond, 30 * time.Millisecond},
		{400 * time.Millisecond, 500 * time.Millisecond},
		{time.Second, 500 * time.Millisecond},
	} {
		assert.Equal(t, tc.want, Next(tc.d, 20*time.Millisecond, 500*time.Millisecond), "after %v", tc.d)
	}
}

func TestJitter(t *testing.T) {
	assert.Zero(t, Jitter(0))
	seen := map[bool]int{}
	for range 1000 {
		w := Jitter(100 * time.Millisecond)
		assert.GreaterOrEqual(t, w, 50*time.Millisecond)
		assert.LessOrEqual(t, w, 100*time.Millisecond)
		seen[w < 75*time.Millisecond]++
	}
	assert.Len(t, seen, 2, "waits spread over the range: %v", seen)
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { Sleep(ctx, time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep outlived its context")
	}
}
