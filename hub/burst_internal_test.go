package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	s := newSession(h, nil, nil, &auth.Identity{User: "u", App: "1", AllGroups: true, Expires: time.Now().Add(time.Hour)})
	s.expires.Stop()
	s.pinger.Stop()
	s.writing = true // the writer is stuck on a client that does not read
	s.subs["group:G"] = &subscription{channel: "group:G"}
	since := "0:"
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
