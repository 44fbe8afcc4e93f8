package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/imapi"
)

// RolesAsker asks the IM for users' roles in a group, as *imapi.Client
// does: at most imapi.MaxAccounts users a call; a user the answer does not
// name is left out; an audio-video group is an *imapi.Error with code
// imapi.CodeNoRoles.
type RolesAsker interface {
	RolesInGroup(ctx context.Context, app, group string, users []string) (map[string]imapi.Role, error)
}

// Defaults of Config.
const (
	// DefaultMemberTTL keeps a member's answer 10 minutes. The callbacks
	// keep answers current as they happen, so the TTL only bounds how long
	// a missed exit (a callback not switched on, or lost while no hub
	// answered) keeps a user in; 10 minutes asks the IM again about each
	// user in use about once per 10 minutes per group, well under the
	// IM's rate even for a large app, and lets a reconnect storm within
	// that time ask nothing.
	DefaultMemberTTL = 10 * time.Minute
	// DefaultNonMemberTTL keeps a refusal one minute: a user who joins
	// without the callback reaching the hub waits at most that long.
	DefaultNonMemberTTL = time.Minute
	// DefaultStaleGrace lets an answer expired less than 5 minutes ago
	// serve while the IM cannot be asked: an outage shorter than that
	// keeps members in; a longer one makes their subscribes unavailable.
	DefaultStaleGrace = 5 * time.Minute
	// DefaultWindow gathers the users asked about for one group within
	// 5 ms into one call.
	DefaultWindow = 5 * time.Millisecond
	// DefaultAskTimeout bounds an ask, from the end of its window to the
	// answer kept, waits for another node's ask included. It should be
	// above the IM client's own deadline (imapi.Config.Timeout, 2s).
	DefaultAskTimeout = 3 * time.Second
	// DefaultRetryAfter is how long a group whose ask failed is not asked
	// about again (kept answers still serve).
	DefaultRetryAfter = 2 * time.Second
	// DefaultPollMax is the longest a node waits between two looks at a
	// group another node is asking about.
	DefaultPollMax = 50 * time.Millisecond
	// DefaultMaxKept bounds the in-memory store: 250,000 records (user
	// entries and groups), about 60 MB (TestMemoryPerEntry measures
	// it).
	DefaultMaxKept = 250_000
)

// MaxIDBytes is the longest group or user id checked: longer than any the
// IM gives (a UserID is at most 32 bytes), so longer ones are not members
// of anything and are neither asked about nor kept.
const MaxIDBytes = 128

