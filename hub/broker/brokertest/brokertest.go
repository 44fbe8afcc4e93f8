// Package brokertest is the conformance suite every broker implementation
// passes: the in-process one and the Redis one run the same tests, so the
// hub can rely on one contract whichever broker it is given.
package brokertest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
)

// Factory returns a new broker for cfg, closed when t ends. Two brokers a
// factory returns in one test share their backend, as two nodes would.
type Factory func(t *testing.T, cfg broker.Config) broker.Broker

// Recorder is a [broker.Handler] that keeps what it is given.
type Recorder struct {
	mu         sync.Mutex
	pubs       []broker.Publication
	reconnects int
	changed    chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{}, 1)} }

// HandlePublication implements broker.Handler.
func (r *Recorder) HandlePublication(p broker.Publication) {
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.mu.Unlock()
	r.notify()
}

// HandleReconnect implements broker.Handler.
func (r *Recorder) HandleReconnect() {
	r.mu.Lock()
	r.reconnects++
	r.mu.Unlock()
	r.notify()
}

func (r *Recorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Publications returns a copy of what was received so far.
func (r *Recorder) Publications() []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs)
}

// Reconnects returns how often HandleReconnect was called.
func (r *Recorder) Reconnects() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// WaitFor waits until cond holds for what was received, or fails t after
// timeout.
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]broker.Publication) bool) []broker.Publication {
	t.Helper()
	deadline := time.After(timeout)
	for {
		pubs := r.Publications()
		if cond(pubs) {
			return pubs
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; have %d publications: %v", timeout, what, len(pubs), summary(pubs))
		}
	}
}

// WaitCount waits until n publications were received.
func (r *Recorder) WaitCount(t testing.TB, n int) []broker.Publication {
	t.Helper()
	return r.WaitFor(t, 10*time.Second, fmt.Sprintf("%d publications", n), func(p []broker.Publication) bool { return len(p) >= n })
}

func summary(pubs []broker.Publication) []string {
	var s []string
	for _, p := range pubs {
		s = append(s, fmt.Sprintf("%s/%s@%d", p.App, p.Channel, p.Offset))
	}
	return s
}

// Start runs b with a new Recorder until t ends.
func Start(t *testing.T, b broker.Broker) *Recorder {
	t.Helper()
	rec := NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return rec
}

// DefaultConfig is the configuration the suite runs with unless a test
// needs another.
var DefaultConfig = broker.Config{DedupeWindow: time.Minute, HistorySize: 100, HistoryTTL: time.Minute}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func msg(app, id string, data string, channels ...string) broker.Message {
	return broker.Message{App: app, ID: id, Channels: channels, Data: []byte(data)}
}

// Leftovers lists what the backend of b (and of the other brokers of the
// same factory) still holds about channels: the in-process broker's channel
// records, or a Redis's keys. Bounded state that is not per channel (the
// Redis data set's own id) is not listed.
type Leftovers func(t *testing.T, b broker.Broker) []string

// Run runs the conformance suite against brokers made by f; left tells
// what a broker keeps.
func Run(t *testing.T, f Factory, left Leftovers) {
	t.Run("PublishDeliversToSubscribedChannels", func(t *testing.T) { testDeliver(t, f) })
	t.Run("UnsubscribedChannelsAreNotDelivered", func(t *testing.T) { testUnsubscribe(t, f) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, f) })
	t.Run("DedupeWindowExpires", func(t *testing.T) { testDedupeExpiry(t, f) })
	t.Run("AppsAreIsolated", func(t *testing.T) { testApps(t, f) })
	t.Run("OffsetsPerChannelUnderConcurrency", func(t *testing.T) { testConcurrentOffsets(t, f) })
	t.Run("ResultsOfConcurrentPublishes", func(t *testing.T) { testConcurrentResults(t, f) })
	t.Run("DataIsPassedUnchanged", func(t *testing.T) { testData(t, f) })
	t.Run("HistoryPosition", func(t *testing.T) { testHistoryPosition(t, f) })
	t.Run("HistoryReplay", func(t *testing.T) { testHistoryReplay(t, f) })
	t.Run("HistoryOverflow", func(t *testing.T) { testHistoryOverflow(t, f) })
	t.Run("HistoryHoldKeepsRecentEvents", func(t *testing.T) { testHistoryHold(t, f) })
	t.Run("HistoryExpires", func(t *testing.T) { testHistoryExpiry(t, f) })
	t.Run("HistoryEntriesAgeOutOneByOne", func(t *testing.T) { testHistoryEntryAge(t, f) })
	t.Run("EmptyChannelsLeaveNothing", func(t *testing.T) { testEmptyChannelsLeaveNothing(t, f, left) })
	t.Run("SinceFromAnEmptyChannel", func(t *testing.T) { testSinceFromEmpty(t, f) })
	t.Run("SinceFromAnEmptyChannelOfLostState", func(t *testing.T) { testSinceFromEmptyLost(t, f) })
	t.Run("PositionsAreTagged", func(t *testing.T) { testTags(t, f) })
	t.Run("SinceTheStreamDoesNotHold", func(t *testing.T) { testSinceNotHeld(t, f) })
}

