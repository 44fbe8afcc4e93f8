package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a [Tracker]. Zero fields take the defaults in brackets.
type Config struct {
	// Client is the Redis that presence is shared through; nil keeps it
	// in memory, for a hub that is the only node.
	Client redis.UniversalClient
	// Prefix starts every key, as the broker's do ["imhub"].
	Prefix string
	// Node names this node in logs; a random suffix makes the instance
	// id, so that a node restarted under the same name does not revive
	// what the dead one left [hostname].
	Node string
	// TTL is how long a node that stopped heartbeating (killed, or cut
	// off from Redis) still counts; it heartbeats every TTL/3 [25s].
	TTL time.Duration
	// KeyTTL is how long a presence hash outlives the last node that
	// wrote to it; live nodes refresh it every KeyTTL/3. It only bounds
	// what dead nodes leave behind, which no answer counts [10m].
	KeyTTL time.Duration
	// Gather is how long the writer waits after a change for more, so
	// that a session's connect and first subscribe, and a burst of
	// connects, go out in one pipeline [5ms]. Nothing waits for it.
	Gather time.Duration
	// Logger receives state changes [slog.Default()].
	Logger *slog.Logger
}

// DefaultConfig returns the settings New gives the zero fields of a
// Config that have a default; Node, the host name, is left out.
func DefaultConfig() Config {
	return Config{Prefix: "imhub", TTL: 25 * time.Second, KeyTTL: 10 * time.Minute, Gather: 5 * time.Millisecond}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.KeyTTL <= 0 {
		c.KeyTTL = d.KeyTTL
	}
	c.KeyTTL = max(c.KeyTTL, 3*c.TTL)
	if c.Gather <= 0 {
		c.Gather = d.Gather
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Tracker counts this node's sessions per user and per channel, and answers
// for all nodes. All methods are safe for concurrent use; the recording
// ones never block on Redis.
type Tracker struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	instance string                     // this process's id in Redis fields and its heartbeat key
	chans    map[chanKey]map[string]int // app, channel -> user -> sessions here
	conns    map[connKey]int            // app, user -> sessions here
	// dirty are the fields of this node whose count changed since they
	// were last written. It holds at most one entry per user and channel
	// touched meanwhile; past maxDirty (Redis away for long under churn)
	// it is dropped and the node starts afresh under a new instance id
	// (renew), leaving the old one's fields to expire unseen.
	dirty map[field]struct{}
	renew bool
	// rewrite asks the next heartbeat to write every count again, as the
	// last one did after finding the heartbeat key gone: see heartbeat.
	rewrite bool
	kick    chan struct{} // a write is wanted; capacity 1
	// beforeReap, in tests, runs between a reader's MGET and its HDEL.
	beforeReap func()
}

type chanKey struct{ app, channel string }
type connKey struct{ app, user string }

// field is one count of this node in a channel's hash: the sessions of
// user subscribed to channel, or with conn, the sessions of user (in the
// hash of channel user:<user>).
type field struct {
	app, channel, user string
	conn               bool
}

// maxDirty bounds the changes waiting to be written.
const maxDirty = 1 << 20

// New returns a tracker. With a Redis client, Run must run for the counts
// to reach Redis.
func New(cfg Config) *Tracker {
	cfg.setDefaults()
	return &Tracker{
		cfg:      cfg,
		instance: newInstance(cfg.Node),
		log:      cfg.Logger,
		chans:    make(map[chanKey]map[string]int),
		conns:    make(map[connKey]int),
		dirty:    make(map[field]struct{}),
		kick:     make(chan struct{}, 1),
	}
}

// newInstance makes an instance id of a node name: no spaces (they end
// the node part of a field) and a random suffix.
func newInstance(node string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	node = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '{' || r == '}' {
			return '_'
		}
		return r
	}, node)
	return node + "." + hex.EncodeToString(b[:])
}

// userChannel is the channel whose hash also holds the user's connection
// counts: every session is subscribed to it from the start.
func userChannel(user string) string { return "user:" + user }

// Connect implements hub.Presence.
func (t *Tracker) Connect(app, user string) { t.addConn(app, user, 1) }

// Disconnect implements hub.Presence.
func (t *Tracker) Disconnect(app, user string) { t.addConn(app, user, -1) }