// Config configures a Checker.
type Config struct {
	// IM asks the IM; required.
	IM RolesAsker
	// Redis keeps the answers for every node; nil keeps them in this
	// process, for a hub that is the only node.
	Redis redis.UniversalClient
	// Prefix starts every Redis key ["imhub"].
	Prefix string
	// MemberTTL is how long a member's answer is kept
	// [DefaultMemberTTL] (-im-membership-ttl).
	MemberTTL time.Duration
	// NonMemberTTL is how long a refusal is kept [DefaultNonMemberTTL].
	NonMemberTTL time.Duration
	// StaleGrace is how long past its expiry an answer may still serve
	// while the IM cannot be asked [DefaultStaleGrace]; negative: never.
	StaleGrace time.Duration
	// Window is how long the users asked about for one group are gathered
	// into one call [DefaultWindow].
	Window time.Duration
	// AskTimeout bounds an ask [DefaultAskTimeout].
	AskTimeout time.Duration
	// RetryAfter is how long a group whose ask failed is not asked again
	// [DefaultRetryAfter].
	RetryAfter time.Duration
	// PollMax is the longest wait between two looks at a group another
	// node is asking about [DefaultPollMax].
	PollMax time.Duration
	// MaxKept bounds the in-memory store, without Redis
	// [DefaultMaxKept].
	MaxKept int
	// Registerer, when set, receives the membership metrics.
	Registerer prometheus.Registerer
	// Logger receives the IM's failures [slog.Default()].
	Logger *slog.Logger
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Checker answers whether users are members of groups, as the IM says,
// keeping answers for every node (Config.Redis) and asking the IM only
// for what no node keeps. It is safe for concurrent use; Close stops it.
type Checker struct {
	cfg   Config
	grace time.Duration // StaleGrace, 0 when stale answers never serve
	store store
	m     *metrics

	// base is cancelled by Close and ends every ask; wg counts the asks'
	// goroutines.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the asks waiting or under way, by group; it is never
	// held while the store or the IM is asked.
	mu     sync.Mutex
	closed bool
	asks   map[groupID]*groupAsks
}

// ErrClosed says the Checker was closed.
var ErrClosed = errors.New("membership: the checker is closed")

// NewChecker returns a Checker for cfg.
func NewChecker(cfg Config) (*Checker, error) {
	if cfg.IM == nil {
		return nil, errors.New("membership: Config.IM is required: the IM client to ask")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MemberTTL (-im-membership-ttl)", &cfg.MemberTTL, DefaultMemberTTL},
		{"NonMemberTTL", &cfg.NonMemberTTL, DefaultNonMemberTTL},
		{"Window", &cfg.Window, DefaultWindow},
		{"AskTimeout", &cfg.AskTimeout, DefaultAskTimeout},
		{"RetryAfter", &cfg.RetryAfter, DefaultRetryAfter},
		{"PollMax", &cfg.PollMax, DefaultPollMax},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("membership: %s must be positive, not %v", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.StaleGrace == 0 {
		cfg.StaleGrace = DefaultStaleGrace
	}
	if cfg.MaxKept < 0 {
		return nil, fmt.Errorf("membership: MaxKept must be positive, not %d", cfg.MaxKept)
	}
	if cfg.MaxKept == 0 {
		cfg.MaxKept = DefaultMaxKept
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "imhub"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Checker{cfg: cfg, grace: max(cfg.StaleGrace, 0), m: newMetrics(cfg.Registerer), asks: make(map[groupID]*groupAsks)}
	if cfg.Redis != nil {
		c.store = &redisStore{client: cfg.Redis, prefix: cfg.Prefix, grace: c.grace}
	} else {
		c.store = newMemoryStore(c.grace, cfg.MaxKept)
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close ends the asks under way (their Checks answer from what is kept,
// or Unavailable) and waits for them; later Checks only read what is
// kept.
func (c *Checker) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// validID reports whether id can name an IM group or user.
func validID(id string) bool { return id != "" && len(id) <= MaxIDBytes }

// Check says whether user is a member of app's group. It answers from
// what is kept while that holds; otherwise it asks the IM, with every
// other user asked about for the group within Config.Window (on any node,
// through Redis), and waits for the answer within ctx. A Check of a user
// already being asked about waits for that ask.
//
// When the IM cannot be asked (unreachable, a FAIL answer, the rate spent,
// the deadline, ctx ended, or the store unreachable), an answer kept and
// expired less than Config.StaleGrace ago serves; without one the verdict
// is Unavailable, with an error saying why. Access is never granted on a
// guess: the error is nil for Member and NotMember.
//
// An app, group or user id that is empty or longer than MaxIDBytes is
// NotMember, asked about and kept nowhere.
func (c *Checker) Check(ctx context.Context, app, group, user string) (Verdict, error) {
	if !validID(app) || !validID(group) || !validID(user) {
		c.m.refused.Inc()
		return NotMember, nil
	}
	g := groupID{app, group}
	now := c.cfg.Now()
	k, err := c.store.read(ctx, g, []string{user}, now)
	if err != nil {
		c.m.unavailable.Inc()
		return Unavailable, fmt.Errorf("membership: %w", err)
	}
	if v, ok := judge(k, user, now); ok {
		return c.counted(v, c.m.kept), nil
	}
	if now.Before(k.failed) {
		return c.fallBack(k, user, now, errIMFailing)
	}
	w, err := c.enqueue(g, user)
	if err != nil {
		return c.fallBack(k, user, now, err)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return c.fallBack(k, user, c.cfg.Now(), context.Cause(ctx))
	}
	now = c.cfg.Now()
	if v, ok := judge(w.kept, user, now); ok {
		return c.counted(v, c.m.asked), nil
	}
	if w.read {
		k = w.kept
	}
	return c.fallBack(k, user, now, w.err)
}

// errIMFailing says a recent ask of the group failed.
var errIMFailing = errors.New("the IM could not be asked about the group a moment ago")

// errNoAnswer says the IM's answer did not name the user.
var errNoAnswer = errors.New("the IM's answer did not name the user")

// fallBack is the verdict when the IM could not be asked (why): what k
// kept that held within the grace, or Unavailable.
func (c *Checker) fallBack(k kept, user string, now time.Time, why error) (Verdict, error) {
	if c.cfg.StaleGrace > 0 {
		if v, ok := judge(k, user, now.Add(-c.cfg.StaleGrace)); ok {
			return c.counted(v, c.m.kept), nil
		}
	}
	c.m.unavailable.Inc()
	if why == nil {
		why = errNoAnswer
	}
	return Unavailable, fmt.Errorf("membership: no answer kept or given: %w", why)
}

// counted counts v, a grant on source, or a refusal.
func (c *Checker) counted(v Verdict, source prometheus.Counter) Verdict {
	if v == Member {
		source.Inc()
	} else {
		c.m.refused.Inc()
	}
	return v
}

// validUsers are the users that can be IM users, in order.
func validUsers(users []string) []string {
	out := users[:0:0]
	for _, u := range users {
		if validID(u) {
			out = append(out, u)
		}
	}
	return out
}

// Created keeps users, a new group's owner and first members, as members
// of app's group for Config.MemberTTL, as Joined does: the IM's
// Group.CallbackAfterCreateGroup. A group of groupType "AVChatRoom", an
// audio-video group, admits every user of the app for as long, as the
// IM's 10007 answer would have it, so that no one is refused, nor the IM
// asked, before the IM could say so.
func (c *Checker) Created(ctx context.Context, app, group, groupType, owner string, users ...string) error {
	return c.learn(ctx, app, group, imapi.RoleMember, c.cfg.MemberTTL, true, groupType == callback.GroupTypeAV, users)
}

// Joined keeps users as members of app's group, for Config.MemberTTL:
// the IM's Group.CallbackAfterNewMemberJoin (its new members), and
// Group.CallbackAfterCreateGroup (the owner and the member list). An IM
// answer asked before this never replaces it. A node calls it before it
// publishes the event, so that any node asked afterwards sees the
// members.
func (c *Checker) Joined(ctx context.Context, app, group string, users ...string) error {
	return c.learn(ctx, app, group, imapi.RoleMember, c.cfg.MemberTTL, true, false, users)
}

// Left keeps users as not members of app's group, for
// Config.NonMemberTTL: the IM's Group.CallbackAfterMemberExit. It wins
// over an ask under way: an answer the IM gave before it is not kept and
// grants no Check. Learning the same exit twice, on one node or two, is
// harmless. A node calls it before it publishes the event.
func (c *Checker) Left(ctx context.Context, app, group string, users ...string) error {
	return c.learn(ctx, app, group, imapi.RoleNotMember, c.cfg.NonMemberTTL, false, false, users)
}

// learn keeps users' role for ttl; av, of a group just made, keeps that it
// is an audio-video group for as long.
func (c *Checker) learn(ctx context.Context, app, group string, role imapi.Role, ttl time.Duration, joined, av bool, users []string) error {
	users = validUsers(users)
	if !validID(app) || !validID(group) || len(users) == 0 && !av {
		return nil
	}
	now := c.cfg.Now()
	if err := c.store.learn(ctx, groupID{app, group}, entry{role: role, expires: now.Add(ttl)}, joined, av, users, now); err != nil {
		c.m.unstored.Inc()
		return fmt.Errorf("membership: %w", err)
	}
	return nil
}

// Destroyed forgets every answer about app's group and keeps, for
// Config.NonMemberTTL, that it has no members: the IM's
// Group.CallbackAfterGroupDestroyed. No answer the IM gave before it is
// kept, or grants a Check. A group made again under the same id
// (Joined) has members again at once.
func (c *Checker) Destroyed(ctx context.Context, app, group string) error {
	if !validID(app) || !validID(group) {
		return nil
	}
	now := c.cfg.Now()
	if err := c.store.destroy(ctx, groupID{app, group}, now.Add(c.cfg.NonMemberTTL), now); err != nil {
		c.m.unstored.Inc()
		return fmt.Errorf("membership: %w", err)
	}
	return nil
}
