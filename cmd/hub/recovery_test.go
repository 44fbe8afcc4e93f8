package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
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

// collector is a client.Client that records the MsgSeq of every event it
// gets on group:G.
type collector struct {
	c      *client.Client
	mu     sync.Mutex
	seqs   []int
	resets int
	done   chan error
	cancel context.CancelFunc
}

func collect(t *testing.T, urls ...string) *collector {
	t.Helper()
	col := &collector{done: make(chan error, 1)}
	tok := mint(t, "100", "watcher", false, "G")
	col.c = client.New(client.Config{
		URLs:       urls,
		Token:      func(context.Context) (string, error) { return tok, nil },
		Channels:   []string{"group:G"},
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
		OnReset:    func(string, string) { col.mu.Lock(); col.resets++; col.mu.Unlock() },
	})
	ctx, cancel := context.WithCancel(context.Background())
	col.cancel = cancel
	go func() {
		col.done <- col.c.Run(ctx, func(e client.Event) {
			var ev callback.Event
			if json.Unmarshal(e.Data, &ev) != nil || len(ev.Messages) == 0 {
				return
			}
			col.mu.Lock()
			col.seqs = append(col.seqs, int(ev.Messages[0].Seq))
			col.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-col.done)
	})
	require.Eventually(t, func() bool { return col.c.Offsets()["group:G"] != "" }, 10*time.Second, 10*time.Millisecond)
	return col
}

func (col *collector) got() []int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]int(nil), col.seqs...)
}

// publisher posts numbered group messages at a steady pace and records
// which were acknowledged (200 OK) and which refused.
type publisher struct {
	mu      sync.Mutex
	acked   []int
	refused []int
	target  func() *hubtest.Process
}

func (p *publisher) run(t *testing.T, from, to int, every time.Duration) {
	for seq := from; seq <= to; seq++ {
		node := p.target()
		code := 0
		resp, err := http.Post(node.URL("/im/callback?SdkAppid=100&CallbackCommand=Group.CallbackAfterSendMsg"),
			"application/json", strings.NewReader(groupMsg("G", seq)))
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
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
	return append([]int(nil), p.acked...), append([]int(nil), p.refused...)
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
	assert.Zero(t, col.resets)
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
	assert.Zero(t, col.resets, "Redis kept its data: nothing to reset")
}

func TestRedisOutageWithSpool(t *testing.T)           { testRedisOutage(t, false) }
func TestRedisOutageWithSpoolAndRestart(t *testing.T) { testRedisOutage(t, true) }