func testDeliver(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "group:G1"))
	require.NoError(t, b.Subscribe(ctx(t), "1", "app"))

	r1, err := b.Publish(ctx(t), msg("1", "e1", `{"n":1}`, "group:G1", "app"))
	require.NoError(t, err)
	require.False(t, r1.Duplicate)
	require.Len(t, r1.Positions, 2)
	r2, err := b.Publish(ctx(t), msg("1", "e2", `{"n":2}`, "group:G1", "app"))
	require.NoError(t, err)
	r3, err := b.Publish(ctx(t), msg("1", "e3", `{"n":3}`, "group:G2", "app"))
	require.NoError(t, err)

	pubs := rec.WaitCount(t, 5)
	byChannel := map[string][]broker.Publication{}
	for _, p := range pubs {
		assert.Equal(t, "1", p.App)
		byChannel[p.Channel] = append(byChannel[p.Channel], p)
	}
	require.Len(t, byChannel["group:G1"], 2, "group:G1 gets its two events")
	require.Len(t, byChannel["app"], 3, "app gets every event")
	require.Empty(t, byChannel["group:G2"], "group:G2 is not subscribed")

	g1 := byChannel["group:G1"]
	assert.Equal(t, `{"n":1}`, string(g1[0].Data))
	assert.Equal(t, `{"n":2}`, string(g1[1].Data))
	assert.Equal(t, r1.Positions[0], g1[0].Position, "delivered position is the published one")
	assert.Equal(t, r2.Positions[0], g1[1].Position)
	assert.Equal(t, g1[0].Offset+1, g1[1].Offset, "offsets increase by one per channel")
	assert.Equal(t, g1[0].Epoch, g1[1].Epoch)
	assert.NotEmpty(t, g1[0].Epoch)

	app := byChannel["app"]
	for i, p := range app {
		assert.Equal(t, app[0].Offset+uint64(i), p.Offset, "app channel offsets are contiguous")
	}
	assert.Equal(t, r3.Positions[1], app[2].Position)
}

func testUnsubscribe(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "group:A"))
	require.NoError(t, b.Subscribe(ctx(t), "1", "group:B"))
	_, err := b.Publish(ctx(t), msg("1", "a1", "a1", "group:A"))
	require.NoError(t, err)
	rec.WaitCount(t, 1)

	require.NoError(t, b.Unsubscribe(ctx(t), "1", "group:A"))
	_, err = b.Publish(ctx(t), msg("1", "a2", "a2", "group:A"))
	require.NoError(t, err)
	// B is published after A on the same connection, so once B arrives,
	// A would have arrived before it had it been delivered.
	_, err = b.Publish(ctx(t), msg("1", "b1", "b1", "group:B"))
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 2)
	require.Len(t, pubs, 2)
	assert.Equal(t, "a1", string(pubs[0].Data))
	assert.Equal(t, "b1", string(pubs[1].Data))
}

