package membership

import "context"

// HashKeyForTest is the Redis hash of a group's answers.
func HashKeyForTest(prefix, app, group string) string {
	return (&redisStore{prefix: prefix}).hashKey(groupID{app, group})
}

// QueueKeyForTest is the Redis set of the users waiting for a group's ask.
func QueueKeyForTest(prefix, app, group string) string {
	return (&redisStore{prefix: prefix}).queueKey(groupID{app, group})
}

// WaitingForTest counts the users of a group waiting for an ask.
func (c *Checker) WaitingForTest(app, group string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ga := c.asks[groupID{app, group}]; ga != nil {
		return len(ga.waits)
	}
	return 0
}

// FlushForTest ends the windows of the batches gathering now.
func (c *Checker) FlushForTest() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ga := range c.asks {
		if b := ga.open; b != nil {
			ga.open = nil
			close(b.full)
		}
	}
}

// LeasedForTest reports whether some node holds the group's ask.
func (c *Checker) LeasedForTest(app, group string) bool {
	k, err := c.store.read(context.Background(), groupID{app, group}, nil, c.cfg.Now())
	return err == nil && k.leased
}

// KeptForTest is what the store keeps about a user: its role, and whether
// it came from a callback; "" when nothing.
func (c *Checker) KeptForTest(app, group, user string) (role string, callback bool) {
	k, err := c.store.read(context.Background(), groupID{app, group}, []string{user}, c.cfg.Now())
	if err != nil {
		return "", false
	}
	e, ok := k.entry(user)
	if !ok {
		return "", false
	}
	return string(e.role), e.callback
}

// ChecksWaitingForTest counts the Checks of a group waiting for an ask.
func (c *Checker) ChecksWaitingForTest(app, group string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if ga := c.asks[groupID{app, group}]; ga != nil {
		for _, w := range ga.waits {
			n += w.checks
		}
	}
	return n
}
