package membership

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// memoryStore keeps the answers in this process, for a hub that is the
// only node. It keeps what the Redis store keeps, by the same rules, and
// is bounded: past max records (user entries and groups) the records
// that lapse soonest are dropped early. A group that had one dropped
// takes no IM answer claimed before the drop for a user it holds nothing
// about (the dropped entry may have been an exit that must win); a group
// dropped whole takes none claimed before, anywhere.
type memoryStore struct {
	grace time.Duration
	max   int

	mu      sync.Mutex
	clock   uint64 // the latest stamp, of every group
	groups  map[groupID]*memGroup
	lapses  lapseHeap
	entries int    // user entries, in every group
	floor   uint64 // the stamp taken when a group was last dropped early
	dropped uint64 // records dropped early
}

// memGroup is one group's record.
type memGroup struct {
	reset    uint64
	floor    uint64 // the stamp taken when an entry was last dropped early
	gone     time.Time
	av       time.Time
	failed   time.Time
	lease    string
	leaseEnd time.Time
	lapse    time.Time // the record is forgotten then, as a Redis key expires
	queue    map[string]struct{}
	users    map[string]memEntry
}

type memEntry struct {
	entry
	lapse time.Time
}

func newMemoryStore(grace time.Duration, maxRecords int) *memoryStore {
	return &memoryStore{grace: grace, max: maxRecords, groups: make(map[groupID]*memGroup)}
}

// tick gives the next stamp.
func (s *memoryStore) tick(now time.Time) uint64 {
	s.clock = max(s.clock+1, uint64(max(now.UnixMicro(), 0)))
	return s.clock
}

// groupLocked returns g's record, made if need be.
func (s *memoryStore) groupLocked(g groupID) *memGroup {
	gr := s.groups[g]
	if gr == nil {
		gr = &memGroup{users: make(map[string]memEntry)}
		s.groups[g] = gr
	}
	return gr
}

// keepLocked extends the life of g's record to at least until.
func (s *memoryStore) keepLocked(g groupID, gr *memGroup, until time.Time) {
	if until.After(gr.lapse) {
		gr.lapse = until
		heap.Push(&s.lapses, lapse{g: g, at: until, whole: true})
	}
}

// putLocked writes u's entry in g's record.
func (s *memoryStore) putLocked(g groupID, gr *memGroup, u string, e entry) {
	if _, had := gr.users[u]; !had {
		s.entries++
	}
	me := memEntry{entry: e, lapse: e.expires.Add(s.grace)}
	gr.users[u] = me
	heap.Push(&s.lapses, lapse{g: g, user: u, at: me.lapse})
	s.keepLocked(g, gr, me.lapse)
}

// dropLocked forgets what l names, if it still is what l names.
func (s *memoryStore) dropLocked(l lapse, early bool, now time.Time) bool {
	gr := s.groups[l.g]
	if gr == nil {
		return false
	}
	if l.whole {
		if !gr.lapse.Equal(l.at) {
			return false
		}
		s.entries -= len(gr.users)
		delete(s.groups, l.g)
		if early {
			s.floor = s.tick(now)
		}
		return true
	}
	me, ok := gr.users[l.user]
	if !ok || !me.lapse.Equal(l.at) {
		return false
	}
	delete(gr.users, l.user)
	s.entries--
	if early {
		gr.floor = s.tick(now)
	}
	return true
}

// tidyLocked forgets what lapsed by now, then, past the bound, what
// lapses soonest.
func (s *memoryStore) tidyLocked(now time.Time) {
	for s.lapses.Len() > 0 && !s.lapses[0].at.After(now) {
		s.dropLocked(heap.Pop(&s.lapses).(lapse), false, now)
	}
	for s.entries+len(s.groups) > s.max && s.lapses.Len() > 0 {
		if s.dropLocked(heap.Pop(&s.lapses).(lapse), true, now) {
			s.dropped++
		}
	}
	// Rewritten entries leave their old lapses behind: rebuild the heap
	// from the records when those outnumber them.
	if s.lapses.Len() > 2*(s.entries+len(s.groups))+64 {
		s.lapses = s.lapses[:0]
		for g, gr := range s.groups {
			s.lapses = append(s.lapses, lapse{g: g, at: gr.lapse, whole: true})
			for u, me := range gr.users {
				s.lapses = append(s.lapses, lapse{g: g, user: u, at: me.lapse})
			}
		}
		heap.Init(&s.lapses)
	}
}

