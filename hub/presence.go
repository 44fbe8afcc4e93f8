package hub

import (
	"context"
	"sync"
	"time"
)

// Presence records this node's sessions and subscriptions, and answers who
// is connected to a channel across every node (docs/protocol.md#frames, the presence
// op). The recording methods are on the path of every connect and
// subscribe: they must not block.
type Presence interface {
	// Connect and Disconnect count the sessions of app's user.
	Connect(app, user string)
	Disconnect(app, user string)
	// Join and Leave count the sessions of app's user subscribed to
	// channel.
	Join(app, channel, user string)
	Leave(app, channel, user string)
	// Users returns, for every user with a session subscribed to app's
	// channel on any node, how many such sessions there are.
	Users(ctx context.Context, app, channel string) (map[string]int, error)
}

// nopPresence is the Presence of a hub configured without one: it records
// nothing and knows nobody.
type nopPresence struct{}

func (nopPresence) Connect(string, string)       {}
func (nopPresence) Disconnect(string, string)    {}
func (nopPresence) Join(string, string, string)  {}
func (nopPresence) Leave(string, string, string) {}
func (nopPresence) Users(context.Context, string, string) (map[string]int, error) {
	return map[string]int{}, nil
}

// How long, and for how many channels, a node keeps presence answers: a
// presence op reads Redis (HGETALL and MGET), and any member of a big
// group could otherwise repeat it at the frame rate. A session's own
// subscribe or unsubscribe, and any other on this node, drops the
// channel's answer at once; other nodes' changes show within
// presenceCacheFor.
const (
	presenceCacheFor = time.Second
	presenceCacheMax = 10000
)

// cachedPresence is a Presence whose Users answers are shared by every
// asker of a channel on this node for presenceCacheFor: one read at a time
// per channel, at most presenceCacheMax channels kept (an answer past
// that, when every kept one is being read, is not kept).
type cachedPresence struct {
	Presence
	now func() time.Time

	mu sync.Mutex
	m  map[chanKey]*presenceAnswer
}

// presenceAnswer is one channel's answer; users and err are set before
// ready is closed, and read only after.
type presenceAnswer struct {
	ready chan struct{}
	users map[string]int
	err   error
	at    time.Time
}

func newCachedPresence(p Presence) *cachedPresence {
	return &cachedPresence{Presence: p, now: time.Now, m: make(map[chanKey]*presenceAnswer)}
}

func (c *cachedPresence) Join(app, channel, user string) {
	c.Presence.Join(app, channel, user)
	c.drop(chanKey{app, channel})
}

func (c *cachedPresence) Leave(app, channel, user string) {
	c.Presence.Leave(app, channel, user)
	c.drop(chanKey{app, channel})
}

func (c *cachedPresence) drop(k chanKey) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// Users answers from the cache, or reads once for every asker waiting.
// The answer is shared: callers must not change it.
func (c *cachedPresence) Users(ctx context.Context, app, channel string) (map[string]int, error) {
	k := chanKey{app, channel}
	now := c.now()
	c.mu.Lock()
	a := c.m[k]
	if a != nil {
		select {
		case <-a.ready:
			if a.err != nil || now.Sub(a.at) >= presenceCacheFor {
				a = nil
			}
		default: // being read: wait for it
		}
	}
	if a != nil {
		c.mu.Unlock()
		select {
		case <-a.ready:
			return a.users, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(c.m) >= presenceCacheMax {
		c.evictLocked(now)
		if len(c.m) >= presenceCacheMax {
			// Every answer kept is being read: this one is not kept.
			c.mu.Unlock()
			return c.Presence.Users(ctx, app, channel)
		}
	}
	a = &presenceAnswer{ready: make(chan struct{})}
	c.m[k] = a
	c.mu.Unlock()
	a.users, a.err = c.Presence.Users(ctx, app, channel)
	a.at = c.now()
	close(a.ready)
	if a.err != nil {
		c.mu.Lock()
		if c.m[k] == a {
			delete(c.m, k)
		}
		c.mu.Unlock()
	}
	return a.users, a.err
}

// evictLocked makes room: answers that are stale go, and if none was,
// any one answer that is not being read.
func (c *cachedPresence) evictLocked(now time.Time) {
	var spare chanKey
	found := false
	for k, a := range c.m {
		select {
		case <-a.ready:
			if now.Sub(a.at) >= presenceCacheFor {
				delete(c.m, k)
				continue
			}
			if !found {
				spare, found = k, true
			}
		default:
		}
	}
	if len(c.m) >= presenceCacheMax && found {
		delete(c.m, spare)
	}
}
