package spool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback/spool"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/redistest"
)

// switchable is the real in-process broker behind a switch that makes it
// unavailable, for the cases a real outage cannot stage precisely.
type switchable struct {
	*broker.Memory
	down atomic.Bool
}

func (b *switchable) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	if b.down.Load() {
		return broker.Result{}, fmt.Errorf("%w: switched off", broker.ErrUnavailable)
	}
	return b.Memory.Publish(ctx, m)
}

func (b *switchable) Ready() error {
	if b.down.Load() {
		return broker.ErrUnavailable
	}
	return nil
}

func newSwitchable(t *testing.T) (*switchable, *brokertest.Recorder) {
	b := &switchable{Memory: broker.NewMemory(brokertest.DefaultConfig)}
	rec := brokertest.Start(t, b.Memory)
	require.NoError(t, b.Subscribe(context.Background(), "1", "app"))
	return b, rec
}

func msg(i int) broker.Message {
	return broker.Message{App: "1", ID: fmt.Sprint("m", i), Channels: []string{"app"}, Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
}

func open(t *testing.T, dir string, next spool.Next, max int64) *spool.Spool {
	t.Helper()
	s, err := spool.Open(spool.Config{Dir: dir, MaxBytes: max, Retry: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, next)
	require.NoError(t, err)
	return s
}

func run(t *testing.T, s *spool.Spool) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func data(pubs []broker.Publication) []string {
	var out []string
	for _, p := range pubs {
		out = append(out, string(p.Data))
	}
	return out
}

func files(t *testing.T, dir string) []string {
	names, err := filepath.Glob(filepath.Join(dir, "*.spool"))
	require.NoError(t, err)
	return names
}

func TestPassThroughAndSpoolInOrder(t *testing.T) {
	b, rec := newSwitchable(t)
	dir := t.TempDir()
	s := open(t, dir, b, 1<<20)
	run(t, s)
	ctx := context.Background()

	res, err := s.Publish(ctx, msg(1))
	require.NoError(t, err)
	assert.False(t, res.Spooled, "straight through while the broker is up")
	assert.Len(t, res.Positions, 1)

	b.down.Store(true)
	for i := 2; i <= 4; i++ {
		res, err := s.Publish(ctx, msg(i))
		require.NoError(t, err)
		assert.True(t, res.Spooled)
	}
	n, bytes, oldest := s.Depth()
	assert.Equal(t, 3, n)
	assert.Positive(t, bytes)
	assert.False(t, oldest.IsZero())
	assert.Len(t, files(t, dir), 1)

	b.down.Store(false)
	// Spooled events go first: this one is queued behind them.
	_, err = s.Publish(ctx, msg(5))
	require.NoError(t, err)
	pubs := rec.WaitCount(t, 5)
	assert.Equal(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`}, data(pubs))
	require.Eventually(t, func() bool { n, _, _ := s.Depth(); return n == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Empty(t, files(t, dir), "published segments are removed")
}

// What was spooled survives the process: a new spool on the same
// directory publishes it.
func TestSurvivesRestart(t *testing.T) {
	b, rec := newSwitchable(t)
	dir := t.TempDir()
	b.down.Store(true)
	s := open(t, dir, b, 1<<20)
	for i := 1; i <= 3; i++ {
		_, err := s.Publish(context.Background(), msg(i))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	b.down.Store(false)
	s2 := open(t, dir, b, 1<<20)
	n, _, _ := s2.Depth()
	assert.Equal(t, 3, n)
	run(t, s2)
	assert.Equal(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}, data(rec.WaitCount(t, 3)))
}

// A record torn by a crash while appending (never acknowledged) is cut
// off; the records before it are kept.
func TestTornTail(t *testing.T) {
	b, rec := newSwitchable(t)
	dir := t.TempDir()
	b.down.Store(true)
	s := open(t, dir, b, 1<<20)
	for i := 1; i <= 2; i++ {
		_, err := s.Publish(context.Background(), msg(i))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	f, err := os.OpenFile(files(t, dir)[0], os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{40, 0, 0, 0, 1, 2, 3, 4, '{', '"'}) // a header and half a record
	require.NoError(t, err)
	f.Close()

	b.down.Store(false)
	s2 := open(t, dir, b, 1<<20)
	run(t, s2)
	assert.Equal(t, []string{`{"n":1}`, `{"n":2}`}, data(rec.WaitCount(t, 2)))
}

func TestFull(t *testing.T) {
	b, _ := newSwitchable(t)
	b.down.Store(true)
	s := open(t, t.TempDir(), b, 300)
	var err error
	spooled := 0
	for i := range 10 {
		if _, err = s.Publish(context.Background(), msg(i)); err != nil {
			break
		}
		spooled++
	}
	require.Error(t, err)
	assert.True(t, errors.Is(err, spool.ErrFull))
	assert.True(t, errors.Is(err, broker.ErrUnavailable), "answered 503")
	assert.Positive(t, spooled)
}

// With a real Redis that stops and comes back: nothing acknowledged is
// lost, nothing is published twice.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	b, err := broker.NewRedis(broker.RedisConfig{Config: brokertest.DefaultConfig, URL: srv.URL(), PingInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	rec := brokertest.Start(t, b)
	require.Eventually(t, func() bool { return b.Ready() == nil }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Subscribe(context.Background(), "1", "app"))
	s := open(t, t.TempDir(), b, 1<<20)
	run(t, s)

	ctx := context.Background()
	var want []string
	publish := func(i int) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := s.Publish(pctx, msg(i))
		require.NoError(t, err, "every callback is acknowledged: published or spooled")
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	for i := 1; i <= 5; i++ {
		publish(i)
	}
	rec.WaitCount(t, 5)
	srv.Stop()
	require.Eventually(t, func() bool { return b.Ready() != nil }, 10*time.Second, 10*time.Millisecond)
	for i := 6; i <= 15; i++ {
		publish(i)
	}
	srv.Restart()
	for i := 16; i <= 20; i++ {
		publish(i)
	}
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 15*time.Second, 10*time.Millisecond)
	rec.WaitFor(t, 20*time.Second, "all 20 events", func(p []broker.Publication) bool { return len(p) >= 20 })
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, want, data(rec.Publications()), "every event once, in order")
}

// Two spools on one directory would publish, and cut off, each other's
// records: the second is refused until the first is closed.
func TestOneSpoolPerDirectory(t *testing.T) {
	b, _ := newSwitchable(t)
	dir := t.TempDir()
	s := open(t, dir, b, 1<<20)
	_, err := spool.Open(spool.Config{Dir: dir, MaxBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}, b)
	require.ErrorIs(t, err, spool.ErrInUse)
	assert.Contains(t, err.Error(), "-spool-dir")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")
	s2 := open(t, dir, b, 1<<20)
	require.NoError(t, s2.Close())
}
