package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
	// MaxRemembered bounds the revocations this node keeps in memory
	// [DefaultMaxRemembered]. Past it those that lapse soonest are
	// dropped early; Redis still has them, and a token judged while Redis
	// is away is then checked again once it answers.
	MaxRemembered int
	// Logger receives failures [slog.Default()].
	Logger *slog.Logger
	// Now is the clock [time.Now].
	Now func() time.Time
}

// DefaultMaxRemembered is RevocationsConfig.MaxRemembered's default: the
// users revoked within one -jwt-max-ttl that a node keeps in memory, at
// about 150 bytes each (BenchmarkMemoryPerRevocation), 150 MB at most.
const DefaultMaxRemembered = 1_000_000

// readTimeout bounds a connect's wait for its revocation. While reads
// fail, Redis is asked again at most every probeEvery, by one connect,
// rather than by each connect waiting for a dial to time out.
const (
	readTimeout = time.Second
	probeEvery  = time.Second
)

// Revocations keeps "tokens of this user issued before T are refused": in
// Redis for every node, and in this node's memory, every revocation it has
// learnt (stored here, told by the control channel, read from Redis, or
// loaded at start) until it lapses. Memory is asked first; Redis when
// memory knows none. It implements hub.Revocations.
type Revocations struct {
	cfg   RevocationsConfig
	mem   *memory
	lapse int64 // seconds from issued_before to lapse; 0 never

	// away is set from a failed read of Redis to the next answer; while
	// it is, one connect at most every probeEvery (nextProbe, unix ns)
	// asks Redis, and the rest go by memory alone.
	away      atomic.Bool
	nextProbe atomic.Int64
	// loaded is set once Load has read every revocation in Redis.
	loaded atomic.Bool
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
	if cfg.MaxRemembered <= 0 {
		cfg.MaxRemembered = DefaultMaxRemembered
	}
	r := &Revocations{cfg: cfg, mem: newMemory(cfg.MaxRemembered)}
	// Without Redis there is nothing to load: every revocation is made
	// here.
	r.loaded.Store(cfg.Client == nil)
	if cfg.MaxTTL > 0 {
		d := cfg.MaxTTL + cfg.Leeway
		r.lapse = int64((d + time.Second - 1) / time.Second)
	}
	return r
}

// key is a user's revocation key, in the hash tag of the user's channel.
func (r *Revocations) key(app, user string) string {
	return r.cfg.Prefix + ":{" + app + ":user:" + user + "}:revoked"
}

// indexKey is the sorted set of every revocation in force, "app:user"
// scored by issued_before, which a node starting reads. It has no hash
// tag, so no client channel's keys can be named like it.
func (r *Revocations) indexKey() string { return r.cfg.Prefix + ":revocations" }