func testDedupe(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "user:u"))
	first, err := b.Publish(ctx(t), msg("1", "same", "x", "user:u"))
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	again, err := b.Publish(ctx(t), msg("1", "same", "x", "user:u"))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Positions, again.Positions, "a duplicate gives the first publication's positions")
	other, err := b.Publish(ctx(t), msg("2", "same", "y", "user:u"))
	require.NoError(t, err)
	assert.False(t, other.Duplicate, "the same id in another app is another event")
	_, err = b.Publish(ctx(t), msg("1", "next", "z", "user:u"))
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 2)
	require.Len(t, pubs, 2)
	assert.Equal(t, "x", string(pubs[0].Data))
	assert.Equal(t, "z", string(pubs[1].Data))
	assert.Equal(t, pubs[0].Offset+1, pubs[1].Offset, "a duplicate takes no offset")
}

func testDedupeExpiry(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.DedupeWindow = 50 * time.Millisecond
	b := f(t, cfg)
	Start(t, b)
	r, err := b.Publish(ctx(t), msg("1", "id", "x", "app"))
	require.NoError(t, err)
	require.False(t, r.Duplicate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err = b.Publish(ctx(t), msg("1", "id", "x", "app"))
		require.NoError(t, err)
		if !r.Duplicate {
			break
		}
		require.True(t, time.Now().Before(deadline), "the id is still a duplicate long after its window")
		time.Sleep(20 * time.Millisecond)
	}

	cfg.DedupeWindow = 0
	b = f(t, cfg)
	Start(t, b)
	for range 2 {
		r, err = b.Publish(ctx(t), msg("1", "id", "x", "app"))
		require.NoError(t, err)
		require.False(t, r.Duplicate, "a zero window disables dedupe")
	}
}

func testApps(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "100", "group:G"))
	ra, err := b.Publish(ctx(t), msg("200", "b1", "other app", "group:G"))
	require.NoError(t, err)
	rb, err := b.Publish(ctx(t), msg("100", "a1", "this app", "group:G"))
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 1)
	require.Len(t, pubs, 1)
	assert.Equal(t, "this app", string(pubs[0].Data))
	assert.Equal(t, "100", pubs[0].App)
	assert.Equal(t, uint64(1), ra.Positions[0].Offset, "each app's channel counts on its own")
	assert.Equal(t, uint64(1), rb.Positions[0].Offset)
}

func testConcurrentOffsets(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	channels := []string{"group:C1", "group:C2", "app"}
	for _, c := range channels {
		require.NoError(t, b.Subscribe(ctx(t), "1", c))
	}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ch := channels[i%2]
				_, err := b.Publish(ctx(t), msg("1", fmt.Sprintf("w%d-%d", w, i), "d", ch, "app"))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	pubs := rec.WaitCount(t, 2*workers*each)
	next := map[string]uint64{}
	for _, p := range pubs {
		if next[p.Channel] == 0 {
			next[p.Channel] = p.Offset
		}
		require.Equal(t, next[p.Channel], p.Offset, "channel %s delivered out of order or with a gap", p.Channel)
		next[p.Channel]++
	}
	assert.Len(t, pubs, 2*workers*each, "nothing delivered twice")
}