func (t *Tracker) addConn(app, user string, d int) {
	k := connKey{app, user}
	t.mu.Lock()
	if n := t.conns[k] + d; n > 0 {
		t.conns[k] = n
	} else {
		delete(t.conns, k)
	}
	t.markLocked(field{app: app, channel: userChannel(user), user: user, conn: true})
	t.mu.Unlock()
}

// Join implements hub.Presence.
func (t *Tracker) Join(app, channel, user string) { t.addSub(app, channel, user, 1) }

// Leave implements hub.Presence.
func (t *Tracker) Leave(app, channel, user string) { t.addSub(app, channel, user, -1) }

func (t *Tracker) addSub(app, channel, user string, d int) {
	k := chanKey{app, channel}
	t.mu.Lock()
	users := t.chans[k]
	if users == nil {
		users = make(map[string]int)
		t.chans[k] = users
	}
	if n := users[user] + d; n > 0 {
		users[user] = n
	} else {
		delete(users, user)
		if len(users) == 0 {
			delete(t.chans, k)
		}
	}
	t.markLocked(field{app: app, channel: channel, user: user})
	t.mu.Unlock()
}

func (t *Tracker) markLocked(f field) {
	if t.cfg.Client == nil {
		return
	}
	if len(t.dirty) >= maxDirty {
		clear(t.dirty)
		t.renew = true
	}
	if !t.renew {
		t.dirty[f] = struct{}{}
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Users implements hub.Presence: for every user subscribed to app's
// channel on a live node, how many of their sessions are.
func (t *Tracker) Users(ctx context.Context, app, channel string) (map[string]int, error) {
	out := map[string]int{}
	t.mu.Lock()
	for u, n := range t.chans[chanKey{app, channel}] {
		out[u] += n
	}
	t.mu.Unlock()
	if t.cfg.Client == nil {
		return out, nil
	}
	fields, err := t.read(ctx, app, channel)
	if err != nil {
		return nil, err
	}
	for f, n := range fields {
		if _, user, ok := strings.Cut(f, " "); ok {
			out[user] += n
		}
	}
	return out, nil
}

// Connections returns how many sessions app's user has on live nodes.
func (t *Tracker) Connections(ctx context.Context, app, user string) (int, error) {
	t.mu.Lock()
	n := t.conns[connKey{app, user}]
	t.mu.Unlock()
	if t.cfg.Client == nil {
		return n, nil
	}
	fields, err := t.read(ctx, app, userChannel(user))
	if err != nil {
		return 0, err
	}
	for f, c := range fields {
		if !strings.Contains(f, " ") {
			n += c
		}
	}
	return n, nil
}

// read returns the fields of a channel's hash written by other live nodes,
// and removes those of dead ones.
func (t *Tracker) read(ctx context.Context, app, channel string) (map[string]int, error) {
	key := t.hashKey(app, channel)
	t.mu.Lock()
	self := t.instance
	t.mu.Unlock()
	all, err := t.cfg.Client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("presence of %s: %w", channel, err)
	}
	var nodes []string
	seen := map[string]bool{self: true} // this node answers from memory
	for f := range all {
		node, _, _ := strings.Cut(f, " ")
		if !seen[node] {
			seen[node] = true
			nodes = append(nodes, node)
		}
	}
	live := map[string]bool{}
	if len(nodes) > 0 {
		keys := make([]string, len(nodes))
		for i, n := range nodes {
			keys[i] = t.nodeKey(n)
		}
		vals, err := t.cfg.Client.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("presence of %s: nodes alive: %w", channel, err)
		}
		for i, v := range vals {
			live[nodes[i]] = v != nil
		}
	}
	out := make(map[string]int, len(all))
	var dead []string
	for f, v := range all {
		node, _, _ := strings.Cut(f, " ")
		if node == self {
			continue
		}
		if !live[node] {
			dead = append(dead, f)
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			out[f] = n
		}
	}
	if len(dead) > 0 && t.beforeReap != nil {
		t.beforeReap()
	}
	if len(dead) > 0 {
		// What a dead node left is no one's to keep: the reader clears it.
		// A node taken for dead whose heartbeat comes back may write its
		// counts again before this HDEL lands: it writes them once more
		// on its next heartbeat (see heartbeat).
		_ = t.cfg.Client.HDel(ctx, key, dead...).Err()
	}
	return out, nil
}