// entry is the revocation of tokens issued before (unix s).
func (r *Revocations) entry(before int64) entry {
	if r.lapse == 0 {
		return entry{before: before, until: never}
	}
	return entry{before: before, until: before + r.lapse}
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

// indexScript records a revocation in the index, keeping a member's later
// issued_before, and drops those that have lapsed.
//
// KEYS[1] the index; ARGV[1] the member, "app:user"; ARGV[2]
// issued_before (unix s); ARGV[3] the latest issued_before that has
// lapsed, "" when none lapse.
var indexScript = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur or tonumber(cur) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
end
return 1
`)

// lapsedBefore is the latest issued_before that has lapsed at now, as the
// index scripts take it: "" when revocations never lapse.
func (r *Revocations) lapsedBefore(now time.Time) string {
	if r.lapse == 0 {
		return ""
	}
	return strconv.FormatInt(now.Unix()-r.lapse, 10)
}

// Store records that app's user's tokens issued before are refused, in
// Redis (for every node) and here.
func (r *Revocations) Store(ctx context.Context, app, user string, before time.Time) error {
	now := r.cfg.Now()
	e := r.entry(before.Unix())
	if e.until <= now.Unix() {
		return nil // every such token has expired already
	}
	if r.cfg.Client != nil {
		exp := int64(0)
		if e.until != never {
			exp = e.until * 1000
		}
		if err := storeScript.Run(ctx, r.cfg.Client, []string{r.key(app, user)}, before.Unix(), exp).Err(); err != nil {
			return fmt.Errorf("store revocation of %s: %w", user, err)
		}
		if err := indexScript.Run(ctx, r.cfg.Client, []string{r.indexKey()}, app+":"+user, before.Unix(), r.lapsedBefore(now)).Err(); err != nil {
			return fmt.Errorf("index revocation of %s: %w", user, err)
		}
	}
	r.Remember(app, user, before)
	return nil
}

// Remember records a revocation in this node's memory only: one another
// node stored, as its command arrives.
func (r *Revocations) Remember(app, user string, before time.Time) {
	r.mem.remember(userKey{app, user}, r.entry(before.Unix()), r.cfg.Now().Unix())
}

// remembered reports whether memory holds a revocation in force that
// covers id.
func (r *Revocations) remembered(id *auth.Identity, now time.Time) bool {
	e, ok := r.mem.lookup(userKey{id.App, id.User}, now.Unix())
	return ok && hub.IssuedBefore(id, time.Unix(e.before, 0))
}

// Check implements hub.Revocations: memory first, then Redis. It answers
// hub.TokenUnchecked when Redis cannot be read (or is not asked, while it
// is away) and memory knows no revocation of id: whether to let such a
// token in is the hub's choice.
func (r *Revocations) Check(ctx context.Context, id *auth.Identity) hub.RevocationCheck {
	now := r.cfg.Now()
	if r.remembered(id, now) {
		return hub.TokenRevoked
	}
	if r.cfg.Client == nil {
		return hub.TokenClear
	}
	if !r.mayAsk(now) {
		return hub.TokenUnchecked
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	v, err := r.cfg.Client.Get(rctx, r.key(id.App, id.User)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		r.answered()
		return hub.TokenClear
	case err != nil && ctx.Err() != nil:
		return hub.TokenUnchecked // the connect itself went away
	case err != nil:
		r.failed(now, err)
		return hub.TokenUnchecked
	}
	r.answered()
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		r.cfg.Logger.Warn("revocation in redis is not unix seconds; ignored", "key", r.key(id.App, id.User))
		return hub.TokenClear
	}
	r.Remember(id.App, id.User, time.Unix(sec, 0))
	if hub.IssuedBefore(id, time.Unix(sec, 0)) {
		return hub.TokenRevoked
	}
	return hub.TokenClear
}

// mayAsk reports whether a connect at now is to read Redis: always unless
// Redis is away, then the first since probeEvery.
func (r *Revocations) mayAsk(now time.Time) bool {
	if !r.away.Load() {
		return true
	}
	next := r.nextProbe.Load()
	return now.UnixNano() >= next && r.nextProbe.CompareAndSwap(next, now.Add(probeEvery).UnixNano())
}

// failed records that Redis did not answer a read at now.
func (r *Revocations) failed(now time.Time, err error) {
	r.nextProbe.Store(now.Add(probeEvery).UnixNano())
	if !r.away.Swap(true) {
		r.cfg.Logger.Warn("revocations not readable from redis: tokens are judged by what this node remembers until it answers", "err", err)
	}
}

// answered records that Redis answered a read.
func (r *Revocations) answered() {
	if r.away.Swap(false) {
		r.cfg.Logger.Info("revocations readable from redis again")
	}
}

// checkBatch bounds the keys read in one MGET or pipeline.
const checkBatch = 1000

// CheckAll implements hub.Revocations: Check for each of ids, reading
// Redis by checkBatch users at a time (one MGET each; on a Redis Cluster,
// GETs pipelined by the client, which splits them by shard), whether or
// not Redis is taken to be away. When Redis cannot be read it fails, with
// hub.TokenUnchecked for each token memory did not settle and Redis was
// not read for. A revocation found in Redis is remembered.
func (r *Revocations) CheckAll(ctx context.Context, ids []*auth.Identity) ([]hub.RevocationCheck, error) {
	out := make([]hub.RevocationCheck, len(ids))
	now := r.cfg.Now()
	byKey := make(map[string][]int)
	var keys []string
	for i, id := range ids {
		switch {
		case r.remembered(id, now):
			out[i] = hub.TokenRevoked
			continue
		case r.cfg.Client == nil:
			out[i] = hub.TokenClear
			continue
		}
		out[i] = hub.TokenUnchecked
		k := r.key(id.App, id.User)
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	for len(keys) > 0 {
		n := min(len(keys), checkBatch)
		vals, err := r.getAll(ctx, keys[:n])
		if err != nil {
			r.failed(now, err)
			return out, fmt.Errorf("read revocations: %w", err)
		}
		r.answered()
		for j, v := range vals {
			at := byKey[keys[j]]
			sec, err := strconv.ParseInt(v, 10, 64)
			if v == "" || err != nil {
				for _, i := range at {
					out[i] = hub.TokenClear
				}
				continue
			}
			before := time.Unix(sec, 0)
			r.Remember(ids[at[0]].App, ids[at[0]].User, before)
			for _, i := range at {
				out[i] = hub.TokenClear
				if hub.IssuedBefore(ids[i], before) {
					out[i] = hub.TokenRevoked
				}
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

// loadBatch is how many index members one ZSCAN call asks for.
const loadBatch = 1000

// Load reads every revocation in force from Redis into memory, and
// reports the first time it has done so in Loaded. A node calls it once
// its control channel is subscribed (so that what is stored meanwhile
// reaches it as a command), before it takes clients: while Redis is away
// later, it then knows every revocation made before it started.
func (r *Revocations) Load(ctx context.Context) error {
	if r.cfg.Client == nil {
		return nil
	}
	now := r.cfg.Now()
	if cut := r.lapsedBefore(now); cut != "" {
		if err := r.cfg.Client.ZRemRangeByScore(ctx, r.indexKey(), "-inf", cut).Err(); err != nil {
			return fmt.Errorf("load revocations: drop lapsed: %w", err)
		}
	}
	var cursor uint64
	n := 0
	for {
		// ZSCAN answers member, score, member, score, ….
		kv, next, err := r.cfg.Client.ZScan(ctx, r.indexKey(), cursor, "", loadBatch).Result()
		if err != nil {
			return fmt.Errorf("load revocations: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			app, user, ok := strings.Cut(kv[i], ":")
			score, err := strconv.ParseFloat(kv[i+1], 64)
			if !ok || err != nil {
				continue
			}
			r.Remember(app, user, time.Unix(int64(score), 0))
			n++
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if !r.loaded.Swap(true) {
		r.cfg.Logger.Info("revocations loaded from redis", "revocations", n)
	}
	return nil
}

// Loaded reports whether Load has read the revocations once: a node
// should take no clients before.
func (r *Revocations) Loaded() bool { return r.loaded.Load() }

// Remembered returns how many revocations this node keeps in memory, and
// how many it dropped before they lapsed because MaxRemembered were kept.
func (r *Revocations) Remembered() (kept int, forgotten uint64) { return r.mem.stats() }
