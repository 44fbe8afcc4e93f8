package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// flowConfig shapes a callbackFlow.
type flowConfig struct {
	lanes []lane
	// every is how often each lane sends a callback.
	every time.Duration
	// node names the hub and its base URL (http://host:port) that
	// attempt i goes to.
	node func(i int) (name, base string)
	// token signs every callback.
	token string
	// away reports whether the hubs may spool in phase: callbacks they
	// acknowledge then may be published later, in a burst.
	away func(phase string) bool
}

// callbackFlow sends its lanes of signed callbacks, one goroutine each,
// every callback retried (on the next node after a failure) until it is
// acknowledged, and records each acknowledgement with the phase it fell in.
type callbackFlow struct {
	cfg      flowConfig
	pub      *publisher
	phase    atomic.Value // string
	mu       sync.Mutex
	acks     []ack
	attempts atomic.Int64
	stop     context.CancelFunc // ends the flow after the callbacks in flight
	abandon  context.CancelFunc // gives those up too
	wg       sync.WaitGroup
	errs     chan error
}

// lanesFor fills in each lane's first number and body: lanes named G…
// send group messages to their group, the others messages between the
// two users of their channels, one way then the other.
func lanesFor(lanes []lane) []lane {
	for i := range lanes {
		l := &lanes[i]
		l.first = (i + 1) * 100000
		switch {
		case strings.HasPrefix(l.name, "G"):
			g := l.name
			l.body = func(seq int) string { return groupMsg(g, seq) }
		default:
			a, b := strings.TrimPrefix(l.channels[0], "user:"), strings.TrimPrefix(l.channels[1], "user:")
			l.body = func(seq int) string {
				if seq%2 == 0 {
					return c2cMsg(a, b, seq)
				}
				return c2cMsg(b, a, seq)
			}
		}
	}
	return lanes
}

// startFlow starts the flow in phase "warm-up"; it is stopped when the
// test ends, if not before by finish.
func startFlow(t *testing.T, cfg flowConfig) *callbackFlow {
	f := &callbackFlow{cfg: cfg, pub: &publisher{token: cfg.token, client: &http.Client{Timeout: 8 * time.Second}},
		errs: make(chan error, len(cfg.lanes))}
	f.phase.Store("warm-up")
	ctx, stop := context.WithCancel(context.Background())
	hard, abandon := context.WithCancel(context.Background())
	f.stop, f.abandon = stop, abandon
	t.Cleanup(func() {
		stop()
		abandon()
		f.wg.Wait()
	})
	for _, l := range cfg.lanes {
		f.wg.Go(func() {
			tick := time.NewTicker(cfg.every)
			defer tick.Stop()
			for seq := l.first; ctx.Err() == nil; seq++ {
				// Each callback is retried until acknowledged, also after
				// the flow is stopped: one given up half way might be
				// published without the test knowing it was sent.
				var node string
				dctx, cancel := context.WithTimeout(hard, time.Minute)
				n, err := f.pub.deliver(dctx, seq, l.command, l.body(seq), func(attempt int) string {
					i := l.home + attempt
					if l.spread {
						i += seq
					}
					name, base := cfg.node(i)
					node = name
					return base
				})
				cancel()
				f.attempts.Add(int64(n))
				if err != nil {
					f.errs <- fmt.Errorf("lane %s: %w", l.name, err)
					return
				}
				f.mu.Lock()
				ph := f.phase.Load().(string)
				f.acks = append(f.acks, ack{seq: seq, key: chaosKey(l.command, seq), phase: ph, attempts: n, node: node,
					redisAway: cfg.away != nil && cfg.away(ph)})
				f.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	return f
}

// setPhase names the phase the callbacks acknowledged from now on fall in.
func (f *callbackFlow) setPhase(name string) { f.phase.Store(name) }

// finish stops the flow once each lane's callback in flight is
// acknowledged, reports the lanes that gave up, and returns every
// acknowledgement.
func (f *callbackFlow) finish(t *testing.T) []ack {
	t.Helper()
	f.stop()
	f.wg.Wait()
	close(f.errs)
	for err := range f.errs {
		t.Error(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.acks)
}

// retries is how many attempts were not acknowledged.
func (f *callbackFlow) retries() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts.Load() - int64(len(f.acks))
}

// deliveryReport sums up what checkDeliveries found.
type deliveryReport struct {
	deliveries, overtaken int
	reconnects            int64
}

// checkDeliveries waits until every collector has, on each of its
// channels, as many events as were acknowledged for it (the app channel
// has them all), then checks each stream: every acknowledged callback
// once, in order per lane, at consecutive offsets, one event per offset
// on every client, and no recovered:false.
func checkDeliveries(t *testing.T, lanes []lane, done []ack, cols []*collector) deliveryReport {
	t.Helper()
	want := map[string][]ack{}
	for _, a := range done {
		for _, l := range lanes {
			if a.seq >= l.first && a.seq < l.first+100000 {
				for _, ch := range l.channels {
					want[ch] = append(want[ch], a)
				}
			}
		}
		want["app"] = append(want["app"], a)
	}
	// One deadline for all: what is missing is reported below, event by
	// event.
	arrived := func() bool {
		for _, col := range cols {
			for _, ch := range col.channels {
				if len(col.channel(ch)) < len(want[ch]) {
					return false
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !arrived() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now

	var rep deliveryReport
	streams := map[string]map[string]string{} // channel -> offset -> key, over all clients
	for _, col := range cols {
		rep.reconnects += col.reconnects.Load()
		assert.Zero(t, col.resetCount(), "%s was told recovered:false on %v", col.name, col.resets)
		for _, ch := range col.channels {
			got := col.channel(ch)
			rep.deliveries += len(got)
			r := checkStream(want[ch], got)
			rep.overtaken += r.overtaken
			if streams[ch] == nil {
				streams[ch] = map[string]string{}
			}
			for _, e := range got {
				if k, ok := streams[ch][e.offset]; ok && k != e.key {
					r.conflicts = append(r.conflicts, fmt.Sprintf("%s is %s here, %s elsewhere", e.offset, e.key, k))
				}
				streams[ch][e.offset] = e.key
			}
			if !r.ok() {
				t.Errorf("%s on %s: %s", col.name, ch, r)
			}
		}
	}
	return rep
}
