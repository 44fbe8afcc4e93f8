package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// Memory is given back when the sessions fall below half of their peak,
// once per fall, and not for small numbers of sessions.
func TestReclaimMemory(t *testing.T) {
	var sessions, frees atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reclaimMemory(ctx, func() int { return int(sessions.Load()) }, time.Millisecond, func(int, int) { frees.Add(1) })
	}()
	settle := func() { time.Sleep(30 * time.Millisecond) } // many periods

	steps := []struct {
		sessions int64
		frees    int64
		why      string
	}{
		{100, 0, "rising"},
		{10, 0, "a fall from a peak too small to matter"},
		{1000, 0, "a new peak"},
		{600, 0, "not below half the peak"},
		{400, 1, "below half: reclaimed"},
		{300, 1, "not below half of what was left at the reclaim"},
		{150, 2, "below half of that: reclaimed again"},
		{2000, 2, "a new peak"},
		{900, 3, "below half of it"},
	}
	for _, s := range steps {
		sessions.Store(s.sessions)
		settle()
		require.Equal(t, s.frees, frees.Load(), "%d sessions: %s", s.sessions, s.why)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("reclaimMemory did not return when its context ended")
	}
	assert.EqualValues(t, 3, frees.Load())
}

// The built hub gives the memory of its sessions back once most of them
// have gone, and says so. (What that does to RSS is measured by hubbench,
// in BENCHMARKS.md: under the race detector, which make test uses, RSS
// says little.)
func TestHubReturnsMemoryAfterSessionsLeave(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", clusterSecret})
	tok := mint(t, "1400000000", "m", false, "G")
	url := "ws://" + p.Addr + "/ws"
	const n = 600 // above reclaimMinPeak, quick to open
	conns := make([]*wstest.Conn, 0, n)
	for range n {
		c := wstest.Dial(t, url, tok)
		c.Read() // connected
		c.Read() // subscribed user:m
		conns = append(conns, c)
	}
	// The hub looks at its sessions every 2 s: they are there for at
	// least one look.
	time.Sleep(2500 * time.Millisecond)
	for _, c := range conns {
		_ = c.C.CloseNow()
	}
	l := p.WaitLog(15*time.Second, "returning memory", func(l map[string]any) bool {
		return l["msg"] == "memory of closed sessions returned to the system"
	})
	assert.GreaterOrEqual(t, l["peak_sessions"], float64(reclaimMinPeak))
	assert.Less(t, l["sessions"], l["peak_sessions"].(float64)/2)
}
