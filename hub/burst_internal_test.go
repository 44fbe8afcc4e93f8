package hub

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
)

// A client that keeps asking for replays and reads none is closed as too
// slow: replays do not lift the queue's bound without limit.
func TestReplaysAreBounded(t *testing.T) {
	b := broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.Run(ctx, nil) }()
	h := New(Config{SendQueue: 1024}, b, nil)
	data := []byte(`{"text":"` + strings.Repeat("x", 1000) + `"}`)
	for i := range 100 {
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint(i), Channels: []string{"group:G"}, Data: data})
		assert.NoError(t, err)
	}
	s := newSession(h, nil, &auth.Identity{User: "u", App: "1", AllGroups: true, Expires: time.Now().Add(time.Hour)})
	s.expires.Stop()
	s.pinger.Stop()
	s.writing = true // the writer is stuck on a client that does not read
	s.subs["group:G"] = &subscription{channel: "group:G"}
	hist, err := b.History(ctx, "1", "group:G", nil)
	assert.NoError(t, err)
	since := "0:" + hist.Latest.Epoch // the whole history
	peak := 0
	for range 2000 {
		s.subscribe(ctx, clientFrame{Op: "subscribe", Channel: "group:G", Since: &since})
		s.mu.Lock()
		peak = max(peak, len(s.queue))
		closed := s.closed
		s.mu.Unlock()
		if closed {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.True(t, s.closed, "closed as too slow")
	assert.Equal(t, CloseTooSlow, s.code)
	assert.LessOrEqual(t, peak, h.cfg.SendQueue+s.maxBurst())
}

// stuckSession is a session whose writer never runs: what is sent to it
// stays in its queue.
func stuckSession(h *Hub, user string) *Session {
	s := newSession(h, nil, &auth.Identity{User: user, App: "1", AllGroups: true, Expires: time.Now().Add(time.Hour)})
	s.expires.Stop()
	s.pinger.Stop()
	s.writing = true
	return s
}

// Sessions that replay the same history, by a subscribe with since or by
// a gap repair, queue the same bytes for each event: one copy, however
// many replay it.
func TestReplayFramesAreShared(t *testing.T) {
	b := broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.Run(ctx, nil) }()
	h := New(Config{}, b, nil)
	for i := range 10 {
		_, err := b.Publish(ctx, broker.Message{App: "1", ID: fmt.Sprint(i), Channels: []string{"group:G"}, Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		assert.NoError(t, err)
	}
	hist, err := b.History(ctx, "1", "group:G", &broker.Position{})
	assert.NoError(t, err)
	since := "0:" + hist.Latest.Epoch
	s1, s2, s3 := stuckSession(h, "a"), stuckSession(h, "b"), stuckSession(h, "c")
	for _, s := range []*Session{s1, s2} {
		s.subs["group:G"] = &subscription{channel: "group:G"}
		s.subscribe(ctx, clientFrame{Op: "subscribe", Channel: "group:G", Since: &since})
	}
	sub := &subscription{channel: "group:G", sent: broker.Position{Epoch: hist.Latest.Epoch}, repairing: true}
	s3.subs["group:G"] = sub
	s3.applyRepair(repairItem{s: s3, sub: sub}, repairResult{hist: hist})

	events := func(s *Session) [][]byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ev [][]byte
		for _, f := range s.queue {
			if strings.HasPrefix(string(f), `{"op":"event"`) {
				ev = append(ev, f)
			}
		}
		return ev
	}
	e1, e2, e3 := events(s1), events(s2), events(s3)
	assert.Len(t, e1, 10)
	assert.Len(t, e2, 10)
	assert.Len(t, e3, 10)
	for i := range e1 {
		assert.Same(t, unsafe.SliceData(e1[i]), unsafe.SliceData(e2[i]), "event %d: one copy for both replays", i)
		assert.Same(t, unsafe.SliceData(e1[i]), unsafe.SliceData(e3[i]), "event %d: and for the repair", i)
		assert.Contains(t, string(e1[i]), fmt.Sprintf(`{"n":%d}`, i))
	}
}

// Frames no session holds any more are forgotten: the cache of replayed
// frames keeps nothing alive of its own.
func TestReplayFramesAreForgotten(t *testing.T) {
	var c replayFrames
	p := broker.Publication{App: "1", Channel: "group:G", Position: broker.Position{Offset: 1, Epoch: "e"}, Data: []byte(`{"n":1}`)}
	f := c.frame(p)
	assert.Same(t, unsafe.SliceData(f), unsafe.SliceData(c.frame(p)), "known while held")
	runtime.KeepAlive(f) // and no longer
	assert.Eventually(t, func() bool {
		runtime.GC()
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.m) == 0
	}, 5*time.Second, 10*time.Millisecond, "the entry goes with the last holder")
	assert.Contains(t, string(c.frame(p)), `"event":{"n":1}`, "and is made again when asked for")
}
