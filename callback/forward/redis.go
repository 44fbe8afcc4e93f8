package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/broker"
)

// RedisConfig configures [NewRedisStore].
type RedisConfig struct {
	// Prefix starts every key; default "imhub".
	Prefix string
	// ClaimIdle is how long an entry may stay taken, undelivered, before
	// another consumer takes it over: its taker is presumed dead. It must
	// be longer than a delivery attempt. Default 30s.
	ClaimIdle time.Duration
	// Block is how long Take waits for new entries; default 1s.
	Block time.Duration
	// Wait, when set, makes Add wait until replicas hold the entry (see
	// broker.ReplicaWait); Add fails as not replicated when they do not
	// in time, and the spool in front keeps the entry and adds it again
	// (the backend may then get it twice: forwards are at least once).
	Wait   *broker.ReplicaWait
	Logger *slog.Logger
}

// RedisStore keeps each app's queue in Redis:
//
//   - <prefix>:fwd:{<app>} is a stream of entries (field "e", the entry's
//     JSON), read through the consumer group "forward" that every replica
//     shares: XREADGROUP takes, XACK and XDEL finish, and XAUTOCLAIM takes
//     over entries whose consumer has held them for ClaimIdle;
//   - <prefix>:fwd:{<app>}:retry is a sorted set of entries waiting for
//     their next attempt, scored by its time in unix milliseconds; Take
//     moves the due ones back to the stream;
//   - <prefix>:fwd:{<app>}:dead is a stream of dead letters.
//
// The three keys share the hash tag {<app>}, so on Redis Cluster they live
// in one slot and each move between them is one script.
type RedisStore struct {
	cfg    RedisConfig
	client redis.UniversalClient
	log    *slog.Logger

	mu          sync.Mutex
	groups      map[string]bool      // apps whose group is known to exist
	lastClaim   map[string]time.Time // per app
	lastPromote map[string]time.Time // per app
	// held holds the entries Take handed out and that are not yet done,
	// retried or dead, by app and ref: an entry in a consumer's pending
	// list that is not held is one whose read reached Redis while its
	// answer did not reach this process.
	held map[string]map[string]bool
}

// promoteEvery is how often due retries are moved back to the stream: a
// retry is late by up to this much, or Block when the stream is idle.
const promoteEvery = 100 * time.Millisecond

// Group is the consumer group every replica reads through.
const Group = "forward"

// DefaultRedisConfig returns the settings NewRedisStore gives the zero
// fields of a RedisConfig that have a default.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{Prefix: "imhub", ClaimIdle: 30 * time.Second, Block: time.Second}
}

// NewRedisStore returns a store in the Redis client talks to. The caller
// closes client.
func NewRedisStore(client redis.UniversalClient, cfg RedisConfig) *RedisStore {
	d := DefaultRedisConfig()
	if cfg.Prefix == "" {
		cfg.Prefix = d.Prefix
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = d.ClaimIdle
	}
	if cfg.Block <= 0 {
		cfg.Block = d.Block
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &RedisStore{cfg: cfg, client: client, log: cfg.Logger,
		groups: map[string]bool{}, lastClaim: map[string]time.Time{}, lastPromote: map[string]time.Time{},
		held: map[string]map[string]bool{}}
}

// StreamKey is the key of app's queue.
func (s *RedisStore) StreamKey(app string) string { return s.cfg.Prefix + ":fwd:{" + app + "}" }

// DeadKey is the key of app's dead letters.
func (s *RedisStore) DeadKey(app string) string { return s.StreamKey(app) + ":dead" }

func (s *RedisStore) retryKey(app string) string { return s.StreamKey(app) + ":retry" }

// Add implements [Store].
func (s *RedisStore) Add(ctx context.Context, e Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode forward entry: %w", err)
	}
	args := &redis.XAddArgs{Stream: s.StreamKey(e.App), Values: []any{"e", data}}
	if s.cfg.Wait.Off() {
		err = s.client.XAdd(ctx, args).Err()
	} else {
		var add *redis.StringCmd
		err = s.cfg.Wait.Do(ctx, args.Stream, func(p redis.Pipeliner) { add = p.XAdd(ctx, args) })
		if err == nil {
			err = add.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("queue forward entry %s: %w", e.ID, err)
	}
	return nil
}

// promote moves due retries back to the stream, a bounded number a call.
var promote = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'e', m)
  redis.call('ZREM', KEYS[2], m)
