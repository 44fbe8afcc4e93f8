package imstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Group is one group as the stand-in keeps it: its type ("Public",
// "Work", "AVChatRoom", …) and the role of each member.
type Group struct {
	Type  string            `json:"type"`
	Roles map[string]string `json:"roles"` // account to Owner, Admin or Member
}

func (g *Group) clone() *Group {
	if g == nil {
		return nil
	}
	return &Group{Type: g.Type, Roles: maps.Clone(g.Roles)}
}

// Store keeps the stand-in's groups. Several stand-ins on one Store answer
// alike: the nodes of a local cluster each run one, and share what the
// callbacks taught each of them.
type Store interface {
	// Group returns a copy of the group, nil when there is none.
	Group(ctx context.Context, app, id string) (*Group, error)
	// Groups returns copies of every group of app, by id.
	Groups(ctx context.Context, app string) (map[string]*Group, error)
	// Update replaces the group with what change makes of a copy of it
	// (nil when there is none; a nil result deletes it), as one step that
	// no other Update interleaves with.
	Update(ctx context.Context, app, id string, change func(*Group) *Group) error
}

// MemoryStore is a Store in this process's memory.
type MemoryStore struct {
	mu     sync.Mutex
	groups map[string]map[string]*Group // app, then id
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{groups: map[string]map[string]*Group{}}
}

// Group is Store's.
func (m *MemoryStore) Group(_ context.Context, app, id string) (*Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.groups[app][id].clone(), nil
}

// Groups is Store's.
func (m *MemoryStore) Groups(_ context.Context, app string) (map[string]*Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Group, len(m.groups[app]))
	for id, g := range m.groups[app] {
		out[id] = g.clone()
	}
	return out, nil
}

// Update is Store's.
func (m *MemoryStore) Update(_ context.Context, app, id string, change func(*Group) *Group) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := change(m.groups[app][id].clone())
	if g == nil {
		delete(m.groups[app], id)
		return nil
	}
	if m.groups[app] == nil {
		m.groups[app] = map[string]*Group{}
	}
	m.groups[app][id] = g.clone()
	return nil
}

// RedisStore is a Store in Redis: each app's groups are one hash, a field
// of JSON per group, so that every change is of one key (one slot of a
// Redis Cluster) and is made with WATCH and MULTI.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisStore returns a Store in client, its keys starting with prefix
// (default "imhub:imstub").
func NewRedisStore(client redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "imhub:imstub"
	}
	return &RedisStore{client: client, prefix: prefix}
}

func (r *RedisStore) key(app string) string { return r.prefix + ":groups:{" + app + "}" }

// Group is Store's.
func (r *RedisStore) Group(ctx context.Context, app, id string) (*Group, error) {
	raw, err := r.client.HGet(ctx, r.key(app), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read group %s of app %s: %w", id, app, err)
	}
	return decodeGroup(raw)
}

// Groups is Store's.
func (r *RedisStore) Groups(ctx context.Context, app string) (map[string]*Group, error) {
	all, err := r.client.HGetAll(ctx, r.key(app)).Result()
	if err != nil {
		return nil, fmt.Errorf("read the groups of app %s: %w", app, err)
	}
	out := make(map[string]*Group, len(all))
	for id, raw := range all {
		if out[id], err = decodeGroup(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// updateTries bounds how often Update starts again when another change
// of the app's groups came between its read and its write.
const updateTries = 50

// Update is Store's.
func (r *RedisStore) Update(ctx context.Context, app, id string, change func(*Group) *Group) error {
	key := r.key(app)
	step := func(tx *redis.Tx) error {
		var old *Group
		raw, err := tx.HGet(ctx, key, id).Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			if old, err = decodeGroup(raw); err != nil {
				return err
			}
		}
		g := change(old)
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if g == nil {
				p.HDel(ctx, key, id)
				return nil
			}
			b, err := json.Marshal(g)
			if err != nil {
				return err
			}
			p.HSet(ctx, key, id, b)
			return nil
		})
		return err
	}
	for range updateTries {
		err := r.client.Watch(ctx, step, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return fmt.Errorf("change group %s of app %s: %w", id, app, err)
			}
			return nil
		}
	}
	return fmt.Errorf("change group %s of app %s: %d other changes came first", id, app, updateTries)
}

func decodeGroup(raw string) (*Group, error) {
	var g Group
	if err := json.Unmarshal([]byte(raw), &g); err != nil {
		return nil, fmt.Errorf("a stored group is not JSON: %w", err)
	}
	if g.Roles == nil {
		g.Roles = map[string]string{}
	}
	return &g, nil
}