// hashKey is the hash of a channel's presence. It shares the broker's hash
// tag of the channel, so on a Redis Cluster it lives on the channel's
// shard. Its fields are "<instance> <user>" (sessions of the user
// subscribed to the channel on that node) and, in a user channel's hash,
// "<instance>" (sessions of that user on that node).
func (t *Tracker) hashKey(app, channel string) string {
	return t.cfg.Prefix + ":{" + app + ":" + channel + "}:presence"
}

// nodeKey is a node's heartbeat key. All of them share one hash tag, so
// that one MGET reads any set of them on a Redis Cluster too.
func (t *Tracker) nodeKey(instance string) string {
	return t.cfg.Prefix + ":{presence-nodes}:" + instance
}

// Run writes changes and heartbeats to Redis until ctx is done. Without a
// Redis client it returns at once.
func (t *Tracker) Run(ctx context.Context) error {
	if t.cfg.Client == nil {
		return nil
	}
	beat := time.NewTicker(t.cfg.TTL / 3)
	defer beat.Stop()
	refresh := time.NewTicker(t.cfg.KeyTTL / 3)
	defer refresh.Stop()
	t.heartbeat(ctx)
	var retry <-chan time.Time
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.kick:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(t.cfg.Gather):
			}
		case <-retry:
		case <-beat.C:
			t.heartbeat(ctx)
		case <-refresh.C:
			if err := t.refreshKeys(ctx); err != nil {
				t.log.Warn("presence keys not renewed", "err", err)
			}
		}
		retry = nil
		if err := t.flush(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("presence not written to redis; trying again", "err", err)
			retry = time.After(backoff)
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = 50 * time.Millisecond
		}
	}
}

// heartbeat renews this node's key. A key that was gone (Redis lost it,
// or readers took this node for dead while it could not reach Redis) may
// have taken this node's fields with it: they are all written again, and
// again on the next heartbeat. A reader that saw the key gone (its MGET)
// deletes this node's fields (its HDEL) a moment later, and that HDEL
// may land after the first rewrite; the second comes when any such
// reader is long done. One script cannot check the key and delete the
// fields atomically: on a Redis Cluster they are in different slots.
func (t *Tracker) heartbeat(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, t.cfg.TTL/3)
	defer cancel()
	t.mu.Lock()
	key := t.nodeKey(t.instance)
	t.mu.Unlock()
	err := t.cfg.Client.SetArgs(cctx, key, "1", redis.SetArgs{TTL: t.cfg.TTL, Get: true}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		t.markAll()
		t.mu.Lock()
		t.rewrite = true
		t.mu.Unlock()
	case err != nil:
		t.log.Warn("presence heartbeat failed", "err", err)
	default:
		t.mu.Lock()
		again := t.rewrite
		t.rewrite = false
		t.mu.Unlock()
		if again {
			t.markAll()
		}
	}
}

// markAll marks every count this node holds for writing.
func (t *Tracker) markAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, users := range t.chans {
		for u := range users {
			t.markLocked(field{app: k.app, channel: k.channel, user: u})
		}
	}
	for k := range t.conns {
		t.markLocked(field{app: k.app, channel: userChannel(k.user), user: k.user, conn: true})
	}
}