end
return #due
`)

// Take implements [Store]: due retries go back to the stream, then entries
// held too long by a consumer are claimed (checked every ClaimIdle/4),
// then new entries are read. When there are none, or at the claim check,
// entries read for consumer whose answer was lost are taken again.
func (s *RedisStore) Take(ctx context.Context, app, consumer string, n int) ([]Item, error) {
	if err := s.ensureGroup(ctx, app); err != nil {
		return nil, err
	}
	key := s.StreamKey(app)
	now := time.Now()
	// Retries and take-overs are looked for now and then, not at each
	// Take: under load Take runs for every few entries.
	s.mu.Lock()
	claim := now.Sub(s.lastClaim[app]) >= s.cfg.ClaimIdle/4
	if claim {
		s.lastClaim[app] = now
	}
	promoteDue := now.Sub(s.lastPromote[app]) >= promoteEvery
	if promoteDue {
		s.lastPromote[app] = now
	}
	s.mu.Unlock()
	if promoteDue {
		if err := promote.Run(ctx, s.client, []string{key, s.retryKey(app)}, now.UnixMilli(), 100).Err(); err != nil {
			return nil, fmt.Errorf("move due forward retries of app %s: %w", app, err)
		}
	}
	if claim {
		msgs, _, err := s.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: Group, Consumer: consumer, MinIdle: s.cfg.ClaimIdle, Start: "0-0", Count: int64(n),
		}).Result()
		if err != nil {
			return nil, s.groupErr(app, fmt.Errorf("claim forward entries of app %s: %w", app, err))
		}
		if len(msgs) > 0 {
			s.log.Info("forward entries taken over from a consumer that held them too long", "app", app, "entries", len(msgs))
			return s.items(ctx, key, msgs), nil
		}
		s.forgetConsumers(ctx, app)
		if items, err := s.lost(ctx, app, consumer, n); err != nil || len(items) > 0 {
			return items, err
		}
	}
	streams, err := s.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: Group, Consumer: consumer, Streams: []string{key, ">"}, Count: int64(n), Block: s.cfg.Block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		// Nothing new: the moment to look for reads whose answer was lost.
		return s.lost(ctx, app, consumer, n)
	}
	if err != nil {
		return nil, s.groupErr(app, fmt.Errorf("read forward entries of app %s: %w", app, err))
	}
	var items []Item
	for _, st := range streams {
		items = append(items, s.items(ctx, key, st.Messages)...)
	}
	return items, nil
}

// lost takes again up to n entries in consumer's pending list that Take
// never handed out: Redis read them for consumer, but the answer was lost
// (the connection broke, or Redis was killed, after it recorded the read;
// the client may then send the read again and see only what is new).
// Without this they would wait for ClaimIdle. XCLAIM takes only entries
// still pending, so one finished meanwhile is not taken.
func (s *RedisStore) lost(ctx context.Context, app, consumer string, n int) ([]Item, error) {
	key := s.StreamKey(app)
	s.mu.Lock()
	held := len(s.held[app])
	s.mu.Unlock()
	pending, err := s.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: key, Group: Group, Start: "-", End: "+", Count: int64(held + n), Consumer: consumer,
	}).Result()
	if err != nil {
		return nil, s.groupErr(app, fmt.Errorf("list pending forward entries of app %s: %w", app, err))
	}
	var refs []string
	s.mu.Lock()
	for _, p := range pending {
		if len(refs) < n && !s.held[app][p.ID] {
			refs = append(refs, p.ID)
		}
	}
	s.mu.Unlock()
	if len(refs) == 0 {
		return nil, nil
	}
	msgs, err := s.client.XClaim(ctx, &redis.XClaimArgs{Stream: key, Group: Group, Consumer: consumer, Messages: refs}).Result()
	if err != nil {
		return nil, s.groupErr(app, fmt.Errorf("take again forward entries of app %s: %w", app, err))
	}
	if len(msgs) > 0 {
		s.log.Info("forward entries read but not received taken again", "app", app, "entries", len(msgs))
	}
	return s.items(ctx, key, msgs), nil
}

// release forgets that it is held, once its outcome is recorded or not.
func (s *RedisStore) release(it Item) {
	s.mu.Lock()
	delete(s.held[it.App], it.Ref)
	s.mu.Unlock()
}

// forgetConsumers removes from app's group the consumers that hold
// nothing and have not read for 10×ClaimIdle: hubs that stopped. Every
// process is a new consumer, so without this the group's list grows with
// each restart. A live consumer reads at least every Block, and one
// removed by mistake is made again by its next read.
func (s *RedisStore) forgetConsumers(ctx context.Context, app string) {
	key := s.StreamKey(app)
	consumers, err := s.client.XInfoConsumers(ctx, key, Group).Result()
	if err != nil {
		return // tried again at the next claim
	}
	for _, c := range consumers {
		if c.Pending == 0 && c.Idle > 10*s.cfg.ClaimIdle {
			if err := s.client.XGroupDelConsumer(ctx, key, Group, c.Name).Err(); err == nil {
				s.log.Debug("forward consumer of a stopped hub forgotten", "app", app, "consumer", c.Name)
			}
		}
	}
}

// items decodes msgs. One that does not decode is removed: no attempt can
// deliver it.
func (s *RedisStore) items(ctx context.Context, key string, msgs []redis.XMessage) []Item {
	items := make([]Item, 0, len(msgs))
	for _, m := range msgs {
		var e Entry
		raw, _ := m.Values["e"].(string)
		if err := json.Unmarshal([]byte(raw), &e); err != nil || e.App == "" {
			s.log.Error("forward entry does not decode; removed", "key", key, "ref", m.ID, "err", err)
			s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.XAck(ctx, key, Group, m.ID)
				p.XDel(ctx, key, m.ID)
				return nil
			})
			continue
		}
		items = append(items, Item{Entry: e, Ref: m.ID})
	}
	s.mu.Lock()
	for _, it := range items {
		if s.held[it.App] == nil {
			s.held[it.App] = map[string]bool{}
		}
		s.held[it.App][it.Ref] = true
	}
	s.mu.Unlock()
	return items
}

// ensureGroup creates app's consumer group, and the stream, if missing.
// It reads from the start: entries added before the group existed are
// delivered too.
func (s *RedisStore) ensureGroup(ctx context.Context, app string) error {
	s.mu.Lock()
	ok := s.groups[app]
	s.mu.Unlock()
	if ok {
		return nil
	}
	err := s.client.XGroupCreateMkStream(ctx, s.StreamKey(app), Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create forward consumer group of app %s: %w", app, err)
	}
	s.mu.Lock()
	s.groups[app] = true
	s.mu.Unlock()
	return nil
}

// groupErr forgets that app's group exists when Redis says it does not (a
// Redis that came back without its data), so the next Take makes it again.
func (s *RedisStore) groupErr(app string, err error) error {
	if strings.Contains(err.Error(), "NOGROUP") {
		s.mu.Lock()
		delete(s.groups, app)
		s.mu.Unlock()
	}
	return err
}

// Done implements [Store].
func (s *RedisStore) Done(ctx context.Context, it Item) error {
	defer s.release(it)
	key := s.StreamKey(it.App)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, key, Group, it.Ref)
		p.XDel(ctx, key, it.Ref)
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish forward entry %s: %w", it.ID, err)
	}
	return nil
}

// retryScript and buryScript finish a stream entry by moving it elsewhere, at once.
var (
	retryScript = redis.NewScript(`
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[4], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`)
	buryScript = redis.NewScript(`
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`)
)

// Retry implements [Store].
func (s *RedisStore) Retry(ctx context.Context, it Item, due time.Time) error {
	defer s.release(it)
	data, err := json.Marshal(it.Entry)
	if err != nil {
		return fmt.Errorf("encode forward entry: %w", err)
	}
	keys := []string{s.StreamKey(it.App), s.retryKey(it.App)}
	if err := retryScript.Run(ctx, s.client, keys, it.Ref, due.UnixMilli(), data, Group).Err(); err != nil {
		return fmt.Errorf("schedule retry of forward entry %s: %w", it.ID, err)
	}
	return nil
}

// Dead implements [Store].
func (s *RedisStore) Dead(ctx context.Context, it Item) error {
	defer s.release(it)
	data, err := json.Marshal(it.Entry)
	if err != nil {
		return fmt.Errorf("encode forward entry: %w", err)
	}
	keys := []string{s.StreamKey(it.App), s.DeadKey(it.App)}
	if err := buryScript.Run(ctx, s.client, keys, it.Ref, data, Group).Err(); err != nil {
		return fmt.Errorf("keep forward entry %s as dead letter: %w", it.ID, err)
	}
	return nil
}

// Backlog implements [Store]: the stream's entries, taken or not, and the
// retries waiting.
func (s *RedisStore) Backlog(ctx context.Context, app string) (int64, error) {
	var xlen, zcard *redis.IntCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		xlen = p.XLen(ctx, s.StreamKey(app))
		zcard = p.ZCard(ctx, s.retryKey(app))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("forward backlog of app %s: %w", app, err)
	}
	return xlen.Val() + zcard.Val(), nil
}

// DeadCount implements [Store].
func (s *RedisStore) DeadCount(ctx context.Context, app string) (int64, error) {
	n, err := s.client.XLen(ctx, s.DeadKey(app)).Result()
	if err != nil {
		return 0, fmt.Errorf("count dead letters of app %s: %w", app, err)
	}
	return n, nil
}

// Ready implements [Store].
func (s *RedisStore) Ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.client.Ping(ctx).Err()
}

// DeadLetter is one dead letter: its place in the dead-letter stream and
// the entry as it was last tried.
type DeadLetter struct {
	Ref string
	Entry
}

// ListDead returns up to n of app's dead letters, oldest first.
func (s *RedisStore) ListDead(ctx context.Context, app string, n int64) ([]DeadLetter, error) {
	msgs, err := s.client.XRangeN(ctx, s.DeadKey(app), "-", "+", n).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters of app %s: %w", app, err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		var e Entry
		raw, _ := m.Values["e"].(string)
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("dead letter %s of app %s does not decode: %w", m.ID, app, err)
		}
		out = append(out, DeadLetter{Ref: m.ID, Entry: e})
	}
	return out, nil
}

// requeue moves one dead letter back to the queue.
var requeue = redis.NewScript(`
if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
return 1
`)

// ReplayDead queues up to n of app's dead letters again, oldest first,
// as if just accepted (MaxAge counts afresh, attempts from zero), and
// returns how many it queued. A letter replayed at the same moment by
// another caller is queued once.
func (s *RedisStore) ReplayDead(ctx context.Context, app string, n int64, now time.Time) (int, error) {
	letters, err := s.ListDead(ctx, app, n)
	if err != nil {
		return 0, err
	}
	replayed := 0
	for _, d := range letters {
		e := d.Entry
		e.Accepted, e.Attempts, e.LastError = now.UnixMilli(), 0, ""
		data, err := json.Marshal(e)
		if err != nil {
			return replayed, fmt.Errorf("encode forward entry: %w", err)
		}
		moved, err := requeue.Run(ctx, s.client, []string{s.StreamKey(app), s.DeadKey(app)}, d.Ref, data).Int()
		if err != nil {
			return replayed, fmt.Errorf("replay dead letter %s of app %s: %w", d.Ref, app, err)
		}
		replayed += moved
	}
	return replayed, nil
}
