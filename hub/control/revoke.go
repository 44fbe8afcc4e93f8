package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
)

// RevocationsConfig configures [Revocations].
type RevocationsConfig struct {
	// Client is the Redis that keeps revocations for every node; nil
	// keeps them in memory only.
	Client redis.UniversalClient
	// Prefix starts every key ["imhub"].
	Prefix string
	// MaxTTL is the longest a token may live (-jwt-max-ttl): a revocation
	// of tokens issued before T is kept until T + MaxTTL, when every such
	// token has expired. Zero keeps revocations for good.
	MaxTTL time.Duration
	// Leeway is the verifier's clock skew allowance, added to the above.
	Leeway time.Duration
	// Logger receives failures [slog.Default()].
	Logger *slog.Logger
	// Now is the clock [time.Now].
	Now func() time.Time
}

// readTimeout bounds a connect's wait for its revocation; after a failed
// read, Redis is not asked for awayFor.
const (
	readTimeout = time.Second
	awayFor     = 5 * time.Second
)

// maxLocal bounds the revocations a node remembers in memory. Past it the
// oldest are forgotten: with Redis they are still read from there.
const maxLocal = 100000

// Revocations keeps "tokens of this user issued before T are refused".
// It implements hub.Revocations.
type Revocations struct {
	cfg RevocationsConfig
	// away is until when (unix ns) Redis is taken to be away after a
	// read failed: connects meanwhile go by memory, rather than each
	// waiting for a dial to time out.
	away atomic.Int64

	mu    sync.Mutex
	local map[userKey]revocation
	order []userKey // insertion order, for maxLocal
}

type userKey struct{ app, user string }

type revocation struct {
	before time.Time
	until  time.Time // zero: for good
}

// NewRevocations returns an empty store.
func NewRevocations(cfg RevocationsConfig) *Revocations {
	if cfg.Prefix == "" {
		cfg.Prefix = "imhub"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Revocations{cfg: cfg, local: make(map[userKey]revocation)}
}

// key is a user's revocation key, in the hash tag of the user's channel.
func (r *Revocations) key(app, user string) string {
	return r.cfg.Prefix + ":{" + app + ":user:" + user + "}:revoked"
}

// until is when a revocation of tokens issued before t can be forgotten.
func (r *Revocations) until(before time.Time) time.Time {
	if r.cfg.MaxTTL <= 0 {
		return time.Time{}
	}
	return before.Add(r.cfg.MaxTTL + r.cfg.Leeway)
}

// storeScript keeps the later of two revocations: one with an earlier
// issued_before than the one in force must not shorten it.
//
// KEYS[1] the revocation key; ARGV[1] issued_before (unix s); ARGV[2]
// expiry (unix ms), "0" for none.
var storeScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then
  return 0
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
return 1
`)

// Store records that app's user's tokens issued before are refused, in
// Redis (for every node) and here.
func (r *Revocations) Store(ctx context.Context, app, user string, before time.Time) error {
	until := r.until(before)
	if !until.IsZero() && !until.After(r.cfg.Now()) {
		return nil // every such token has expired already
	}
	if r.cfg.Client != nil {
		exp := int64(0)
		if !until.IsZero() {
			exp = until.UnixMilli()
		}
		if err := storeScript.Run(ctx, r.cfg.Client, []string{r.key(app, user)}, before.Unix(), exp).Err(); err != nil {
			return fmt.Errorf("store revocation of %s: %w", user, err)
		}
	}
	r.Remember(app, user, before)
	return nil
}

// Remember records a revocation in this node's memory only: one another
// node stored, as its command arrives.
func (r *Revocations) Remember(app, user string, before time.Time) {
	k := userKey{app, user}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.local[k]; ok {
		if !before.After(cur.before) {
			return
		}
	} else {
		for len(r.order) >= maxLocal {
			delete(r.local, r.order[0])
			r.order = r.order[1:]
		}
		// Entries that lapsed leave from the front as new ones come.
		for len(r.order) > 0 {
			e, ok := r.local[r.order[0]]
			if ok && (e.until.IsZero() || e.until.After(now)) {
				break
			}
			delete(r.local, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, k)
	}
	r.local[k] = revocation{before: before, until: r.until(before)}
}

// Revoked implements hub.Revocations. When Redis cannot be read it goes by
// what this node remembers, and lets the token in otherwise: refusing
// every client while Redis is away would take the whole service down.
func (r *Revocations) Revoked(ctx context.Context, id *auth.Identity) bool {
	now := r.cfg.Now()
	r.mu.Lock()
	e, ok := r.local[userKey{id.App, id.User}]
	r.mu.Unlock()
	if ok && (e.until.IsZero() || e.until.After(now)) && hub.IssuedBefore(id, e.before) {
		return true
	}
	if r.cfg.Client == nil || now.UnixNano() < r.away.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	v, err := r.cfg.Client.Get(ctx, r.key(id.App, id.User)).Result()
	if err == redis.Nil {
		return false
	}
	if err != nil {
		r.away.Store(now.Add(awayFor).UnixNano())
		r.cfg.Logger.Warn("revocations not readable from redis: tokens let in, by what this node remembers, for a while",
			"for", awayFor, "err", err)
		return false
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false
	}
	return hub.IssuedBefore(id, time.Unix(sec, 0))
}

// checkBatch bounds the keys read in one MGET or pipeline.
const checkBatch = 1000

// RevokedAll implements hub.Revocations: Revoked for each of ids, reading
// Redis by checkBatch users at a time (one MGET each; on a Redis Cluster,
// GETs pipelined by the client, which splits them by shard). It ignores
// the pause after a failed read that Revoked keeps, and fails when Redis
// cannot be read, with what it found so far in the answer. A revocation
// found in Redis is remembered here too.
func (r *Revocations) RevokedAll(ctx context.Context, ids []*auth.Identity) ([]bool, error) {
	out := make([]bool, len(ids))
	now := r.cfg.Now()
	byKey := make(map[string][]int)
	var keys []string
	r.mu.Lock()
	for i, id := range ids {
		e, ok := r.local[userKey{id.App, id.User}]
		if ok && (e.until.IsZero() || e.until.After(now)) && hub.IssuedBefore(id, e.before) {
			out[i] = true
			continue
		}
		if r.cfg.Client == nil {
			continue
		}
		k := r.key(id.App, id.User)
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	r.mu.Unlock()
	for len(keys) > 0 {
		n := min(len(keys), checkBatch)
		vals, err := r.getAll(ctx, keys[:n])
		if err != nil {
			return out, fmt.Errorf("read revocations: %w", err)
		}
		for j, v := range vals {
			sec, err := strconv.ParseInt(v, 10, 64)
			if v == "" || err != nil {
				continue
			}
			before := time.Unix(sec, 0)
			at := byKey[keys[j]]
			r.Remember(ids[at[0]].App, ids[at[0]].User, before)
			for _, i := range at {
				out[i] = out[i] || hub.IssuedBefore(ids[i], before)
			}
		}
		keys = keys[n:]
	}
	return out, nil
}

// getAll reads keys, "" for one that does not exist, in one round trip per
// shard.
func (r *Revocations) getAll(ctx context.Context, keys []string) ([]string, error) {
	out := make([]string, len(keys))
	if _, ok := r.cfg.Client.(*redis.ClusterClient); !ok {
		vals, err := r.cfg.Client.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			out[i], _ = v.(string)
		}
		return out, nil
	}
	// Keys of many users are in many slots, which one MGET cannot read.
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := r.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = v
		}
	}
	return out, nil
}
