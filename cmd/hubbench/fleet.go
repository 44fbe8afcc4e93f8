package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/imhub/imhub/internal/hubload"
)

// fleet is the WebSocket clients. Each reads its frames on a goroutine of
// its own with a reused buffer, finds the send time in each event and
// records the latency in one of a few shared histograms.
type fleet struct {
	target   string
	conns    []benchConn
	received atomic.Int64 // events received once
	repeats  atomic.Int64 // events received again, or out of order
	wire     atomic.Int64 // bytes read, WebSocket headers included
	hists    [32]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
	// clients is each client's own latencies, when the run measures
	// their spread (Config.ClientSpread); nil otherwise.
	clients []clientHist
	// gone counts the clients whose connection ended before close: the
	// server closed them (too slow, say) or they failed.
	gone    atomic.Int64
	closing atomic.Bool
	readers sync.WaitGroup
}

func newFleet() *fleet {
	f := &fleet{}
	for i := range f.hists {
		f.hists[i].h = newLatencyHistogram()
	}
	return f
}

// benchConn is one client of any target.
type benchConn interface {
	// Next returns the next message, valid until the next call.
	Next() ([]byte, error)
	Close() error
	// WireBytes is the bytes the last message took on the wire.
	WireBytes() int
}

// connect opens cfg.Conns connections, each subscribed to its user channel
// and to group G<i mod Channels>, spread over the source addresses.
func connect(ctx context.Context, cfg Config, base string, progress io.Writer) (*fleet, time.Duration, error) {
	f := newFleet()
	f.target = cfg.Target
	if cfg.Conns == 0 {
		return f, 0, nil
	}
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "floor://")
	dialers := make([]*net.Dialer, cfg.Sources)
	for i := range dialers {
		dialers[i] = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}, Timeout: 10 * time.Second}
	}
	f.conns = make([]benchConn, cfg.Conns)
	if cfg.ClientSpread {
		f.clients = make([]clientHist, cfg.Conns)
	}
	start := time.Now()
	var (
		next    atomic.Int64
		failed  atomic.Value
		workers sync.WaitGroup
	)
	for range 32 {
		workers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns || ctx.Err() != nil || failed.Load() != nil {
					return
				}
				c, err := dialTarget(ctx, cfg, host, dialers[i%len(dialers)], i)
				if err != nil {
					failed.CompareAndSwap(nil, fmt.Errorf("connection %d: %w", i, err))
					return
				}
				f.conns[i] = c
				f.readers.Go(func() { f.read(c, i) })
				if n := i + 1; n%2000 == 0 {
					fmt.Fprintf(progress, "  %d connections\n", n)
				}
			}
		})
	}
	workers.Wait()
	took := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		f.close()
		return nil, took, err
	}
	if ctx.Err() != nil {
		f.close()
		return nil, took, ctx.Err()
	}
	return f, took, nil
}

// dialTarget connects client i to the target and waits for its
// subscriptions.
func dialTarget(ctx context.Context, cfg Config, host string, d *net.Dialer, i int) (benchConn, error) {
	switch cfg.Target {
	case targetCentrifugo:
		return dialCentrifugo(ctx, cfg, host, d, i)
	case targetFloor:
		return dialFloor(ctx, cfg, host, d, i)
	}
	return dial(ctx, cfg, host, d, i)
}