// keptLocked is what g's record says about users.
func (s *memoryStore) keptLocked(g groupID, users []string, now time.Time) kept {
	gr := s.groups[g]
	if gr == nil {
		return kept{clock: s.clock}
	}
	k := kept{clock: s.clock, reset: gr.reset, gone: gr.gone, av: gr.av, failed: gr.failed, leased: now.Before(gr.leaseEnd)}
	for _, u := range users {
		if me, ok := gr.users[u]; ok {
			k.put(u, me.entry, len(users))
		}
	}
	return k
}

func (s *memoryStore) read(_ context.Context, g groupID, users []string, now time.Time) (kept, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidyLocked(now)
	return s.keptLocked(g, users, now), nil
}

func (s *memoryStore) learn(_ context.Context, g groupID, e entry, joined, av bool, users []string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidyLocked(now)
	gr := s.groupLocked(g)
	e.stamp, e.callback = s.tick(now), true
	for _, u := range users {
		s.putLocked(g, gr, u, e)
	}
	if joined {
		gr.gone = time.Time{}
	}
	if av {
		gr.av = e.expires
		s.keepLocked(g, gr, e.expires.Add(s.grace))
	}
	s.tidyLocked(now)
	return nil
}

func (s *memoryStore) destroy(_ context.Context, g groupID, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidyLocked(now)
	if gr := s.groups[g]; gr != nil {
		s.entries -= len(gr.users)
		delete(s.groups, g)
	}
	gr := s.groupLocked(g)
	gr.reset, gr.gone = s.tick(now), until
	s.keepLocked(g, gr, until.Add(s.grace))
	s.tidyLocked(now)
	return nil
}

func (s *memoryStore) claim(_ context.Context, g groupID, users []string, first bool, now, leaseEnd time.Time, token string) (claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidyLocked(now)
	gr := s.groupLocked(g)
	// A user answered meanwhile is neither queued nor taken, as in the
	// Redis store's claim.
	decided := now.Before(gr.gone) || now.Before(gr.av)
	answered := func(u string) bool {
		me, ok := gr.users[u]
		return decided || (ok && now.Before(me.expires))
	}
	leased := now.Before(gr.leaseEnd)
	if first || !leased {
		if gr.queue == nil {
			gr.queue = make(map[string]struct{}, len(users))
		}
		for _, u := range users {
			if !answered(u) {
				gr.queue[u] = struct{}{}
			}
		}
	}
	s.keepLocked(g, gr, leaseEnd)
	switch {
	case leased:
		return claim{}, nil
	case now.Before(gr.failed):
		return claim{stop: true}, nil
	}
	c := claim{lead: true, asked: s.clock, token: token, users: make([]string, 0, min(len(gr.queue), maxTake))}
	for u := range gr.queue {
		if len(c.users) == maxTake {
			break
		}
		if !answered(u) {
			c.users = append(c.users, u)
		}
		delete(gr.queue, u)
	}
	gr.lease, gr.leaseEnd = token, leaseEnd
	return c, nil
}

func (s *memoryStore) record(_ context.Context, g groupID, c claim, a answer, users []string, now time.Time) (kept, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidyLocked(now)
	gr := s.groups[g]
	if gr == nil && c.asked >= s.floor {
		gr = s.groupLocked(g)
	}
	if gr != nil && gr.reset <= c.asked {
		if !a.av.IsZero() {
			gr.av = a.av
			s.keepLocked(g, gr, a.av.Add(s.grace))
		}
		if !a.failed.IsZero() {
			gr.failed = a.failed
			s.keepLocked(g, gr, a.failed.Add(s.grace))
		}
		for u, e := range a.users {
			cur, had := gr.users[u]
			switch {
			case had && (cur.stamp > c.asked || (cur.callback && now.Before(cur.expires))):
				continue
			case !had && gr.floor > c.asked:
				continue
			}
			e.stamp, e.callback = c.asked, false
			s.putLocked(g, gr, u, e)
		}
	}
	if gr != nil && gr.lease == c.token {
		gr.lease, gr.leaseEnd = "", time.Time{}
	}
	s.tidyLocked(now)
	return s.keptLocked(g, users, now), nil
}

// lapse is when a user's entry, or a group's whole record, is forgotten.
type lapse struct {
	g     groupID
	user  string
	whole bool
	at    time.Time
}

// lapseHeap orders lapses soonest first.
type lapseHeap []lapse

func (h lapseHeap) Len() int           { return len(h) }
func (h lapseHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h lapseHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lapseHeap) Push(x any)        { *h = append(*h, x.(lapse)) }
func (h *lapseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	*h = old[:len(old)-1]
	return l
}
