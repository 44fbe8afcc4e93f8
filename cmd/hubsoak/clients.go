package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imhub/imhub/internal/hubload"
	"github.com/imhub/imhub/internal/retry"
)

// The soak run's WebSocket clients, three kinds:
//
//   - steady clients stay connected the whole run, refresh their short
//     tokens in band before they expire, and record every event they get:
//     nothing acknowledged on their channels may go missing;
//   - churners come and go: connect, subscribe and unsubscribe, refresh
//     now and then, leave politely or drop the socket, and a quarter of
//     them hold tokens that expire in seconds and are closed with 4002;
//   - slow clients take the app firehose through a tiny receive buffer
//     and read slowly or not at all, until the hub closes them with 4008.

// soakToken mints a token for user that expires after ttl.
func soakToken(cfg config, user string, ttl time.Duration, admin bool) string {
	return hubload.Token(cfg.Secret, cfg.App, user, ttl, admin)
}

func opFrame(op string, kv ...any) []byte {
	m := map[string]any{"op": op}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

// field returns the string value of "name":"…" in a frame.
func field(b []byte, name string) string {
	k := []byte(`"` + name + `":"`)
	i := bytes.Index(b, k)
	if i < 0 {
		return ""
	}
	rest := b[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

var eventSeqMarker = []byte(`"seq":`)

// soakStats are the clients' counters.
type soakStats struct {
	connects, dialFailures       atomic.Int64
	subscribes, unsubscribes     atomic.Int64
	refreshes, refreshed         atomic.Int64
	expired, tooSlow, otherClose atomic.Int64
	events, errors               atomic.Int64
	firstError                   atomic.Value // string: the first error frame, to show
}

func (st *soakStats) errorFrame(b []byte) {
	st.errors.Add(1)
	st.firstError.CompareAndSwap(nil, string(b))
}

// steadyClient is one well-behaved client.
type steadyClient struct {
	user, group string
	hub         string

	mu         sync.Mutex
	since      time.Time                 // when its subscriptions were confirmed
	got        map[string]map[int64]bool // channel → message numbers received
	repeats    int64
	told       int64 // "subscribed" frames with recovered:false: a gap it was told of
	unexpected []string
}

func (c *steadyClient) channels() []string { return []string{"group:" + c.group, "user:" + c.user} }

// run keeps the client connected until ctx ends; a session that ends
// before is recorded as unexpected, and the client connects again.
func (c *steadyClient) run(ctx context.Context, cfg config, st *soakStats) {
	for ctx.Err() == nil {
		c.session(ctx, cfg, st)
		if ctx.Err() == nil {
			retry.Sleep(ctx, time.Second)
		}
	}
}

func (c *steadyClient) session(ctx context.Context, cfg config, st *soakStats) {
	const ttl = 40 * time.Second
	host := strings.TrimPrefix(c.hub, "http://")
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ws, err := hubload.DialWS(dctx, &net.Dialer{}, host, soakToken(cfg, c.user, ttl, false))
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			st.dialFailures.Add(1)
			c.record("dial: " + err.Error())
		}
		return
	}
	st.connects.Add(1)
	defer ws.Close()
	if err := ws.Write(hubload.OpText, opFrame("subscribe", "channel", "group:"+c.group, "id", 1)); err != nil {
		c.record("subscribe: " + err.Error())
		return
	}
	// The session ends with the run: closing the socket ends the reader.
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	// Refresh at half the token's life, in band, while the session lasts.
	ended := make(chan struct{})
	var refresher sync.WaitGroup
	defer func() { close(ended); refresher.Wait() }()
	refresher.Go(func() {
		t := time.NewTicker(ttl / 2)
		defer t.Stop()
		for id := 100; ; id++ {
			select {
			case <-ended:
				return
			case <-t.C:
			}
			st.refreshes.Add(1)
			if ws.Write(hubload.OpText, opFrame("refresh", "token", soakToken(cfg, c.user, ttl, false), "id", id)) != nil {
				return
			}
		}
	})
	confirmed := 0
	for {
		b, err := ws.Next()
		if err != nil {
			if ctx.Err() == nil {
				c.record("session ended: close code " + strconv.Itoa(ws.CloseCode()) + ": " + err.Error())
			}
			return
		}
		switch field(b, "op") {
		case "event":
			st.events.Add(1)
			c.event(field(b, "channel"), b)
		case "subscribed":
			if bytes.Contains(b, []byte(`"recovered":false`)) && confirmed >= 2 {
				c.mu.Lock()
				c.told++
				c.mu.Unlock()
			}
			// user:<sub> unasked, then the group.
			if confirmed++; confirmed == 2 {
				c.mu.Lock()
				if c.since.IsZero() {
					c.since = time.Now()
				}
				c.mu.Unlock()
			}
		case "refreshed":
			st.refreshed.Add(1)
		case "error":
			st.errorFrame(b)
			c.record("error frame: " + string(b))
		}
	}
}

func (c *steadyClient) event(channel string, b []byte) {
	i := bytes.Index(b, eventSeqMarker)
	if i < 0 {
		return
	}
	seq := hubload.Number(b[i+len(eventSeqMarker):])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string]map[int64]bool{}
	}
	m := c.got[channel]
	if m == nil {
		m = map[int64]bool{}
		c.got[channel] = m
	}
	if m[seq] {
		c.repeats++
	}
	m[seq] = true
}

func (c *steadyClient) record(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unexpected) < 20 {
		c.unexpected = append(c.unexpected, time.Now().Format("15:04:05 ")+what)
	}
}