// Publications made at the same time (which a broker may send together)
// each get their own result: the positions their event was delivered at,
// and Duplicate only for a repeated ID, with the first one's positions.
func testConcurrentResults(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	channels := []string{"group:R1", "group:R2", "app"}
	for _, c := range channels {
		require.NoError(t, b.Subscribe(ctx(t), "1", c))
	}
	const workers, each = 8, 20
	var mu sync.Mutex
	results := map[string]broker.Result{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				chs := []string{channels[(w+i)%2], "app"}
				if i%5 == 4 {
					chs = chs[:1] // some with one channel only
				}
				r, err := b.Publish(ctx(t), msg("1", id, id, chs...))
				if !assert.NoError(t, err) {
					return
				}
				assert.False(t, r.Duplicate, "first publish of %s", id)
				again, err := b.Publish(ctx(t), msg("1", id, id, chs...))
				if assert.NoError(t, err) {
					assert.True(t, again.Duplicate, "second publish of %s", id)
					assert.Equal(t, r.Positions, again.Positions, "a duplicate has the first one's positions")
				}
				mu.Lock()
				results[id] = r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := 0
	for i := range each {
		if i%5 == 4 {
			want += workers
		} else {
			want += 2 * workers
		}
	}
	pubs := rec.WaitCount(t, want)
	require.Len(t, pubs, want, "nothing delivered twice")
	for _, p := range pubs {
		id := string(p.Data)
		r, ok := results[id]
		require.True(t, ok, "delivered %q, which nobody published", id)
		i := 0
		if p.Channel == "app" {
			i = 1
		}
		require.Less(t, i, len(r.Positions), "%s delivered on %s", id, p.Channel)
		assert.Equal(t, p.Offset, r.Positions[i].Offset, "%s on %s: offset delivered against offset returned", id, p.Channel)
		assert.Equal(t, p.Epoch, r.Positions[i].Epoch, "%s on %s", id, p.Channel)
	}
}

func testData(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "user:a b:c"))
	data := "{\"text\": \"spaces  and\\nnewlines\", \"bin\": \"\x00\xff\"} trailing "
	_, err := b.Publish(ctx(t), msg("1", "d", data, "user:a b:c"))
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 1)
	assert.Equal(t, data, string(pubs[0].Data))
	assert.Equal(t, "user:a b:c", pubs[0].Channel)
}

func publishN(t *testing.T, b broker.Broker, app, channel string, from, to int) []broker.Position {
	t.Helper()
	var out []broker.Position
	for i := from; i <= to; i++ {
		r, err := b.Publish(ctx(t), msg(app, fmt.Sprintf("%s-%d", channel, i), fmt.Sprint(i), channel))
		require.NoError(t, err)
		out = append(out, r.Positions[0])
	}
	return out
}

// A new channel has a position (offset 0) that its first publication
// follows.
func testHistoryPosition(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	Start(t, b)
	h, err := b.History(ctx(t), "1", "group:new", nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), h.Latest.Offset)
	assert.NotEmpty(t, h.Latest.Epoch)
	assert.Nil(t, h.Publications)
	again, err := b.History(ctx(t), "1", "group:new", &h.Latest)
	require.NoError(t, err)
	assert.True(t, again.Recovered, "reading does not move the position")
	assert.Empty(t, again.Publications)
	assert.Equal(t, uint64(0), again.Latest.Offset)

	pos := publishN(t, b, "1", "group:new", 1, 1)
	assert.Equal(t, uint64(1), pos[0].Offset)
	assert.True(t, broker.Follows(h.Latest, pos[0], ""), "the first publication follows the empty channel's position")
	h, err = b.History(ctx(t), "1", "group:new", nil)
	require.NoError(t, err)
	assert.Equal(t, pos[0], h.Latest)
	pos2 := publishN(t, b, "1", "group:new", 2, 2)
	assert.Equal(t, broker.Position{Offset: 2, Epoch: pos[0].Epoch, Tag: broker.NextTag(pos[0].Tag, "group:new-2")}, pos2[0], "later ones continue its epoch")
	assert.True(t, broker.Follows(pos[0], pos2[0], pos[0].Tag))
}

