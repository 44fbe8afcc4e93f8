package membership

import (
	"context"
	"time"

	"github.com/imhub/imhub/hub/imapi"
)

// groupID names a group of an app.
type groupID struct{ app, group string }

// kept is what a store keeps about a group and the users it was asked
// about. Stamps order what was learnt about the group: every callback
// learnt gets a stamp later than every one before it.
type kept struct {
	clock  uint64    // the group's latest stamp
	reset  uint64    // the stamp of the group's last disbanding
	gone   time.Time // disbanded: no one is a member until then
	av     time.Time // an audio-video group: every user admitted until then
	failed time.Time // the IM could not be asked: it is not asked again until then
	leased bool      // a node is asking the IM about the group now
	// The users' entries: one in only and its name in onlyUser when just
	// one was read (the path of every Check, kept without a map), else
	// in users.
	onlyUser string
	only     *entry
	users    map[string]entry
}

// entry returns user's entry, if kept.
func (k *kept) entry(user string) (entry, bool) {
	if k.only != nil && k.onlyUser == user {
		return *k.only, true
	}
	e, ok := k.users[user]
	return e, ok
}

// put keeps user's entry, one of n users read.
func (k *kept) put(user string, e entry, n int) {
	if n == 1 {
		k.onlyUser, k.only = user, &e
		return
	}
	if k.users == nil {
		k.users = make(map[string]entry, n)
	}
	k.users[user] = e
}

// entry is what is kept about one user of a group.
type entry struct {
	role    imapi.Role
	expires time.Time
	// stamp is the callback's, or for an IM answer the group's clock when
	// the ask was claimed.
	stamp uint64
	// callback says the entry was learnt from a callback, not asked.
	callback bool
}

// claim is a node's turn to ask the IM about a group.
type claim struct {
	lead  bool     // this node asks; otherwise another node is asking
	stop  bool     // the IM is not to be asked now (kept.failed)
	asked uint64   // the group's clock when the turn was taken
	token string   // names the turn, to give it back
	users []string // whom to ask about: this node's users and other nodes'
}

// answer is what the IM said about a group, to record.
type answer struct {
	users  map[string]entry // role and expiry of each user named
	av     time.Time        // zero, or an audio-video group until then
	failed time.Time        // zero, or the IM is not to be asked until then
}

// store keeps the answers: in Redis, for every node, or in memory. Each
// method takes the node's clock reading, now, by which expiries are
// judged.
//
// What a store promises, whatever it is:
//   - learn with av keeps the group an audio-video one until e's expiry;
//   - learn and destroy order after everything before them: an answer
//     recorded for a claim taken before them never replaces what they
//     wrote (a callback-learnt entry not yet expired is never replaced by
//     an IM answer at all), and after destroy no such answer is recorded;
//   - while one node holds a group's claim, no other node is given one,
//     until the holder records (which gives it back) or the lease ends;
//     the users of a caller's first claim (first), refused, wait in the
//     group's queue, and the next claim taken carries them (a later one
//     queues nothing while refused, so that users the holder took are
//     not queued again);
//   - what expired is kept for the store's grace, then forgotten.
type store interface {
	read(ctx context.Context, g groupID, users []string, now time.Time) (kept, error)
	learn(ctx context.Context, g groupID, e entry, joined, av bool, users []string, now time.Time) error
	destroy(ctx context.Context, g groupID, until, now time.Time) error
	claim(ctx context.Context, g groupID, users []string, first bool, now, leaseEnd time.Time, token string) (claim, error)
	record(ctx context.Context, g groupID, c claim, a answer, users []string, now time.Time) (kept, error)
}

// maxTake bounds the users one claim carries: four calls of the IM's
// most accounts.
const maxTake = 4 * imapi.MaxAccounts
