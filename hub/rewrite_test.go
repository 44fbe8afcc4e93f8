package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// rewindBroker is a broker whose streams can be rewound, as a Redis
// replica promoted without its primary's last writes goes on from an
// older offset under the same epoch. It keeps every publication as
// history; its tags are the real brokers' (broker.NextTag).
type rewindBroker struct {
	mu      sync.Mutex
	streams map[string][]broker.Publication // by channel, of one app
	subs    map[string]bool
	h       broker.Handler
	running chan struct{}
}

const rewindEpoch = "ep"

func newRewindBroker() *rewindBroker {
	return &rewindBroker{streams: map[string][]broker.Publication{}, subs: map[string]bool{}, running: make(chan struct{})}
}

func (b *rewindBroker) top(ch string) broker.Position {
	s := b.streams[ch]
	if len(s) == 0 {
		return broker.Position{Epoch: rewindEpoch}
	}
	return s[len(s)-1].Position
}

func (b *rewindBroker) Publish(_ context.Context, m broker.Message) (broker.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res := broker.Result{}
	for _, ch := range m.Channels {
		prev := b.top(ch)
		p := broker.Publication{App: m.App, Channel: ch, Data: m.Data, Prev: prev.Tag,
			Position: broker.Position{Offset: prev.Offset + 1, Epoch: rewindEpoch, Tag: broker.NextTag(prev.Tag, m.ID)}}
		b.streams[ch] = append(b.streams[ch], p)
		res.Positions = append(res.Positions, p.Position)
		if b.subs[ch] {
			b.h.HandlePublication(p)
		}
	}
	return res, nil
}

// rewind keeps the first n publications of ch, as a promoted replica that
// had only those.
func (b *rewindBroker) rewind(ch string, n int) {
	b.mu.Lock()
	b.streams[ch] = b.streams[ch][:n]
	b.mu.Unlock()
}

// redeliver delivers ch's publication at off again, as a late copy does.
func (b *rewindBroker) redeliver(ch string, off uint64) {
	b.mu.Lock()
	p := b.streams[ch][off-1]
	b.mu.Unlock()
	b.h.HandlePublication(p)
}

func (b *rewindBroker) Subscribe(ctx context.Context, _, ch string) error {
	select {
	case <-b.running:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.subs[ch] = true
	b.mu.Unlock()
	return nil
}

func (b *rewindBroker) Unsubscribe(_ context.Context, _, ch string) error {
	b.mu.Lock()
	delete(b.subs, ch)
	b.mu.Unlock()
	return nil
}

func (b *rewindBroker) History(_ context.Context, _, ch string, since *broker.Position) (broker.History, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := broker.History{Latest: b.top(ch)}
	if since == nil {
		return h, nil
	}
	s := b.streams[ch]
	switch {
	case since.Epoch != "" && since.Epoch != rewindEpoch, since.Offset > h.Latest.Offset:
		return h, nil
	case since.Offset > 0 && since.Tag != "" && s[since.Offset-1].Tag != since.Tag:
		return h, nil
	}
	h.Publications, h.Recovered = append([]broker.Publication(nil), s[since.Offset:]...), true
	return h, nil
}

func (b *rewindBroker) Run(ctx context.Context, h broker.Handler) error {
	b.h = h
	close(b.running)
	<-ctx.Done()
	return nil
}

func (b *rewindBroker) Ready() error { return nil }
func (b *rewindBroker) Close() error { return nil }

type rewindEnv struct {
	*env
	b   *rewindBroker
	seq map[string]int
}

func newRewindEnv(t *testing.T) *rewindEnv {
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1400000000"}})
	require.NoError(t, err)
	b := newRewindBroker()
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Config{Node: "n", Metrics: hub.NewMetrics(reg), Logger: slog.New(slog.DiscardHandler)}, b, v)
	g := &gate{h: h}
	srv := hubtest.Serve(t, h, b, g)
	return &rewindEnv{env: &env{t: t, hub: h, gate: g, srv: srv, reg: reg}, b: b, seq: map[string]int{}}
}

// send publishes the event named name (its id and its text) to group:G.
func (e *rewindEnv) send(name string) broker.Position {
	e.t.Helper()
	r, err := e.b.Publish(context.Background(), broker.Message{App: "1400000000", ID: name, Channels: []string{"group:G"},
		Data: fmt.Appendf(nil, `{"id":%q}`, name)})
	require.NoError(e.t, err)
	return r.Positions[0]
}

// eventName is the id of the event a frame carries.
func eventName(t *testing.T, f wstest.Frame) string {
	t.Helper()
	require.Equal(t, "event", f.Op, f.Raw)
	_, rest, _ := strings.Cut(string(f.Event), `"id":"`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// A connected client that was sent offsets Redis then hands out again,
// with other events, is told recovered:false: whether the reused offset
// comes below the one it was sent or after it, it is not taken for a
// repeat. The events after the announced offset follow.
func TestReusedOffsetIsNotARepeat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		again []string // published after the rewind, before the client is looked at
	}{
		{"an offset below the last sent", []string{"b2"}},
		{"the offset last sent", []string{"b2", "b3"}},
		{"an offset after the last sent", []string{"b2", "b3", "b4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRewindEnv(t)
			c := e.connect(e.token(groups("G")))
			subscribe(t, c, "group:G", 1)
			for _, n := range []string{"a1", "a2", "a3"} {
				e.send(n)
				assert.Equal(t, n, eventName(t, c.Read()))
			}
			e.b.rewind("group:G", 1) // a2 and a3 are lost
			var offsets []string
			for _, n := range tc.again {
				offsets = append(offsets, e.send(n).String())
			}
			f := c.Read()
			require.Equal(t, "subscribed", f.Op, "told before anything else: %s", f.Raw)
			require.NotNil(t, f.Recovered)
			assert.False(t, *f.Recovered)
			// The hub goes on from the top of the stream when it sees the
			// first reused offset: the events published after that follow.
			at := slices.Index(offsets, f.Offset)
			require.GreaterOrEqual(t, at, 0, "the offset to go on from is one of the events after the rewind: %s not in %v", f.Offset, offsets)
			for _, n := range tc.again[at+1:] {
				assert.Equal(t, n, eventName(t, c.Read()), "published after the offset announced")
			}
			e.send("b-next")
			assert.Equal(t, "b-next", eventName(t, c.Read()), "then live, from there")
		})
	}
}

