package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubtest"
)

var secret = []byte("client-test-secret-client-test-secret")

type fixture struct {
	h     *hub.Hub
	b     *broker.Memory
	url   string
	seq   int
	mu    sync.Mutex
	got   []string // channel/n
	gate  chan struct{}
	reset []string
}

func newFixture(t *testing.T, history int) *fixture {
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1"}})
	require.NoError(t, err)
	b := broker.NewMemory(broker.Config{DedupeWindow: time.Minute, HistorySize: history, HistoryTTL: time.Minute})
	h := hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler)}, b, v)
	srv := hubtest.Serve(t, h, b, h)
	return &fixture{h: h, b: b, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", gate: make(chan struct{}, 100)}
}

func (f *fixture) token(context.Context) (string, error) {
	<-f.gate // the test decides when the client may (re)connect
	c := auth.Claims{Groups: []string{"G"}}
	c.Subject = "jared"
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	return auth.Mint(secret, c)
}

func (f *fixture) publish(t *testing.T, channel string) {
	f.seq++
	_, err := f.b.Publish(context.Background(), broker.Message{App: "1", ID: fmt.Sprint(f.seq), Channels: []string{channel}, Data: []byte(fmt.Sprintf(`{"n":%d}`, f.seq))})
	require.NoError(t, err)
}

func (f *fixture) handle(e Event) {
	var ev struct{ N int }
	_ = json.Unmarshal(e.Data, &ev)
	f.mu.Lock()
	f.got = append(f.got, fmt.Sprintf("%s/%d", e.Channel, ev.N))
	f.mu.Unlock()
}

