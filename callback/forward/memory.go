package forward

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFull is returned by a MemoryStore's Add when it holds its maximum.
var ErrFull = errors.New("forward queue is full")

// MemoryStore keeps the queue in the process, for a hub without Redis. It
// holds at most Max entries, waiting, retrying or in flight; dead letters
// too are bounded by Max, the oldest dropped first. Nothing in it
// survives a restart: a hub that must not lose forwards uses Redis.
type MemoryStore struct {
	max int

	mu   sync.Mutex
	apps map[string]*memApp
}

type memApp struct {
	waiting []Entry
	retries []memRetry
	dead    []Entry
	held    int // taken and not finished
	wake    chan struct{}
}

type memRetry struct {
	due time.Time
	e   Entry
}

// NewMemoryStore returns an empty store of at most max entries (default
// 100000).
func NewMemoryStore(max int) *MemoryStore {
	if max <= 0 {
		max = 100000
	}
	return &MemoryStore{max: max, apps: map[string]*memApp{}}
}

func (s *MemoryStore) app(id string) *memApp {
	a := s.apps[id]
	if a == nil {
		a = &memApp{wake: make(chan struct{}, 1)}
		s.apps[id] = a
	}
	return a
}

func (s *MemoryStore) sizeLocked() int {
	n := 0
	for _, a := range s.apps {
		n += len(a.waiting) + len(a.retries) + a.held
	}
	return n
}

// Add implements [Store].
func (s *MemoryStore) Add(_ context.Context, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.sizeLocked(); n >= s.max {
		return fmt.Errorf("%w (%d entries)", ErrFull, n)
	}
	a := s.app(e.App)
	a.waiting = append(a.waiting, e)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Take implements [Store].
func (s *MemoryStore) Take(ctx context.Context, app, _ string, n int) ([]Item, error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		s.mu.Lock()
		a := s.app(app)
		now := time.Now()
		kept := a.retries[:0]
		for _, r := range a.retries {
			if !r.due.After(now) {
				a.waiting = append(a.waiting, r.e)
			} else {
				kept = append(kept, r)
			}
		}
		clear(a.retries[len(kept):])
		a.retries = kept
		k := min(n, len(a.waiting))
		items := make([]Item, k)
		for i := range k {
			items[i] = Item{Entry: a.waiting[i]}
		}
		a.waiting = append(a.waiting[:0:0], a.waiting[k:]...)
		a.held += k
		wake := a.wake
		var next time.Time
		for _, r := range a.retries {
			if next.IsZero() || r.due.Before(next) {
				next = r.due
			}
		}
		s.mu.Unlock()
		if k > 0 {
			return items, nil
		}
		var due <-chan time.Time
		if !next.IsZero() {
			dt := time.NewTimer(time.Until(next))
			defer dt.Stop()
			due = dt.C
		}
		select {
		case <-due:
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
			return nil, nil
		case <-wake:
		}
	}
}

// Done implements [Store].
func (s *MemoryStore) Done(_ context.Context, it Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app(it.App).held--
	return nil
}

// Retry implements [Store].
func (s *MemoryStore) Retry(_ context.Context, it Item, due time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(it.App)
	a.held--
	a.retries = append(a.retries, memRetry{due, it.Entry})
	// A Take waiting now does not know of this retry's time.
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Dead implements [Store].
func (s *MemoryStore) Dead(_ context.Context, it Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(it.App)
	a.held--
	if len(a.dead) >= s.max {
		a.dead = append(a.dead[:0:0], a.dead[1:]...)
	}
	a.dead = append(a.dead, it.Entry)
	return nil
}

// DeadCount implements [Store].
func (s *MemoryStore) DeadCount(_ context.Context, app string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.app(app).dead)), nil
}

// ListDead returns a copy of app's dead letters, oldest first.
func (s *MemoryStore) ListDead(app string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.app(app).dead...)
}

// Backlog implements [Store].
func (s *MemoryStore) Backlog(_ context.Context, app string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(app)
	return int64(len(a.waiting) + len(a.retries) + a.held), nil
}

// Ready implements [Store]: a full store is not ready, so that a spool in
// front of it waits rather than trying each entry.
func (s *MemoryStore) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sizeLocked() >= s.max {
		return ErrFull
	}
	return nil
}
