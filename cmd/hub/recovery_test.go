package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/client"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// collector is a client.Client that records every event it gets, by
// channel, with its offset.
type collector struct {
	name string
	c    *client.Client
	// channels are the channels it listens to, its user's included.
	channels []string
	mu       sync.Mutex
	events   map[string][]received // channel -> events, in arrival order
	// resets are the channels answered recovered:false on a resubscribe.
	resets     []string
	reconnects atomic.Int64
	done       chan error
	cancel     context.CancelFunc
}

// received is one event as a collector got it.
type received struct {
	offset string
	key    string // messageKey of the event
	seq    int    // the MsgSeq of its first message
}

// collectConfig says who a collector is and what it listens to.
type collectConfig struct {
	name     string
	app      string // default "100"
	user     string
	admin    bool
	groups   []string // the token's groups
	channels []string // subscribed besides user:<user>
	urls     []string // tried in turn on each reconnect
}

// collect is a collector of group:G, as user "watcher".
func collect(t *testing.T, urls ...string) *collector {
	t.Helper()
	return collectWith(t, collectConfig{name: "watcher", user: "watcher", groups: []string{"G"}, channels: []string{"group:G"}, urls: urls})
}

// collectWith starts a collector and waits until it is subscribed to each
// of its channels; it stops when the test ends.
func collectWith(t *testing.T, cfg collectConfig) *collector {
	t.Helper()
	if cfg.app == "" {
		cfg.app = "100"
	}
	col := &collector{name: cfg.name, events: map[string][]received{}, done: make(chan error, 1)}
	tok := mint(t, cfg.app, cfg.user, cfg.admin, cfg.groups...)
	col.c = client.New(client.Config{
		URLs:       cfg.urls,
		Token:      func(context.Context) (string, error) { return tok, nil },
		Channels:   cfg.channels,
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     slog.New(reconnectCounter{&col.reconnects}),
		OnReset: func(ch, _ string) {
			col.mu.Lock()
			col.resets = append(col.resets, ch)
			col.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	col.cancel = cancel
	go func() {
		col.done <- col.c.Run(ctx, func(e client.Event) {
			r := received{offset: e.Offset, key: messageKey(e.Data)}
			var ev callback.Event
			if json.Unmarshal(e.Data, &ev) == nil && len(ev.Messages) > 0 {
				r.seq = int(ev.Messages[0].Seq)
			}
			col.mu.Lock()
			col.events[e.Channel] = append(col.events[e.Channel], r)
			col.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-col.done)
	})
	col.channels = append([]string{"user:" + cfg.user}, cfg.channels...)
	all := col.channels
	require.Eventually(t, func() bool {
		offs := col.c.Offsets()
		for _, ch := range all {
			if offs[ch] == "" {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "%s subscribed to %v", cfg.name, all)
	return col
}

// got returns the MsgSeqs of the events on group:G.
func (col *collector) got() []int {
	col.mu.Lock()
	defer col.mu.Unlock()
	var seqs []int
	for _, r := range col.events["group:G"] {
		seqs = append(seqs, r.seq)
	}
	return seqs
}

// channel returns what the collector got on ch.
func (col *collector) channel(ch string) []received {
	col.mu.Lock()
	defer col.mu.Unlock()
	return slices.Clone(col.events[ch])
}

// resetCount is how many times a resubscription was answered
// recovered:false.
func (col *collector) resetCount() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.resets)
}

// reconnectCounter is a slog handler that counts the client's reconnects
// and discards the rest.
type reconnectCounter struct{ n *atomic.Int64 }

func (h reconnectCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h reconnectCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h reconnectCounter) WithGroup(string) slog.Handler            { return h }
func (h reconnectCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "hub connection ended") {
		h.n.Add(1)
	}
	return nil
}

// publisher posts numbered group messages at a steady pace and records
// which were acknowledged (200 OK) and which refused.
type publisher struct {
	mu      sync.Mutex
	acked   []int
	refused []int
	target  func() *hubtest.Process
	// token, when set, signs every attempt as the IM does for an app with
	// a callback token: RequestTime now, Sign over it.
	token string
	// client, when set, is used instead of http.DefaultClient; give it a
	// timeout when a node may stop answering.
	client *http.Client
}

func (p *publisher) run(t *testing.T, from, to int, every time.Duration) {
	for seq := from; seq <= to; seq++ {
		code, _ := p.post(p.target().URL(""), "100", "Group.CallbackAfterSendMsg", groupMsg("G", seq))
		p.mu.Lock()
		if code == http.StatusOK {
			p.acked = append(p.acked, seq)
		} else {
			p.refused = append(p.refused, seq)
		}
		p.mu.Unlock()
		time.Sleep(every)
	}
}

func (p *publisher) result() (acked, refused []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked), slices.Clone(p.refused)
}

// post sends one callback to the hub at base (http://host:port) and
// returns the status, 0 when there was no answer.
func (p *publisher) post(base, app, command, body string) (int, error) {
	u := base + "/im/callback?SdkAppid=" + app + "&CallbackCommand=" + command
	if p.token != "" {
		now := strconv.FormatInt(time.Now().Unix(), 10)
		u += "&RequestTime=" + now + "&Sign=" + callback.Sign(p.token, now)
	}
	c := p.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// deliver posts one callback until a hub answers 200 OK, as an IM backend
// that retries would: attempt i goes to base(i), so a caller can move to
// another node after each failure (a 503, no connection, a timeout). It
// records seq acknowledged and returns the number of attempts, or an error
// when ctx ends first.
func (p *publisher) deliver(ctx context.Context, seq int, command, body string, base func(attempt int) string) (int, error) {
	for attempt := 0; ; attempt++ {
		if code, _ := p.post(base(attempt), "100", command, body); code == http.StatusOK {
			p.mu.Lock()
			p.acked = append(p.acked, seq)
			p.mu.Unlock()
			return attempt + 1, nil
		}
		select {
		case <-ctx.Done():
			return attempt + 1, fmt.Errorf("callback %d not acknowledged after %d attempts: %w", seq, attempt+1, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitSeqs(t *testing.T, col *collector, want []int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(col.got()) >= len(want) }, 30*time.Second, 20*time.Millisecond,
		"got %d of %d events", len(col.got()), len(want))
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	assert.Equal(t, want, col.got(), "every acknowledged event once, in order")
}

// A client's node is killed while events keep arriving through another
// node: the client reconnects there with its offsets and ends with exactly
// the published sequence.
func TestNodeKilledClientRecovers(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 2)
	col := collect(t, wsURL(nodes[0]), wsURL(nodes[1]))
	require.Equal(t, "hub-a", col.c.Node())

	pub := &publisher{target: func() *hubtest.Process { return nodes[1] }}
	var wg sync.WaitGroup
	wg.Go(func() { pub.run(t, 1, 200, 5*time.Millisecond) })
	require.Eventually(t, func() bool { return len(col.got()) >= 40 }, 10*time.Second, 5*time.Millisecond)
	nodes[0].Signal(syscall.SIGKILL)
	wg.Wait()

	acked, refused := pub.result()
	assert.Empty(t, refused)
	waitSeqs(t, col, acked)
	assert.Equal(t, "hub-b", col.c.Node(), "it moved to the surviving node")
	assert.Zero(t, col.resetCount())
}

// Redis goes away while callbacks arrive at a steady rate, and comes back
// (with its data: it persists). The node spools what it cannot publish;
// every acknowledged callback reaches the client exactly once, in order.
// With restartHub, the node itself is restarted while Redis is down and
// its spool is picked up by the new process.
func testRedisOutage(t *testing.T, restartHub bool) {
	srv := redistest.StartPersistent(t)
	spoolDir := t.TempDir()
	args := []string{"-redis", srv.URL(), "-apps", "100", "-jwt-secret", clusterSecret, "-spool-dir", spoolDir}
	ingest := hubtest.Start(t, append(args, "-node", "ingest"))
	watch := hubtest.Start(t, []string{"-redis", srv.URL(), "-apps", "100", "-jwt-secret", clusterSecret, "-node", "watch"})
	ingest.WaitReady(200)
	watch.WaitReady(200)
	col := collect(t, wsURL(watch))

	var mu sync.Mutex
	current := ingest
	pub := &publisher{target: func() *hubtest.Process { mu.Lock(); defer mu.Unlock(); return current }}
	var wg sync.WaitGroup
	wg.Go(func() { pub.run(t, 1, 60, 20*time.Millisecond) })
	require.Eventually(t, func() bool { return len(col.got()) >= 10 }, 10*time.Second, 5*time.Millisecond)

	srv.Stop()
	require.Eventually(t, func() bool {
		code, body := ingest.Get("/metrics")
		return code == 200 && strings.Contains(body, `result="spooled"`)
	}, 10*time.Second, 20*time.Millisecond, "callbacks are being spooled")
	if restartHub {
		ingest.Signal(syscall.SIGTERM)
		require.Equal(t, 0, ingest.Wait(20*time.Second))
		next := hubtest.Start(t, append(args, "-node", "ingest-2"))
		mu.Lock()
		current = next
		mu.Unlock()
		next.WaitLog(10*time.Second, "spool from the earlier run", func(l map[string]any) bool {
			return strings.Contains(fmt.Sprint(l["msg"]), "spool holds events from an earlier run")
		})
	}
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	wg.Wait()

	acked, refused := pub.result()
	if !restartHub {
		assert.Empty(t, refused, "with a spool every callback is acknowledged")
	}
	t.Logf("acknowledged %d, refused %d (the node was restarting)", len(acked), len(refused))
	waitSeqs(t, col, acked)
	assert.Zero(t, col.resetCount(), "Redis kept its data: nothing to reset")
}

func TestRedisOutageWithSpool(t *testing.T)           { testRedisOutage(t, false) }
func TestRedisOutageWithSpoolAndRestart(t *testing.T) { testRedisOutage(t, true) }