func (f *fixture) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fixture) start(t *testing.T) *Client {
	c := New(Config{
		URLs:       []string{f.url},
		Token:      f.token,
		Channels:   []string{"group:G"},
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
		OnReset: func(ch, off string) {
			f.mu.Lock()
			f.reset = append(f.reset, ch)
			f.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, f.handle) }()
	t.Cleanup(func() {
		cancel()
		f.gate <- struct{}{} // unblock a pending Token call
		assert.NoError(t, <-done)
	})
	return c
}

func waitSubscribed(t *testing.T, c *Client, channels ...string) {
	require.Eventually(t, func() bool {
		o := c.Offsets()
		for _, ch := range channels {
			if o[ch] == "" {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond)
}

// The connection drops; events published meanwhile, on a group and on the
// user's own channel, arrive after the reconnect, once each, in order.
func TestRecoversAfterDisconnect(t *testing.T) {
	f := newFixture(t, 100)
	f.gate <- struct{}{}
	c := f.start(t)
	waitSubscribed(t, c, "group:G", "user:jared")
	f.publish(t, "group:G") // 1
	f.publish(t, "user:jared")
	require.Eventually(t, func() bool { return len(f.received()) == 2 }, 5*time.Second, 5*time.Millisecond)

	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	_ = conn.CloseNow()     // the network goes away
	f.publish(t, "group:G") // 3, while away
	f.publish(t, "user:jared")
	f.publish(t, "group:G") // 5
	f.gate <- struct{}{}    // let it reconnect
	require.Eventually(t, func() bool { return len(f.received()) == 5 }, 5*time.Second, 5*time.Millisecond)
	f.publish(t, "group:G") // 6, live
	require.Eventually(t, func() bool { return len(f.received()) == 6 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	got := f.received()
	var group, user []string
	for _, g := range got {
		if strings.HasPrefix(g, "group:") {
			group = append(group, g)
		} else {
			user = append(user, g)
		}
	}
	require.Len(t, group, 4)
	assert.Equal(t, []string{"group:G/1", "group:G/3", "group:G/5"}, group[:3])
	// Every user-channel event published, once, in order.
	var want []string
	for n := 1; n <= f.seq; n++ {
		for _, u := range user {
			if u == fmt.Sprintf("user:jared/%d", n) {
				want = append(want, u)
			}
		}
	}
	assert.Equal(t, want, user, "in order, no repeats")
	assert.Equal(t, f.seq-4, len(user), "none missing: every event but the four group ones")
	assert.Empty(t, f.reset)
}

// Away longer than history holds: the client is told, and goes on.
func TestResetWhenHistoryIsGone(t *testing.T) {
	f := newFixture(t, 2)
	f.gate <- struct{}{}
	c := f.start(t)
	waitSubscribed(t, c, "group:G")
	f.publish(t, "group:G") // 1
	require.Eventually(t, func() bool { return len(f.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c.mu.Lock()
	_ = c.conn.CloseNow()
	c.mu.Unlock()
	for range 4 {
		f.publish(t, "group:G") // 2..5; history keeps 4 and 5
	}
	f.gate <- struct{}{}
	require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.reset) == 1 }, 5*time.Second, 5*time.Millisecond)
	f.publish(t, "group:G") // 6
	require.Eventually(t, func() bool { return len(f.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"group:G/1", "group:G/6"}, f.received())
}

func TestAdvanceDropsRepeats(t *testing.T) {
	c := New(Config{})
	assert.True(t, c.advance("g", "5:e"))
	assert.False(t, c.advance("g", "5:e"))
	assert.False(t, c.advance("g", "4:e"))
	assert.True(t, c.advance("g", "6:e"))
	assert.True(t, c.advance("g", "1:f"), "a new epoch starts again")
	assert.Equal(t, "1:f", c.Offsets()["g"])

	// Offsets with a tag: within an epoch the number orders them.
	assert.True(t, c.advance("t", "5:e:0a1b2c3d4e5f"))
	assert.False(t, c.advance("t", "5:e:0a1b2c3d4e5f"))
	assert.False(t, c.advance("t", "4:e:ffffffffffff"))
	assert.True(t, c.advance("t", "6:e:ffffffffffff"))
	assert.True(t, c.advance("t", "7:e"), "and with the older form")
	assert.Equal(t, "7:e", c.Offsets()["t"])
}

// Reconnect after reconnect while the user's own channel streams: its live
// events race each resubscription's replay, and every one still arrives
// once, in order.
func TestUserChannelAcrossReconnects(t *testing.T) {
	f := newFixture(t, 1000)
	f.gate <- struct{}{}
	c := f.start(t)
	waitSubscribed(t, c, "user:jared")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			f.mu.Lock()
			f.publish(t, "user:jared")
			f.mu.Unlock()
			time.Sleep(500 * time.Microsecond)
		}
	}()
	for range 15 {
		time.Sleep(20 * time.Millisecond)
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			_ = conn.CloseNow()
		}
		f.gate <- struct{}{}
		require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.conn != nil && c.conn != conn },
			5*time.Second, time.Millisecond)
	}
	close(stop)
	<-done
	for range 10 {
		f.gate <- struct{}{} // any further reconnect may go ahead
	}
	f.mu.Lock()
	total := f.seq
	f.mu.Unlock()
	require.Eventually(t, func() bool { return len(f.received()) >= total }, 10*time.Second, 5*time.Millisecond,
		"got %d of %d", len(f.received()), total)
	time.Sleep(100 * time.Millisecond)
	got := f.received()
	require.Len(t, got, total, "no repeats")
	for i, g := range got {
		require.Equal(t, fmt.Sprintf("user:jared/%d", i+1), g, "in order, none missing")
	}
	assert.Empty(t, f.reset)
}

// Closed with 4010 (the server API disconnected the user), the client
// stops with ErrDisconnected rather than reconnect, though a token is to
// be had.
func TestDisconnectedIsFinal(t *testing.T) {
	f := newFixture(t, 100)
	for range 10 {
		f.gate <- struct{}{}
	}
	c := New(Config{URLs: []string{f.url}, Token: f.token, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, f.handle) }()
	waitSubscribed(t, c, "user:jared")
	require.Equal(t, 1, f.h.Disconnect("1", "jared", time.Time{}, "disconnected by the server API"))
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrDisconnected)
		assert.Contains(t, err.Error(), "4010")
	case <-ctx.Done():
		t.Fatal("Run did not return after a 4010")
	}
	time.Sleep(50 * time.Millisecond) // room for a reconnect, were one made
	assert.Len(t, f.gate, 9, "no token asked for again: not connected again")
}
