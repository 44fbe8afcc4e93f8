package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Memory is the in-process broker: one node, nothing shared, nothing kept
// across restarts. Each channel's epoch starts with a value drawn when the
// broker is created, so offsets handed out before a restart are recognised
// as belonging to another epoch afterwards.
type Memory struct {
	cfg   Config
	now   func() time.Time
	epoch string // prefix of every channel epoch of this broker

	running chan struct{} // closed once Run has attached the handler

	mu       sync.Mutex
	handler  Handler
	channels map[chanKey]*memChannel
	gen      uint64 // channels created so far, makes epochs unique
	seen     map[dedupeKey]time.Time
	seenFIFO []dedupeEntry // seen in insertion (= expiry) order, from seenHead
	seenHead int
}

type chanKey struct{ app, channel string }

type dedupeKey struct{ app, id string }

type dedupeEntry struct {
	key     dedupeKey
	expires time.Time
}

type memChannel struct {
	pos        Position
	subscribed bool
	// history is a ring of at most cfg.HistorySize entries; the oldest is
	// at histStart once the ring is full.
	history   []memEntry
	histStart int
	last      time.Time // last publication
}

func (ch *memChannel) record(e memEntry, size int) {
	if len(ch.history) < size {
		ch.history = append(ch.history, e)
		return
	}
	ch.history[ch.histStart] = e
	ch.histStart = (ch.histStart + 1) % size
}

// held returns the entries no older than ttl, oldest first.
func (ch *memChannel) held(now time.Time, ttl time.Duration) []Publication {
	out := make([]Publication, 0, len(ch.history))
	for i := range ch.history {
		e := ch.history[(ch.histStart+i)%len(ch.history)]
		if ttl <= 0 || now.Sub(e.at) <= ttl {
			out = append(out, e.pub)
		}
	}
	return out
}

type memEntry struct {
	pub Publication
	at  time.Time
}

// memoryMetaTTL is how long a quiet channel keeps its offsets, as
// RedisConfig.MetaTTL does by default.
const memoryMetaTTL = 24 * time.Hour

// NewMemory returns an in-process broker.
func NewMemory(cfg Config) *Memory {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Memory{
		cfg:      cfg,
		now:      time.Now,
		epoch:    hex.EncodeToString(b[:]),
		running:  make(chan struct{}),
		channels: make(map[chanKey]*memChannel),
		seen:     make(map[dedupeKey]time.Time),
	}
}

// Publish implements [Broker]. It delivers to the handler synchronously, so
// the handler sees every channel's publications in offset order.
func (m *Memory) Publish(_ context.Context, msg Message) (Result, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.DedupeWindow > 0 {
		m.expireSeen(now)
		k := dedupeKey{msg.App, msg.ID}
		if _, ok := m.seen[k]; ok {
			return Result{Duplicate: true}, nil
		}
		exp := now.Add(m.cfg.DedupeWindow)
		m.seen[k] = exp
		m.seenFIFO = append(m.seenFIFO, dedupeEntry{k, exp})
	}
	res := Result{Positions: make([]Position, len(msg.Channels))}
	for i, name := range msg.Channels {
		ch := m.channel(chanKey{msg.App, name}, now)
		ch.pos.Offset++
		ch.last = now
		pub := Publication{App: msg.App, Channel: name, Position: ch.pos, Data: msg.Data}
		res.Positions[i] = ch.pos
		if m.cfg.HistorySize > 0 {
			ch.record(memEntry{pub, now}, m.cfg.HistorySize)
		}
		if ch.subscribed && m.handler != nil {
			m.handler.HandlePublication(pub)
		}
	}
	return res, nil
}

// channel returns the state of k, creating it with a fresh epoch when it is
// new or when it has been quiet past the meta TTL and is not subscribed.
func (m *Memory) channel(k chanKey, now time.Time) *memChannel {
	ch := m.channels[k]
	if ch != nil && (ch.subscribed || now.Sub(ch.last) <= max(memoryMetaTTL, m.cfg.HistoryTTL)) {
		return ch
	}
	sub := ch != nil && ch.subscribed
	m.gen++
	ch = &memChannel{
		pos:        Position{Epoch: m.epoch + strconv.FormatUint(m.gen, 36)},
		subscribed: sub,
		last:       now,
	}
	m.channels[k] = ch
	return ch
}

// expireSeen forgets the ids whose window has passed. The queue is
// compacted only once its dead head is as long as its live tail, so each
// entry is moved at most once on average.
func (m *Memory) expireSeen(now time.Time) {
	for m.seenHead < len(m.seenFIFO) && !m.seenFIFO[m.seenHead].expires.After(now) {
		delete(m.seen, m.seenFIFO[m.seenHead].key)
		m.seenFIFO[m.seenHead] = dedupeEntry{}
		m.seenHead++
	}
	if m.seenHead > 0 && m.seenHead >= len(m.seenFIFO)-m.seenHead {
		n := copy(m.seenFIFO, m.seenFIFO[m.seenHead:])
		m.seenFIFO = m.seenFIFO[:n]
		m.seenHead = 0
	}
}

// Subscribe implements [Broker]. Like every broker it waits for Run, which
// brings the handler that deliveries go to.
func (m *Memory) Subscribe(ctx context.Context, app, channel string) error {
	select {
	case <-m.running:
	case <-ctx.Done():
		return fmt.Errorf("%w: subscribe %s: %w", ErrUnavailable, channel, ctx.Err())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.channel(chanKey{app, channel}, m.now()).subscribed = true
	return nil
}

// Unsubscribe implements [Broker].
func (m *Memory) Unsubscribe(_ context.Context, app, channel string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.channels[chanKey{app, channel}]; ch != nil {
		ch.subscribed = false
	}
	return nil
}

// Run implements [Broker]. It sweeps channels whose history has expired.
func (m *Memory) Run(ctx context.Context, h Handler) error {
	m.mu.Lock()
	m.handler = h
	m.mu.Unlock()
	close(m.running)
	defer func() {
		m.mu.Lock()
		m.handler = nil
		m.mu.Unlock()
	}()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			m.sweep()
		}
	}
}

// sweep frees the history of channels quiet past the history TTL, and
// drops the channels nobody subscribes to that are quiet past the meta
// TTL, so memory follows the channels in use rather than every channel
// ever seen.
func (m *Memory) sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireSeen(now)
	for k, ch := range m.channels {
		quiet := now.Sub(ch.last)
		switch {
		case !ch.subscribed && quiet > max(memoryMetaTTL, m.cfg.HistoryTTL):
			delete(m.channels, k)
		case m.cfg.HistoryTTL > 0 && quiet > m.cfg.HistoryTTL:
			ch.history, ch.histStart = nil, 0
		}
	}
}

// Ready implements [Broker]; the in-process broker is always ready.
func (m *Memory) Ready() error { return nil }

// Close implements [Broker].
func (m *Memory) Close() error { return nil }

// History implements [Broker].
func (m *Memory) History(ctx context.Context, app, channel string, since *Position) (History, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.channel(chanKey{app, channel}, now)
	h := History{Latest: ch.pos}
	if since == nil {
		return h, nil
	}
	h.Publications, h.Recovered = replayAfter(*since, ch.pos, ch.held(now, m.cfg.HistoryTTL))
	return h, nil
}
