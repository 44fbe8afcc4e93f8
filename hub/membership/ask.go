package membership

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imhub/imhub/hub/imapi"
)

// groupAsks are the Checks of one group waiting for the IM on this node.
type groupAsks struct {
	open  *batch           // the batch gathering users, or nil
	waits map[string]*wait // by user: in the open batch or one under way
}

// wait is one user's place in an ask, shared by every Check of the user
// meanwhile. done is closed once the fields are set.
type wait struct {
	done chan struct{}
	kept kept  // what the store keeps after the ask, when read
	read bool  // kept was read
	err  error // why the ask did not decide, if it did not
	// checks counts the Checks that took this place (under Checker.mu).
	checks int
}

// batch gathers the users asked about for one group within the window.
type batch struct {
	g     groupID
	users []string
	full  chan struct{} // closed when the batch takes no more users
}

// maxBatch is the most users one batch gathers: what one claim carries.
const maxBatch = maxTake

// enqueue returns user's place in the group's ask: the one it has, or one
// in the open batch, which it starts if there is none.
func (c *Checker) enqueue(g groupID, user string) (*wait, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	ga := c.asks[g]
	if ga == nil {
		ga = &groupAsks{waits: make(map[string]*wait)}
		c.asks[g] = ga
	}
	if w := ga.waits[user]; w != nil {
		w.checks++
		return w, nil
	}
	w := &wait{done: make(chan struct{}), checks: 1}
	ga.waits[user] = w
	b := ga.open
	if b == nil {
		b = &batch{g: g, full: make(chan struct{})}
		ga.open = b
		c.wg.Add(1)
		go c.run(b)
	}
	b.users = append(b.users, user)
	if len(b.users) == maxBatch {
		ga.open = nil
		close(b.full)
	}
	return w, nil
}

// run is a batch's goroutine: it gathers for the window, then asks.
func (c *Checker) run(b *batch) {
	defer c.wg.Done()
	t := time.NewTimer(c.cfg.Window)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.full:
	case <-c.base.Done():
	}
	c.mu.Lock()
	if ga := c.asks[b.g]; ga != nil && ga.open == b {
		ga.open = nil
	}
	users := b.users
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.base, c.cfg.AskTimeout)
	defer cancel()
	c.resolve(ctx, b.g, users)
}

// resolve settles every one of users: by what the store keeps once
// another node's ask has answered, or by asking the IM itself when the
// group's claim is its own, or with the error that stopped it.
func (c *Checker) resolve(ctx context.Context, g groupID, users []string) {
	waiting := users
	var last kept
	read := false
	fail := func(err error) { c.deliver(g, waiting, last, read, err) }
	poll := c.cfg.Window
	for first := true; ; first = false {
		now := c.cfg.Now()
		k, err := c.store.read(ctx, g, waiting, now)
		if err != nil {
			fail(err)
			return
		}
		last, read = k, true
		if waiting = c.settle(g, waiting, k, now); len(waiting) == 0 {
			return
		}
		if now.Before(k.failed) {
			fail(errIMFailing)
			return
		}
		cl, err := c.store.claim(ctx, g, waiting, first, now, now.Add(c.cfg.AskTimeout), rand.Text())
		switch {
		case err != nil:
			fail(err)
			return
		case cl.stop:
			fail(errIMFailing)
			return
		case cl.lead:
			k, askErr, err := c.ask(ctx, g, cl, waiting)
			if err != nil {
				fail(err)
				return
			}
			last = k
			if waiting = c.settle(g, waiting, k, c.cfg.Now()); len(waiting) == 0 {
				return
			}
			if askErr != nil {
				fail(askErr)
				return
			}
			// Those the IM was asked about and did not name are settled
			// unanswered; those the claim did not carry (it took others
			// first) are claimed again.
			carried := make(map[string]bool, len(cl.users))
			for _, u := range cl.users {
				carried[u] = true
			}
			var unnamed, rest []string
			for _, u := range waiting {
				if carried[u] {
					unnamed = append(unnamed, u)
				} else {
					rest = append(rest, u)
				}
			}
			c.deliver(g, unnamed, k, true, errNoAnswer)
			if waiting = rest; len(waiting) == 0 {
				return
			}
			continue
		}
		// Another node is asking about the group: look again soon, less
		// often the longer it takes.
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			fail(context.Cause(ctx))
			return
		}
		poll = min(2*poll, c.cfg.PollMax)
	}
}