// The same event again, at the offset it was sent at or at an older one
// the stream still holds with it, is dropped without a word.
func TestRepeatIsDropped(t *testing.T) {
	e := newRewindEnv(t)
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	for _, n := range []string{"a1", "a2", "a3"} {
		e.send(n)
		assert.Equal(t, n, eventName(t, c.Read()))
	}
	e.b.redeliver("group:G", 3)
	e.b.redeliver("group:G", 2) // history tells it is a repeat
	e.send("a4")
	f := c.Read()
	assert.Equal(t, "a4", eventName(t, f), "nothing in between")
}

// A client that resumes with an offset the stream now holds another event
// at is told recovered:false, as is one with an offset beyond the
// stream's latest; one with an offset the stream still holds gets what
// came since. An offset in the older form, without a tag, is taken by its
// number.
func TestSinceOfARewrittenStream(t *testing.T) {
	e := newRewindEnv(t)
	var sent []broker.Position
	for _, n := range []string{"a1", "a2", "a3"} {
		sent = append(sent, e.send(n))
	}
	e.b.rewind("group:G", 1)
	// resume subscribes with since and reads the events of the replay,
	// n when recovered.
	resume := func(since string, n int) (bool, []string) {
		t.Helper()
		c := e.connect(e.token(groups("G")))
		defer c.C.Close(websocket.StatusNormalClosure, "")
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": since, "id": 1})
		f := c.ReadOp("subscribed")
		require.NotNil(t, f.Recovered)
		var got []string
		for range n {
			if !*f.Recovered {
				break
			}
			got = append(got, eventName(t, c.Read()))
		}
		return *f.Recovered, got
	}
	ok, _ := resume(sent[2].String(), 0)
	assert.False(t, ok, "beyond the latest offset")
	for _, n := range []string{"b2", "b3", "b4"} {
		e.send(n)
	}
	ok, _ = resume(sent[2].String(), 0)
	assert.False(t, ok, "offset 3 holds another event now")
	ok, got := resume(sent[0].String(), 3)
	assert.True(t, ok, "offset 1 holds the same event")
	assert.Equal(t, []string{"b2", "b3", "b4"}, got)
	ok, got = resume(fmt.Sprintf("%d:%s", sent[2].Offset, sent[2].Epoch), 1)
	assert.True(t, ok, "an untagged offset is taken by its number")
	assert.Equal(t, []string{"b4"}, got)
}

// One history read serves the repair of every subscription of a channel,
// from the oldest position among them; a subscription sent an offset that
// the stream now holds another event at is told so, not given what comes
// after that offset.
func TestRepairOfSeveralTellsEachItsOwn(t *testing.T) {
	e := newRewindEnv(t)
	behind := e.connect(e.token(groups("G"), user("behind")))
	subscribe(t, behind, "group:G", 1)
	e.send("a1")
	assert.Equal(t, "a1", eventName(t, behind.Read()))
	e.gate.closed.Store(true)
	e.send("a2")
	e.send("a3")
	ahead := e.connect(e.token(groups("G"), user("ahead")))
	subscribe(t, ahead, "group:G", 1) // joins at a3
	e.b.rewind("group:G", 1)
	for _, n := range []string{"b2", "b3", "b4"} {
		e.send(n)
	}
	e.gate.closed.Store(false)
	e.hub.HandleReconnect()
	for _, n := range []string{"b2", "b3", "b4"} {
		assert.Equal(t, n, eventName(t, behind.Read()), "behind, from a1: the stream holds a1")
	}
	f := ahead.Read()
	require.Equal(t, "subscribed", f.Op, "ahead, from a3: %s", f.Raw)
	require.NotNil(t, f.Recovered)
	assert.False(t, *f.Recovered)
	e.send("b5")
	assert.Equal(t, "b5", eventName(t, behind.Read()))
	assert.Equal(t, "b5", eventName(t, ahead.Read()))
}

// A node that subscribes again after a failover finds the stream behind
// what it sent its clients: each is told at once, with the offset to go
// on from, and gets what follows it.
func TestReconnectToAStreamBehindTells(t *testing.T) {
	e := newRewindEnv(t)
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	var sent []broker.Position
	for _, n := range []string{"a1", "a2", "a3"} {
		sent = append(sent, e.send(n))
		assert.Equal(t, n, eventName(t, c.Read()))
	}
	e.b.rewind("group:G", 1)
	e.hub.HandleReconnect()
	f := c.ReadOp("subscribed")
	require.NotNil(t, f.Recovered)
	assert.False(t, *f.Recovered)
	assert.Equal(t, sent[0].String(), f.Offset)
	e.send("b2")
	assert.Equal(t, "b2", eventName(t, c.Read()))
}