// churn runs one churning client after another until ctx ends.
// The churners are users u<first>…u<users-1> of those the publisher sends
// one-to-one messages to; the steady clients are the ones before.
func churn(ctx context.Context, cfg config, hubs []string, first, users int, st *soakStats, r *rand.Rand) {
	first = min(first, users-1)
	for n := 0; ctx.Err() == nil; n++ {
		churnOnce(ctx, cfg, hubs[n%len(hubs)], "u"+strconv.Itoa(first+r.IntN(users-first)), st, r)
	}
}

func churnOnce(ctx context.Context, cfg config, hub, user string, st *soakStats, r *rand.Rand) {
	expiring := r.IntN(4) == 0
	ttl := 10 * time.Minute
	if expiring {
		ttl = time.Duration(3+r.IntN(6)) * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ws, err := hubload.DialWS(dctx, &net.Dialer{}, strings.TrimPrefix(hub, "http://"), soakToken(cfg, user, ttl, false))
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			st.dialFailures.Add(1)
			retry.Sleep(ctx, time.Second)
		}
		return
	}
	st.connects.Add(1)
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			b, err := ws.Next()
			if err != nil {
				switch ws.CloseCode() {
				case 0, 1000: // none, or the answer to its own close
				case 4002:
					st.expired.Add(1)
				case 4008:
					st.tooSlow.Add(1)
				default:
					st.otherClose.Add(1)
				}
				return
			}
			switch field(b, "op") {
			case "event":
				st.events.Add(1)
			case "refreshed":
				st.refreshed.Add(1)
			case "error":
				st.errorFrame(b)
			}
		}
	}()
	subscribed := map[string]bool{}
	life := time.After(time.Duration(2+r.IntN(15)) * time.Second)
	if expiring {
		life = nil // until the hub closes it
	}
	tick := time.NewTicker(time.Duration(500+r.IntN(1500)) * time.Millisecond)
	defer tick.Stop()
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			ws.Close()
			<-ended
			return
		case <-ended:
			ws.Close()
			return
		case <-life:
			if r.IntN(2) == 0 {
				_ = ws.Write(hubload.OpClose, []byte{0x03, 0xe8}) // 1000, normal
			}
			ws.Close()
			<-ended
			return
		case <-tick.C:
		}
		var err error
		switch g := "group:G" + strconv.Itoa(r.IntN(max(cfg.Channels, 1))); {
		case !expiring && r.IntN(8) == 0:
			st.refreshes.Add(1)
			err = ws.Write(hubload.OpText, opFrame("refresh", "token", soakToken(cfg, user, ttl, false), "id", id))
		case subscribed[g]:
			st.unsubscribes.Add(1)
			delete(subscribed, g)
			err = ws.Write(hubload.OpText, opFrame("unsubscribe", "channel", g, "id", id))
		case len(subscribed) < 3:
			st.subscribes.Add(1)
			subscribed[g] = true
			err = ws.Write(hubload.OpText, opFrame("subscribe", "channel", g, "id", id))
		default:
			err = ws.Write(hubload.OpText, opFrame("ping", "id", id))
		}
		if err != nil {
			ws.Close()
			<-ended
			return
		}
	}
}

// slowClient takes the app firehose and reads one frame every readEvery
// (never, when 0) until the hub closes it, then connects again.
func slowClient(ctx context.Context, cfg config, hub string, readEvery time.Duration, st *soakStats) {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A small receive window, so that the hub's queue fills within
		// seconds rather than after megabytes of kernel buffers.
		return c.Control(func(fd uintptr) {
			_ = setReceiveBuffer(fd, 4096)
		})
	}}
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, err := hubload.DialWS(dctx, d, strings.TrimPrefix(hub, "http://"), soakToken(cfg, "slow", 10*time.Minute, true))
		cancel()
		if err != nil {
			st.dialFailures.Add(1)
			retry.Sleep(ctx, time.Second)
			continue
		}
		st.connects.Add(1)
		if ws.Write(hubload.OpText, opFrame("subscribe", "channel", "app")) != nil {
			ws.Close()
			continue
		}
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		giveUp := time.Now().Add(2 * time.Minute)
		if readEvery == 0 {
			retry.Sleep(ctx, 30*time.Second)
		}
		// Read slowly; a reader that read nothing reads now, to find the
		// close frame behind what the hub had sent before it gave up.
		for ctx.Err() == nil && time.Now().Before(giveUp) {
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := ws.Next(); err != nil {
				break
			}
			if readEvery > 0 {
				retry.Sleep(ctx, readEvery)
			}
		}
		switch ws.CloseCode() {
		case 4008:
			st.tooSlow.Add(1)
		case 0:
		default:
			st.otherClose.Add(1)
		}
		stop()
		ws.Close()
	}
}

// bulkBursts posts, every period, a burst of n group messages of size
// bytes each to group:Gbulk, which only the slow clients see (in the app
// firehose): enough to fill the kernel's buffers and their queue at the
// hub, whose send buffer would otherwise absorb minutes of the steady
// traffic.
func bulkBursts(ctx context.Context, cfg config, hub string, period time.Duration, n, size int) {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	text := strings.Repeat("b", size)
	for {
		retry.Sleep(ctx, period)
		if ctx.Err() != nil {
			return
		}
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 4 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) && ctx.Err() == nil {
					seq := hubload.NextSeq()
					body := fmt.Sprintf(`{"GroupId":"Gbulk","From_Account":"bench","MsgSeq":%d,"Random":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`, seq, seq, text)
					u := hub + "/im/callback?" + hubload.CallbackQuery(cfg.App, cfg.CallbackToken, "Group.CallbackAfterSendMsg")
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
					if err != nil {
						return
					}
					req.Header.Set("Content-Type", "application/json")
					if resp, err := client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			})
		}
		wg.Wait()
	}
}
