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
// once per fall, and when they have grown by half once arrivals slow, once
// per rise; not for small numbers of sessions.
func TestReclaimMemory(t *testing.T) {
	var sessions, falls, rises atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reclaimMemory(ctx, func() int { return int(sessions.Load()) }, time.Millisecond, func(why reclaimWhy, _, _ int) {
			if why == reclaimRise {
				rises.Add(1)
			} else {
				falls.Add(1)
			}
		})
	}()
	settle := func() { time.Sleep(30 * time.Millisecond) } // many periods

	steps := []struct {
		sessions     int64
		falls, rises int64
		why          string
	}{
		{100, 0, 0, "rising, too few to matter"},
		{10, 0, 0, "a fall from a peak too small to matter"},
		{1000, 0, 1, "a rise of 990 that stopped: reclaimed"},
		{600, 0, 1, "not below half the peak"},
		{400, 1, 1, "below half: reclaimed"},
		{300, 1, 1, "not below half of what was left at the reclaim"},
		{150, 2, 1, "below half of that: reclaimed again"},
		{2000, 2, 2, "a rise from 150: reclaimed"},
		{900, 3, 2, "below half of it"},
		{1200, 3, 2, "a rise of 300 from 900: less than half"},
		{1400, 3, 3, "of 500: more than half"},
	}
	for _, s := range steps {
		sessions.Store(s.sessions)
		settle()
		require.Equal(t, s.falls, falls.Load(), "%d sessions: %s", s.sessions, s.why)
		require.Equal(t, s.rises, rises.Load(), "%d sessions: %s", s.sessions, s.why)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("reclaimMemory did not return when its context ended")
	}
}

// While sessions keep arriving quickly, nothing is reclaimed (the
// collection would find the garbage of the connects still to come); it is
// once they slow.
func TestReclaimMemoryWaitsForArrivalsToSlow(t *testing.T) {
	seq := []int{0, 300, 600, 900, 1200, 1250, 1260, 1260}
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan [2]int, 10)
	go reclaimMemory(ctx, func() int {
		i := int(calls.Add(1)) - 1
		return seq[min(i, len(seq)-1)]
	}, time.Millisecond, func(why reclaimWhy, from, now int) {
		got <- [2]int{int(why), now}
	})
	require.Eventually(t, func() bool { return calls.Load() > int64(len(seq)+5) }, 5*time.Second, time.Millisecond)
	cancel()
	require.Len(t, got, 1, "one reclaim")
	assert.Equal(t, [2]int{int(reclaimRise), 1250}, <-got, "after the rise, at the first look that found few new sessions")
}

// The built hub gives back the memory their connects left once sessions
// have arrived, and that of its sessions once most of them have gone, and
// says so each time. (What that does to RSS is measured by hubbench,
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
	// The hub looks at its sessions every second.
	l := p.WaitLog(15*time.Second, "returning memory after connects", func(l map[string]any) bool {
		return l["msg"] == "memory left by connecting sessions returned to the system"
	})
	assert.GreaterOrEqual(t, l["sessions"], float64(reclaimMinPeak))
	for _, c := range conns {
		_ = c.C.CloseNow()
	}
	l = p.WaitLog(15*time.Second, "returning memory", func(l map[string]any) bool {
		return l["msg"] == "memory of closed sessions returned to the system"
	})
	assert.GreaterOrEqual(t, l["peak_sessions"], float64(reclaimMinPeak))
	assert.Less(t, l["sessions"], l["peak_sessions"].(float64)/2)
}
