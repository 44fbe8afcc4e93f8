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
// across restarts. Epochs start with a value drawn when the broker is
// created, so offsets handed out before a restart are recognised as
// belonging to another epoch afterwards.
//
// A channel is recorded while it is subscribed or has a stream (a
// publication within the stream's life, see [Broker]); a channel that is
// neither is forgotten at once on Unsubscribe, or by Run's sweep.
type Memory struct {
	cfg   Config
	now   func() time.Time
	epoch string // prefix of every epoch of this broker, and its data set id

	running chan struct{} // closed once Run has attached the handler

	mu       sync.Mutex
	handler  Handler
	channels map[chanKey]*memChannel
	gen      uint64                   // streams started so far, makes epochs unique
	seen     map[dedupeKey][]Position // the positions the first publication got
	seenFIFO []dedupeEntry            // seen in insertion (= expiry) order, from seenHead
	seenHead int
}

type chanKey struct{ app, channel string }

type dedupeKey struct{ app, id string }

type dedupeEntry struct {
	key     dedupeKey
	expires time.Time
}

type memChannel struct {
	// pos is the stream's latest position; its Epoch is "" while the
	// channel has no stream.
	pos        Position
	start      time.Time // when the stream started
	subscribed bool
	// history holds the entries kept, oldest first (see record).
	history []memEntry
	last    time.Time // last publication
}

// record appends e to the history and drops what the history no longer
// keeps: beyond size, the entries older than hold, and beyond limit all.
// The slice is cut from the front, so appending reuses or grows its array
// the way append does: no copy per publication.
func (ch *memChannel) record(e memEntry, size, limit int, hold time.Duration) {
	ch.history = append(ch.history, e)
	n := 0
	for len(ch.history)-n > size && (len(ch.history)-n > limit || hold <= 0 || e.at.Sub(ch.history[n].at) >= hold) {
		ch.history[n] = memEntry{} // let the publication go
		n++
	}
	ch.history = ch.history[n:]
}

// held returns the entries no older than ttl, oldest first.
func (ch *memChannel) held(now time.Time, ttl time.Duration) []Publication {
	out := make([]Publication, 0, len(ch.history))
	for _, e := range ch.history {
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

// life is how long a stream outlives its last publication while nobody
// subscribes.
func (m *Memory) life() time.Duration { return max(memoryMetaTTL, m.cfg.HistoryTTL) }

// live reports whether ch has a stream that goes on: one started, and
// subscribed or not quiet past its life.
func (m *Memory) live(ch *memChannel, now time.Time) bool {
	return ch.pos.Epoch != "" && (ch.subscribed || now.Sub(ch.last) <= m.life())
}

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
		seen:     make(map[dedupeKey][]Position),
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
		if first, ok := m.seen[k]; ok {
			return Result{Duplicate: true, Positions: first}, nil
		}
	}
	res := Result{Positions: make([]Position, len(msg.Channels))}
	if m.cfg.DedupeWindow > 0 {
		exp := now.Add(m.cfg.DedupeWindow)
		k := dedupeKey{msg.App, msg.ID}
		m.seen[k] = res.Positions // filled in below
		m.seenFIFO = append(m.seenFIFO, dedupeEntry{k, exp})
	}
	for i, name := range msg.Channels {
		ch := m.stream(chanKey{msg.App, name}, now)
		prev := ch.pos.Tag
		ch.pos.Offset++
		ch.pos.Tag = NextTag(prev, msg.ID)
		ch.last = now
		pub := Publication{App: msg.App, Channel: name, Position: ch.pos, Prev: prev, Data: msg.Data}
		res.Positions[i] = ch.pos
		if m.cfg.HistorySize > 0 {
			ch.record(memEntry{pub, now}, m.cfg.HistorySize, m.cfg.historyCap(), m.cfg.HistoryHold)
		}
		if ch.subscribed && m.handler != nil {
			m.handler.HandlePublication(pub)
		}
	}
	return res, nil
}

// stream returns the state of k for a publication, starting a stream with
// a fresh epoch when k has none that goes on.
func (m *Memory) stream(k chanKey, now time.Time) *memChannel {
	ch := m.channels[k]
	if ch != nil && m.live(ch, now) {
		return ch
	}
	if ch == nil {
		ch = &memChannel{}
		m.channels[k] = ch
	}
	m.gen++
	ch.pos = Position{Epoch: m.epoch + strconv.FormatUint(m.gen, 36)}
	ch.start, ch.last = now, now
	ch.history = nil
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
	k := chanKey{app, channel}
	ch := m.channels[k]
	if ch == nil {
		ch = &memChannel{}
		m.channels[k] = ch
	}
	ch.subscribed = true
	return nil
}

// Unsubscribe implements [Broker]. A channel left without a stream is
// forgotten.
func (m *Memory) Unsubscribe(_ context.Context, app, channel string) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	k := chanKey{app, channel}
	if ch := m.channels[k]; ch != nil {
		ch.subscribed = false
		if !m.live(ch, now) {
			delete(m.channels, k)
		}
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
// drops the channels nobody subscribes to whose stream has ended, so
// memory follows the channels in use rather than every channel ever seen.
func (m *Memory) sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireSeen(now)
	for k, ch := range m.channels {
		switch {
		case !m.live(ch, now) && !ch.subscribed:
			delete(m.channels, k)
		case m.cfg.HistoryTTL > 0 && now.Sub(ch.last) > m.cfg.HistoryTTL:
			ch.history = nil
		}
	}
}

// Ready implements [Broker]; the in-process broker is always ready.
func (m *Memory) Ready() error { return nil }

// Close implements [Broker].
func (m *Memory) Close() error { return nil }

// History implements [Broker]. It records nothing: a channel without a
// stream reports the position of an empty channel.
func (m *Memory) History(ctx context.Context, app, channel string, since *Position) (History, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := streamState{run: m.epoch, now: now, life: m.life()}
	if ch := m.channels[chanKey{app, channel}]; ch != nil && m.live(ch, now) {
		st.latest, st.start = ch.pos, ch.start
		if since != nil {
			st.held = ch.held(now, m.cfg.HistoryTTL)
		}
	} else {
		st.latest = Position{Epoch: emptyEpoch(m.epoch, now)}
	}
	h := History{Latest: st.latest}
	if since == nil {
		return h, nil
	}
	h.Publications, h.Recovered = st.replay(*since)
	return h, nil
}