func testHistoryReplay(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	Start(t, b)
	start, err := b.History(ctx(t), "1", "group:R", nil)
	require.NoError(t, err)
	pos := publishN(t, b, "1", "group:R", 1, 5)
	publishN(t, b, "1", "group:other", 1, 2)

	for _, tc := range []struct {
		name      string
		since     broker.Position
		want      []string
		recovered bool
	}{
		{"from the position before", start.Latest, []string{"1", "2", "3", "4", "5"}, true},
		{"from the start of the epoch", broker.Position{}, []string{"1", "2", "3", "4", "5"}, true},
		{"from the middle", pos[2], []string{"4", "5"}, true},
		{"from the latest", pos[4], nil, true},
		{"from the future", broker.Position{Offset: 9, Epoch: pos[0].Epoch}, nil, false},
		{"from another epoch", broker.Position{Offset: 2, Epoch: "old"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := b.History(ctx(t), "1", "group:R", &tc.since)
			require.NoError(t, err)
			assert.Equal(t, tc.recovered, h.Recovered)
			assert.Equal(t, pos[4], h.Latest)
			var got []string
			for i, p := range h.Publications {
				got = append(got, string(p.Data))
				assert.Equal(t, "group:R", p.Channel)
				assert.Equal(t, "1", p.App)
				if i > 0 {
					assert.Equal(t, h.Publications[i-1].Offset+1, p.Offset)
				}
				assert.Equal(t, pos[0].Epoch, p.Epoch)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func testHistoryOverflow(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.HistorySize = 5
	b := f(t, cfg)
	Start(t, b)
	pos := publishN(t, b, "1", "group:O", 1, 8)
	h, err := b.History(ctx(t), "1", "group:O", &pos[0])
	require.NoError(t, err)
	assert.False(t, h.Recovered, "events 2 and 3 are gone")
	assert.Empty(t, h.Publications)
	assert.Equal(t, pos[7], h.Latest, "the current position, to go on from")

	h, err = b.History(ctx(t), "1", "group:O", &pos[2])
	require.NoError(t, err)
	assert.True(t, h.Recovered, "4..8 are all held")
	require.Len(t, h.Publications, 5)
	assert.Equal(t, "4", string(h.Publications[0].Data))
}

// With a hold, a burst beyond the history size is kept while it is
// recent, up to HistoryHoldFactor times the size; once older than the
// hold, it goes as later events come.
func testHistoryHold(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.HistorySize = 5
	// Long enough for the bursts below to be published within it, also
	// with the race detector on a busy machine.
	cfg.HistoryHold = 2 * time.Second
	b := f(t, cfg)
	Start(t, b)
	pos := publishN(t, b, "1", "group:H", 1, 12)
	h, err := b.History(ctx(t), "1", "group:H", &pos[0])
	require.NoError(t, err)
	assert.True(t, h.Recovered, "a burst of 12 on a history of 5 is held while recent")
	require.Len(t, h.Publications, 11)
	assert.Equal(t, "2", string(h.Publications[0].Data))

	capped := publishN(t, b, "1", "group:HC", 1, 5*broker.HistoryHoldFactor+10)
	h, err = b.History(ctx(t), "1", "group:HC", &capped[8])
	require.NoError(t, err)
	assert.False(t, h.Recovered, "no more than %d are held", 5*broker.HistoryHoldFactor)
	h, err = b.History(ctx(t), "1", "group:HC", &capped[9])
	require.NoError(t, err)
	assert.True(t, h.Recovered)
	assert.Len(t, h.Publications, 5*broker.HistoryHoldFactor)

	time.Sleep(cfg.HistoryHold + 200*time.Millisecond)
	later := publishN(t, b, "1", "group:H", 13, 22)
	h, err = b.History(ctx(t), "1", "group:H", &pos[11])
	require.NoError(t, err)
	assert.True(t, h.Recovered, "the recent ten are held")
	require.Len(t, h.Publications, 10)
	h, err = b.History(ctx(t), "1", "group:H", &pos[10])
	require.NoError(t, err)
	assert.False(t, h.Recovered, "the old twelve went as the ten came")
	assert.Equal(t, later[9], h.Latest)
}

func testHistoryExpiry(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.HistoryTTL = 50 * time.Millisecond
	b := f(t, cfg)
	Start(t, b)
	start, err := b.History(ctx(t), "1", "group:E", nil)
	require.NoError(t, err)
	publishN(t, b, "1", "group:E", 1, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := b.History(ctx(t), "1", "group:E", &start.Latest)
		require.NoError(t, err)
		if !h.Recovered {
			assert.Empty(t, h.Publications)
			break
		}
		require.Len(t, h.Publications, 2)
		require.True(t, time.Now().Before(deadline), "history outlived its TTL by far")
		time.Sleep(20 * time.Millisecond)
	}
}

// On a busy channel each entry still leaves history at its own age: the
// TTL is per event, not per channel.
func testHistoryEntryAge(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.HistoryTTL = 300 * time.Millisecond
	b := f(t, cfg)
	Start(t, b)
	start, err := b.History(ctx(t), "1", "group:A", nil)
	require.NoError(t, err)
	first := publishN(t, b, "1", "group:A", 1, 1)
	time.Sleep(400 * time.Millisecond)
	publishN(t, b, "1", "group:A", 2, 2)
	h, err := b.History(ctx(t), "1", "group:A", &start.Latest)
	require.NoError(t, err)
	assert.False(t, h.Recovered, "event 1 is older than the TTL")
	h, err = b.History(ctx(t), "1", "group:A", &first[0])
	require.NoError(t, err)
	assert.True(t, h.Recovered)
	require.Len(t, h.Publications, 1)
	assert.Equal(t, "2", string(h.Publications[0].Data))
}

// Subscribing to channels that never get a publication, reading their
// position (as a subscribe does), and leaving them leaves nothing behind:
// a client may name as many channels as it likes.
func testEmptyChannelsLeaveNothing(t *testing.T, f Factory, left Leftovers) {
	b := f(t, DefaultConfig)
	Start(t, b)
	const n = 200
	for i := range n {
		ch := fmt.Sprint("group:E", i)
		require.NoError(t, b.Subscribe(ctx(t), "1", ch))
		h, err := b.History(ctx(t), "1", ch, nil)
		require.NoError(t, err)
		_, err = b.History(ctx(t), "1", ch, &h.Latest)
		require.NoError(t, err)
		require.NoError(t, b.Unsubscribe(ctx(t), "1", ch))
		_, err = b.History(ctx(t), "1", fmt.Sprint("user:read-only-", i), &broker.Position{})
		require.NoError(t, err)
	}
	kept := left(t, b)
	assert.Zero(t, len(kept), "%d empty channels left %d records behind, such as %v", 2*n, len(kept), kept[:min(len(kept), 3)])

	// A channel with publications is kept, subscribed or not.
	publishN(t, b, "1", "group:E7", 1, 1)
	assert.NotEmpty(t, left(t, b), "a channel with history is kept")
}

// A client that subscribed to an empty channel and comes back with the
// offset it got is recovered: with nothing while nothing was published,
// with every publication since, in order, once there were some. Live
// deliveries follow the empty channel's position without a gap.
func testSinceFromEmpty(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "group:S"))
	empty, err := b.History(ctx(t), "1", "group:S", nil)
	require.NoError(t, err)
	require.NoError(t, b.Unsubscribe(ctx(t), "1", "group:S"))

	h, err := b.History(ctx(t), "1", "group:S", &empty.Latest)
	require.NoError(t, err)
	assert.True(t, h.Recovered, "nothing was published")
	assert.Empty(t, h.Publications)

	require.NoError(t, b.Subscribe(ctx(t), "1", "group:S"))
	again, err := b.History(ctx(t), "1", "group:S", &empty.Latest)
	require.NoError(t, err)
	require.True(t, again.Recovered)
	pos := publishN(t, b, "1", "group:S", 1, 3)
	live := rec.WaitCount(t, 3)
	assert.True(t, broker.Follows(again.Latest, live[0].Position, live[0].Prev), "the first live publication follows the position read")
	for i := 1; i < len(live); i++ {
		assert.True(t, broker.Follows(live[i-1].Position, live[i].Position, live[i].Prev))
	}

	for _, since := range []broker.Position{empty.Latest, again.Latest} {
		h, err = b.History(ctx(t), "1", "group:S", &since)
		require.NoError(t, err)
		assert.True(t, h.Recovered, "from %v", since)
		assert.Equal(t, pos[2], h.Latest)
		require.Len(t, h.Publications, 3)
		for i, p := range h.Publications {
			assert.Equal(t, pos[i], p.Position, "in order")
			assert.Equal(t, fmt.Sprint(i+1), string(p.Data))
		}
	}
	// An offset 0 of an empty channel is no starting point in a stream.
	h, err = b.History(ctx(t), "1", "group:S", &broker.Position{Offset: 1, Epoch: empty.Latest.Epoch})
	require.NoError(t, err)
	assert.False(t, h.Recovered)
}

// The position of an empty channel read before the backend lost its state
// (the in-process broker restarted, Redis lost its data) cannot be
// continued: what was published in between is gone.
func testSinceFromEmptyLost(t *testing.T, f Factory) {
	before := f(t, DefaultConfig)
	Start(t, before)
	empty, err := before.History(ctx(t), "1", "group:L", nil)
	require.NoError(t, err)

	b := f(t, DefaultConfig) // a fresh backend, as after a restart
	Start(t, b)
	publishN(t, b, "1", "group:L", 1, 2)
	h, err := b.History(ctx(t), "1", "group:L", &empty.Latest)
	require.NoError(t, err)
	assert.False(t, h.Recovered)
	assert.Empty(t, h.Publications)
}

// Each publication's position carries a Tag chained from the one before
// it (broker.NextTag over the message ID), the same in the result, live,
// in history and in the latest position; a publication names the Tag of
// the one before it (Prev), so that a node can tell it follows what it
// sent. The text form carries the Tag and reads back the same.
func testTags(t *testing.T, f Factory) {
	b := f(t, DefaultConfig)
	rec := Start(t, b)
	require.NoError(t, b.Subscribe(ctx(t), "1", "group:T"))
	pos := publishN(t, b, "1", "group:T", 1, 3)
	live := rec.WaitCount(t, 3)
	prev := ""
	for i, p := range pos {
		require.Equal(t, broker.NextTag(prev, fmt.Sprintf("group:T-%d", i+1)), p.Tag, "tag %d", i+1)
		assert.Equal(t, p, live[i].Position, "delivered with the tag it was published with")
		assert.Equal(t, prev, live[i].Prev, "live %d names the tag before it", i+1)
		got, err := broker.ParsePosition(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, got, "%s reads back", p)
		prev = p.Tag
	}
	assert.NotEqual(t, pos[0].Tag, pos[1].Tag)
	h, err := b.History(ctx(t), "1", "group:T", &broker.Position{})
	require.NoError(t, err)
	assert.Equal(t, pos[2], h.Latest, "the latest position carries its tag")
	require.Len(t, h.Publications, 3)
	for i, p := range h.Publications {
		assert.Equal(t, pos[i], p.Position, "history %d", i+1)
		assert.Equal(t, live[i].Prev, p.Prev, "history %d names the tag before it", i+1)
	}
	assert.True(t, h.Holds(pos[1]))
	assert.False(t, h.Holds(broker.Position{Offset: 2, Epoch: pos[1].Epoch, Tag: "0123456789ab"}))

	again, err := b.Publish(ctx(t), msg("1", "group:T-1", "1", "group:T"))
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	assert.Equal(t, pos[0], again.Positions[0], "a duplicate answers the first one's tagged position")
}

// A since whose offset the stream has, with another Tag, names an event
// the stream does not hold at that offset (Redis handed the offset out
// again after losing writes): it is not recovered, wherever it lies in
// history, as a since beyond the latest offset is not. A since without a
// Tag (the older form) is taken by its offset.
func testSinceNotHeld(t *testing.T, f Factory) {
	cfg := DefaultConfig
	cfg.HistorySize = 4
	b := f(t, cfg)
	Start(t, b)
	pos := publishN(t, b, "1", "group:N", 1, 6) // history holds 3..6
	other := func(p broker.Position) *broker.Position {
		p.Tag = "0123456789ab"
		return &p
	}
	untagged := func(p broker.Position) *broker.Position {
		p.Tag = ""
		return &p
	}
	for _, tc := range []struct {
		name      string
		since     *broker.Position
		want      int
		recovered bool
	}{
		{"the latest", &pos[5], 0, true},
		{"the latest, another tag", other(pos[5]), 0, false},
		{"in history", &pos[3], 2, true},
		{"in history, another tag", other(pos[3]), 0, false},
		{"right before history", &pos[1], 4, true},
		{"right before history, another tag", other(pos[1]), 0, false},
		{"in history, no tag", untagged(pos[3]), 2, true},
		{"beyond the latest", &broker.Position{Offset: 7, Epoch: pos[0].Epoch, Tag: "0123456789ab"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := b.History(ctx(t), "1", "group:N", tc.since)
			require.NoError(t, err)
			assert.Equal(t, tc.recovered, h.Recovered)
			assert.Len(t, h.Publications, tc.want)
			assert.Equal(t, pos[5], h.Latest, "the position to go on from")
		})
	}
}
