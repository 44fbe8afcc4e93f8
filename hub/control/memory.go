package control

import (
	"container/heap"
	"math"
	"sync"
)

// memory keeps the revocations a node has learnt, each user's latest,
// until they lapse, so that the node can judge tokens by them without
// Redis. Beside the entries it keeps a heap of when each lapses, soonest
// first: entries leave as they lapse, and past max the soonest to lapse
// leave early (counted in forgotten), so that memory stays bounded
// whatever the server API is asked to revoke.
type memory struct {
	mu        sync.Mutex
	max       int
	byUser    map[userKey]entry
	lapses    lapseHeap
	forgotten uint64
}

type userKey struct{ app, user string }

// entry is one user's revocation, in unix seconds.
type entry struct {
	before int64 // tokens issued before it are refused
	until  int64 // when it lapses; never is math.MaxInt64
}

// never is the until of a revocation that does not lapse (-jwt-max-ttl 0).
const never = math.MaxInt64

func newMemory(maxEntries int) *memory {
	return &memory{max: maxEntries, byUser: make(map[userKey]entry)}
}

// remember keeps e for k unless k has a later revocation already or e has
// lapsed by now, and reports whether it kept it.
func (m *memory) remember(k userKey, e entry, now int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	if e.until <= now {
		return false
	}
	cur, had := m.byUser[k]
	if had && cur.before >= e.before {
		return false
	}
	m.byUser[k] = e
	// The record of k's earlier revocation stays in the heap until it
	// lapses: it no longer matches k's entry, and is dropped then without
	// touching it. One that never lapses is the record of this one too.
	if !had || cur.until != e.until {
		heap.Push(&m.lapses, lapse{k, e.until})
	}
	// The bound is on users, not on records: the stale records of a user
	// revoked again and again must not push other users out.
	for len(m.byUser) > m.max {
		if m.dropTopLocked() {
			m.forgotten++
		}
	}
	if m.lapses.Len() > 2*len(m.byUser)+64 {
		m.compactLocked()
	}
	return true
}

// compactLocked rebuilds the heap from the entries alone, dropping the
// records of earlier revocations that later ones replaced.
func (m *memory) compactLocked() {
	m.lapses = m.lapses[:0]
	for k, e := range m.byUser {
		m.lapses = append(m.lapses, lapse{k, e.until})
	}
	heap.Init(&m.lapses)
}

// lookup returns k's revocation in force at now, if any.
func (m *memory) lookup(k userKey, now int64) (entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	e, ok := m.byUser[k]
	return e, ok
}

// sweepLocked drops what has lapsed by now.
func (m *memory) sweepLocked(now int64) {
	for m.lapses.Len() > 0 && m.lapses[0].until <= now {
		m.dropTopLocked()
	}
}

// dropTopLocked drops the heap's soonest record, and its user's entry if
// the record is that entry's; it reports whether an entry went.
func (m *memory) dropTopLocked() bool {
	l := heap.Pop(&m.lapses).(lapse)
	if e, ok := m.byUser[l.k]; ok && e.until == l.until {
		delete(m.byUser, l.k)
		return true
	}
	return false
}

// stats returns how many revocations are kept, and how many were dropped
// before they lapsed because max were kept.
func (m *memory) stats() (kept int, forgotten uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byUser), m.forgotten
}

// lapse is when one revocation lapses.
type lapse struct {
	k     userKey
	until int64
}

// lapseHeap is a container/heap of lapses, the soonest on top.
type lapseHeap []lapse

func (h lapseHeap) Len() int           { return len(h) }
func (h lapseHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h lapseHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lapseHeap) Push(x any)        { *h = append(*h, x.(lapse)) }
func (h *lapseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = lapse{}
	*h = old[:len(old)-1]
	return l
}