// dial connects client i and waits for its subscriptions.
func dial(ctx context.Context, cfg Config, host string, d *net.Dialer, i int) (*hubload.WSConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := hubload.DialWS(dctx, d, host, hubload.Token(cfg.Secret, cfg.App, "u"+strconv.Itoa(i), 24*time.Hour, false))
	if err != nil {
		return nil, err
	}
	dl, _ := dctx.Deadline()
	_ = c.SetDeadline(dl)
	want := 2 // connected, subscribed user:u<i>
	if cfg.Channels > 0 {
		sub, _ := json.Marshal(map[string]any{"op": "subscribe", "channel": "group:G" + strconv.Itoa(i%cfg.Channels)})
		if err := c.Write(hubload.OpText, sub); err != nil {
			c.Close()
			return nil, err
		}
		want++
	}
	for range want {
		b, err := c.Next()
		if err != nil {
			c.Close()
			return nil, err
		}
		if bytes.Contains(b, []byte(`"op":"error"`)) {
			c.Close()
			return nil, fmt.Errorf("hub refused: %s", b)
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

var (
	sentMarker = []byte(`"Text":"t=`)
	offMarker  = []byte(`"offset":"`)
	userFrame  = []byte(`"channel":"user:`)
)

// read counts each event frame and records its end-to-end latency, until
// close closes the connection.
func (f *fleet) read(c benchConn, i int) {
	defer func() {
		if !f.closing.Load() {
			f.gone.Add(1)
		}
	}()
	switch f.target {
	case targetCentrifugo:
		f.readCentrifugo(c.(*hubload.WSConn), i)
		return
	case targetFloor:
		f.readFloor(c, i)
		return
	}
	// Each channel is delivered in the order of its offsets: an offset not
	// above the last of its channel is a repeat (or out of order), which
	// would otherwise hide a loss in the count. (The message numbers the
	// publisher gives need not arrive in order: two callbacks in flight
	// at once may be published in either order.)
	var lastGroup, lastUser int64
	for {
		b, err := c.Next()
		if err != nil {
			return
		}
		f.wire.Add(int64(c.WireBytes()))
		at := bytes.Index(b, sentMarker)
		if at < 0 {
			continue
		}
		sent := hubload.Number(b[at+len(sentMarker):])
		last := &lastGroup
		if bytes.Contains(b[:min(len(b), 40)], userFrame) {
			last = &lastUser
		}
		off := int64(-1)
		if k := bytes.Index(b, offMarker); k >= 0 {
			off = hubload.Number(b[k+len(offMarker):])
		}
		f.record(i, sent, off, last)
	}
}

// record counts one delivery sent at sent (unix ns) with offset off in its
// channel (-1: none), last being the last offset of that channel.
func (f *fleet) record(i int, sent, off int64, last *int64) {
	if off >= 0 {
		if off <= *last {
			f.repeats.Add(1)
			return
		}
		*last = off
	}
	lat := time.Now().UnixNano() - sent
	f.received.Add(1)
	h := &f.hists[i%len(f.hists)]
	h.mu.Lock()
	_ = h.h.RecordValue(max(lat/1000, 1))
	h.mu.Unlock()
	if f.clients != nil {
		f.clients[i].record(max(lat/1000, 1))
	}
}

// readCentrifugo is read for Centrifugo's protocol: a message may hold
// several replies, one a line, and the server's pings are answered.
func (f *fleet) readCentrifugo(c *hubload.WSConn, i int) {
	var lastGroup, lastUser int64
	for {
		b, err := c.Next()
		if err != nil {
			return
		}
		f.wire.Add(int64(c.WireBytes()))
		ping := false
		cfLines(b, func(line []byte) {
			if cfIsPing(line) {
				ping = true
				return
			}
			sent, off, user, ok := cfPub(line)
			if !ok {
				return
			}
			last := &lastGroup
			if user {
				last = &lastUser
			}
			f.record(i, sent, off, last)
		})
		if ping && c.Write(hubload.OpText, []byte("{}")) != nil {
			return
		}
	}
}

// readFloor is read for the floor's fixed-size frames.
func (f *fleet) readFloor(c benchConn, i int) {
	var last int64
	for {
		b, err := c.Next()
		if err != nil {
			return
		}
		f.wire.Add(int64(len(b)))
		sent, off := floorFrame(b)
		f.record(i, sent, off, &last)
	}
}

// newLatencyHistogram is a histogram of latencies in microseconds, from
// 1 µs to a minute, to three significant digits.
func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
}

// latency merges the histograms and resets them.
func (f *fleet) latency() *hdrhistogram.Histogram {
	all := newLatencyHistogram()
	for i := range f.hists {
		h := &f.hists[i]
		h.mu.Lock()
		all.Merge(h.h)
		h.h.Reset()
		h.mu.Unlock()
	}
	return all
}

// close ends every connection and waits for the readers.
func (f *fleet) close() {
	f.closing.Store(true)
	for _, c := range f.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	f.readers.Wait()
}
