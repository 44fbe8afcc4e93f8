package hub

import (
	"context"
	"testing"
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/membership"
)

// everyoneMember governs every app and says everyone is a member.
type everyoneMember struct{}

func (everyoneMember) Governs(string) bool { return true }
func (everyoneMember) Check(context.Context, string, string, string) (membership.Verdict, error) {
	return membership.Member, nil
}
func (everyoneMember) Saw(string, callback.MemberChange) {}

// A session too slow to take the unsubscribed frame of its removal is
// closed for it, and still leaves the group's channel: the node keeps no
// subscription of a session that is gone.
func TestRemovalOfASessionTooSlowForIt(t *testing.T) {
	b := broker.NewMemory(broker.Config{})
	h := New(Config{SendQueue: 2, Membership: everyoneMember{}}, b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = b.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-ran })
	jctx, jcancel := context.WithTimeout(ctx, 10*time.Second)
	defer jcancel()
	s := newSession(h, nil, &auth.Identity{User: "jared", App: "1", AllGroups: true, UserSig: true, Expires: time.Now().Add(time.Hour)})
	s.stopTimers()
	s.writing = true // as if its writer were busy: frames stay queued
	sub := &subscription{channel: "group:G", sent: broker.Position{Epoch: "e"}}
	s.subs[sub.channel] = sub
	if err := h.join(jctx, s, sub); err != nil {
		t.Fatal(err)
	}
	s.send([]byte(`{"op":"pong"}`)) // one frame waits; room for one more
	h.HandlePublication(broker.Publication{App: "1", Channel: "group:G", Position: broker.Position{Offset: 1, Epoch: "e"},
		Data: []byte(`{"id":"x","type":"group.member.left","app":"1","group_id":"G","members":["jared"]}`)})
	s.mu.Lock()
	closed, code := s.closed, s.code
	s.mu.Unlock()
	if !closed || code != CloseTooSlow {
		t.Fatalf("closed %v with %d, want closed as too slow", closed, code)
	}
	s.busy.Wait()
	k := chanKey{"1", "group:G"}
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if ch := sh.channels[k]; ch != nil {
		t.Fatalf("the node still holds the channel, with %d subscriptions", len(ch.subs))
	}
}
