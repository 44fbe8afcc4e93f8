package membership

import (
	"context"
	"sync"
	"time"

	"github.com/imhub/imhub/callback"
)

// View is one node's view of the IM's membership for the apps whose
// groups follow it (those whose keys the hub holds): the answers of its
// Checker, shared by every node, behind the removals this node has seen
// itself.
//
// The callbacks tell the Checker of each change before its event is
// published (Joined, Left, Destroyed); when that write fails (Redis away)
// the shared answers may still say "a member" of someone who left. So
// every node also keeps, for Config.NonMemberTTL, the exits and
// disbandings it learns, by a callback or by the event itself reaching it
// (Saw), and a Check consults them first: a user this node saw leave is
// not let back in on a stale answer. A join it learns afterwards undoes
// its record of the exit.
//
// The record is bounded (maxLocal users and groups); past it what lapsed
// is forgotten, then whole groups, and the shared answers judge those
// users again.
type View struct {
	c    *Checker
	apps map[string]bool
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	local map[groupID]*localGroup
	n     int // users recorded, in every group
}

// localGroup is what a node saw of one group.
type localGroup struct {
	gone  time.Time // disbanded: nobody is a member until then
	users map[string]localMark
}

// localMark is one user's exit, or a join after the group's disbanding,
// kept until until.
type localMark struct {
	until  time.Time
	member bool
}

// maxLocal bounds the users and groups a View records, some 20 MB: a
// disbanding records its group, an exit of 500 members 500 users.
const maxLocal = 200_000

// NewView returns the view of c for apps.
func NewView(c *Checker, apps ...string) *View {
	v := &View{c: c, apps: make(map[string]bool, len(apps)), ttl: c.cfg.NonMemberTTL, now: c.cfg.Now, local: make(map[groupID]*localGroup)}
	for _, a := range apps {
		v.apps[a] = true
	}
	return v
}

// Governs reports whether app's groups follow the IM's membership.
func (v *View) Governs(app string) bool { return v.apps[app] }

// Check says whether user is a member of app's group: not if this node
// saw the user leave or the group end within NonMemberTTL (and no join
// since); otherwise as Checker.Check says.
func (v *View) Check(ctx context.Context, app, group, user string) (Verdict, error) {
	if v.removed(app, group, user) {
		v.c.m.refused.Inc()
		return NotMember, nil
	}
	return v.c.Check(ctx, app, group, user)
}

// removed says whether this node's record refuses user of app's group.
func (v *View) removed(app, group, user string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	lg := v.local[groupID{app, group}]
	if lg == nil {
		return false
	}
	now := v.now()
	if m, ok := lg.users[user]; ok && now.Before(m.until) {
		return !m.member
	}
	return now.Before(lg.gone)
}

// Created keeps users, a new group's owner and first members, as members
// of app's group, and every user of an audio-video group, on this node
// and for every node (Checker.Created): Group.CallbackAfterCreateGroup.
func (v *View) Created(ctx context.Context, app, group, groupType, owner string, users ...string) error {
	if !v.apps[app] {
		return nil
	}
	v.apply(app, callback.MemberChange{Kind: callback.ChangeJoined, Group: group, Users: users, GroupType: groupType})
	return v.c.Created(ctx, app, group, groupType, owner, users...)
}

// Joined keeps users as members of app's group, on this node and for
// every node (Checker.Joined): the new members of
// Group.CallbackAfterNewMemberJoin, the owner and members of
// Group.CallbackAfterCreateGroup.
func (v *View) Joined(ctx context.Context, app, group string, users ...string) error {
	if !v.apps[app] {
		return nil
	}
	v.apply(app, callback.MemberChange{Kind: callback.ChangeJoined, Group: group, Users: users})
	return v.c.Joined(ctx, app, group, users...)
}

// Left keeps users as not members of app's group, on this node and for
// every node (Checker.Left): Group.CallbackAfterMemberExit. This node
// refuses them even if the shared write fails.
func (v *View) Left(ctx context.Context, app, group string, users ...string) error {
	if !v.apps[app] {
		return nil
	}
	v.apply(app, callback.MemberChange{Kind: callback.ChangeLeft, Group: group, Users: users})
	return v.c.Left(ctx, app, group, users...)
}

// Destroyed keeps app's group without members, on this node and for every
// node (Checker.Destroyed): Group.CallbackAfterGroupDestroyed.
func (v *View) Destroyed(ctx context.Context, app, group string) error {
	if !v.apps[app] {
		return nil
	}
	v.apply(app, callback.MemberChange{Kind: callback.ChangeDestroyed, Group: group})
	return v.c.Destroyed(ctx, app, group)
}

// Saw applies, on this node only, the change an event of app's group that
// reached it makes: the node that took the callback wrote it for every
// node, or failed to. It takes a lock and no time: the hub calls it on
// the fan-out's path. Seeing the same change twice changes nothing.
func (v *View) Saw(app string, c callback.MemberChange) {
	if v.apps[app] {
		v.apply(app, c)
	}
}

// apply records c in the node's record.
func (v *View) apply(app string, c callback.MemberChange) {
	if !validID(app) || !validID(c.Group) {
		return
	}
	g := groupID{app, c.Group}
	now := v.now()
	until := now.Add(v.ttl)
	v.mu.Lock()
	defer v.mu.Unlock()
	lg := v.local[g]
	switch c.Kind {
	case callback.ChangeDestroyed:
		if lg != nil {
			v.n -= len(lg.users)
		} else {
			v.n++
		}
		v.local[g] = &localGroup{gone: until}
	case callback.ChangeJoined:
		if lg == nil {
			return // nothing recorded to undo
		}
		if c.GroupType == callback.GroupTypeAV {
			// Open to everyone: nothing this node kept refuses anyone.
			v.dropLocked(g)
			return
		}
		for _, u := range c.Users {
			if _, had := lg.users[u]; had {
				delete(lg.users, u)
				v.n--
			}
			if now.Before(lg.gone) {
				v.markLocked(lg, u, localMark{until: until, member: true})
			}
		}
	case callback.ChangeLeft:
		if lg == nil {
			lg = &localGroup{}
			v.local[g] = lg
			v.n++
		}
		for _, u := range c.Users {
			if validID(u) {
				v.markLocked(lg, u, localMark{until: until})
			}
		}
	}
	if v.n > maxLocal {
		v.tidyLocked(now)
	}
}

func (v *View) markLocked(lg *localGroup, user string, m localMark) {
	if lg.users == nil {
		lg.users = make(map[string]localMark)
	}
	if _, had := lg.users[user]; !had {
		v.n++
	}
	lg.users[user] = m
}

// tidyLocked forgets what lapsed, then, while the record is still over
// its bound, whole groups, whichever come first.
func (v *View) tidyLocked(now time.Time) {
	for g, lg := range v.local {
		for u, m := range lg.users {
			if !now.Before(m.until) {
				delete(lg.users, u)
				v.n--
			}
		}
		if len(lg.users) == 0 && !now.Before(lg.gone) {
			v.dropLocked(g)
		}
	}
	for g := range v.local {
		if v.n <= maxLocal*9/10 {
			return
		}
		v.dropLocked(g)
	}
}

// dropLocked forgets g's record.
func (v *View) dropLocked(g groupID) {
	v.n -= 1 + len(v.local[g].users)
	delete(v.local, g)
}