// refreshKeys renews the TTL of every hash this node has a count in.
func (t *Tracker) refreshKeys(ctx context.Context) error {
	t.mu.Lock()
	keys := make([]string, 0, len(t.chans)+len(t.conns))
	for k := range t.chans {
		keys = append(keys, t.hashKey(k.app, k.channel))
	}
	for k := range t.conns {
		if t.chans[chanKey{k.app, userChannel(k.user)}] == nil {
			keys = append(keys, t.hashKey(k.app, userChannel(k.user)))
		}
	}
	t.mu.Unlock()
	for len(keys) > 0 {
		n := min(len(keys), maxBatch)
		_, err := t.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys[:n] {
				p.PExpire(ctx, k, t.cfg.KeyTTL)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("renew presence keys: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// maxBatch bounds the hashes written in one pipeline.
const maxBatch = 1000

// hashWrite is what one flush writes to one hash.
type hashWrite struct {
	set []any    // field, count, ...
	del []string // fields whose count fell to zero
}

// flush writes the dirty counts, at most maxBatch hashes per pipeline:
// per hash one HSET of the counts and one HDEL of those that fell to zero.
// Every HSET comes with a PEXPIRE: a hash whose last field went (any
// node's HDEL, or a reader's) is deleted by Redis, and the HSET that makes
// it again makes it without a TTL, which no node can tell from here.
// Counts that were not written are marked dirty again.
func (t *Tracker) flush(ctx context.Context) error {
	if err := t.renewInstance(ctx); err != nil {
		return err
	}
	for {
		t.mu.Lock()
		if len(t.dirty) == 0 {
			t.mu.Unlock()
			return nil
		}
		batch := make(map[string]*hashWrite)
		var taken []field
		for f := range t.dirty {
			key := t.hashKey(f.app, f.channel)
			w := batch[key]
			if w == nil {
				if len(batch) == maxBatch {
					break
				}
				w = &hashWrite{}
				batch[key] = w
			}
			delete(t.dirty, f)
			taken = append(taken, f)
			name, n := t.fieldName(f), t.conns[connKey{f.app, f.user}]
			if !f.conn {
				n = t.chans[chanKey{f.app, f.channel}][f.user]
			}
			if n > 0 {
				w.set = append(w.set, name, n)
			} else {
				w.del = append(w.del, name)
			}
		}
		t.mu.Unlock()
		_, err := t.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for key, w := range batch {
				if len(w.set) > 0 {
					p.HSet(ctx, key, w.set...)
					p.PExpire(ctx, key, t.cfg.KeyTTL)
				}
				if len(w.del) > 0 {
					p.HDel(ctx, key, w.del...)
				}
			}
			return nil
		})
		if err != nil {
			t.mu.Lock()
			for _, f := range taken {
				t.markLocked(f)
			}
			t.mu.Unlock()
			return fmt.Errorf("write presence: %w", err)
		}
	}
}

// renewInstance starts this node afresh under a new instance id after its
// changes overflowed: the old id's heartbeat key is deleted, so nobody
// counts its fields any more, and every count is written under the new id.
func (t *Tracker) renewInstance(ctx context.Context) error {
	t.mu.Lock()
	if !t.renew {
		t.mu.Unlock()
		return nil
	}
	old := t.instance
	t.mu.Unlock()
	if err := t.cfg.Client.Del(ctx, t.nodeKey(old)).Err(); err != nil {
		return fmt.Errorf("presence: drop instance %s: %w", old, err)
	}
	t.mu.Lock()
	t.instance = newInstance(t.cfg.Node)
	t.renew = false
	t.mu.Unlock()
	t.log.Warn("presence changes overflowed while redis was away: written again under a new instance id", "old", old)
	t.heartbeat(ctx)
	t.markAll()
	return nil
}

// Close removes this node from presence at once: its heartbeat key first,
// which makes every node ignore its fields, then the fields themselves.
// Call it after Run has returned.
func (t *Tracker) Close(ctx context.Context) error {
	if t.cfg.Client == nil {
		return nil
	}
	t.mu.Lock()
	instance := t.instance
	fields := make(map[string][]string)
	for f := range t.dirty {
		fields[t.hashKey(f.app, f.channel)] = append(fields[t.hashKey(f.app, f.channel)], t.fieldName(f))
	}
	for k, users := range t.chans {
		for u := range users {
			fields[t.hashKey(k.app, k.channel)] = append(fields[t.hashKey(k.app, k.channel)], t.instance+" "+u)
		}
	}
	for k := range t.conns {
		key := t.hashKey(k.app, userChannel(k.user))
		fields[key] = append(fields[key], t.instance)
	}
	clear(t.dirty)
	t.mu.Unlock()
	if err := t.cfg.Client.Del(ctx, t.nodeKey(instance)).Err(); err != nil {
		return fmt.Errorf("presence: remove node %s: %w", instance, err)
	}
	_, err := t.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, names := range fields {
			p.HDel(ctx, key, names...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence: remove node %s's fields: %w", instance, err)
	}
	return nil
}

// fieldName is f's field in its hash. The caller holds mu.
func (t *Tracker) fieldName(f field) string {
	if f.conn {
		return t.instance
	}
	return t.instance + " " + f.user
}