// settle delivers the users k decides and returns the others.
func (c *Checker) settle(g groupID, users []string, k kept, now time.Time) []string {
	var decided, rest []string
	for _, u := range users {
		if _, ok := judge(k, u, now); ok {
			decided = append(decided, u)
		} else {
			rest = append(rest, u)
		}
	}
	c.deliver(g, decided, k, true, nil)
	return rest
}

// deliver ends the waits of users with what k keeps and err.
func (c *Checker) deliver(g groupID, users []string, k kept, read bool, err error) {
	if len(users) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ga := c.asks[g]
	if ga == nil {
		return
	}
	for _, u := range users {
		if w := ga.waits[u]; w != nil {
			delete(ga.waits, u)
			w.kept, w.read, w.err = k, read, err
			close(w.done)
		}
	}
	if ga.open == nil && len(ga.waits) == 0 {
		delete(c.asks, g)
	}
}

// ask asks the IM about the claim's users, at most imapi.MaxAccounts a
// call, the calls at once, and records what it answered; it returns what
// the store keeps then about users, why the IM did not answer (askErr),
// and why what it answered could not be kept (err).
func (c *Checker) ask(ctx context.Context, g groupID, cl claim, users []string) (k kept, askErr, err error) {
	type call struct {
		users []string
		roles map[string]imapi.Role
		err   error
	}
	var calls []*call
	for rest := cl.users; len(rest) > 0; {
		n := min(len(rest), imapi.MaxAccounts)
		calls = append(calls, &call{users: rest[:n]})
		rest = rest[n:]
	}
	var wg sync.WaitGroup
	for _, cc := range calls {
		wg.Go(func() { cc.roles, cc.err = c.cfg.IM.RolesInGroup(ctx, g.app, g.group, cc.users) })
	}
	wg.Wait()

	now := c.cfg.Now()
	a := answer{users: make(map[string]entry, len(cl.users))}
	for _, cc := range calls {
		var ie *imapi.Error
		switch {
		case cc.err == nil:
			for u, role := range cc.roles {
				a.users[u] = c.entryFor(role, now)
			}
		case errors.As(cc.err, &ie) && ie.Code == imapi.CodeNoRoles:
			a.av = now.Add(c.cfg.MemberTTL)
		case errors.As(cc.err, &ie) && (ie.Code == imapi.CodeGroupGone || ie.Code == imapi.CodeNoSuchGroup):
			for _, u := range cc.users {
				a.users[u] = c.entryFor(imapi.RoleNotMember, now)
			}
		default:
			if askErr == nil {
				askErr = cc.err
			}
			// The rate spent is this node's alone, and a closing checker
			// says nothing of the IM: neither stops other asks.
			if !errors.Is(cc.err, imapi.ErrRateSpent) && c.base.Err() == nil && a.failed.IsZero() {
				a.failed = now.Add(c.cfg.RetryAfter)
				c.cfg.Logger.Warn("membership: the IM could not be asked", "app", g.app, "group", g.group, "accounts", len(cc.users), "err", cc.err)
			}
		}
	}
	// Recorded within a deadline of its own: the ask's may have passed
	// while the IM was slow, and the claim must be given back.
	rctx, cancel := context.WithTimeout(c.base, c.cfg.AskTimeout)
	defer cancel()
	k, err = c.store.record(rctx, g, cl, a, users, now)
	if err != nil {
		return kept{}, askErr, fmt.Errorf("membership: %w", err)
	}
	return k, askErr, nil
}

// entryFor is the entry of an IM answer of role at now.
func (c *Checker) entryFor(role imapi.Role, now time.Time) entry {
	ttl := c.cfg.NonMemberTTL
	if role.Member() {
		ttl = c.cfg.MemberTTL
	}
	return entry{role: role, expires: now.Add(ttl)}
}
