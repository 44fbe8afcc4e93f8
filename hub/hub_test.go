package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

var secret = []byte("test-secret-test-secret-test-secret")

// countingBroker is the real in-process broker, with its subscribe and
// unsubscribe calls counted.
type countingBroker struct {
	*broker.Memory
	mu          sync.Mutex
	subscribes  map[string]int
	unsubscribe map[string]int
	// historyDelay slows History; historyFail makes it fail. answerDelay
	// holds its answer back once read; historyRead counts the reads.
	historyDelay atomic.Int64
	historyFail  atomic.Bool
	answerDelay  atomic.Int64
	historyRead  atomic.Int64
}

func (b *countingBroker) History(ctx context.Context, app, ch string, since *broker.Position) (broker.History, error) {
	time.Sleep(time.Duration(b.historyDelay.Load()))
	if b.historyFail.Load() {
		return broker.History{}, fmt.Errorf("%w: history switched off", broker.ErrUnavailable)
	}
	h, err := b.Memory.History(ctx, app, ch, since)
	b.historyRead.Add(1)
	time.Sleep(time.Duration(b.answerDelay.Load()))
	return h, err
}

func (b *countingBroker) Subscribe(ctx context.Context, app, ch string) error {
	b.mu.Lock()
	b.subscribes[app+"/"+ch]++
	b.mu.Unlock()
	return b.Memory.Subscribe(ctx, app, ch)
}

func (b *countingBroker) Unsubscribe(ctx context.Context, app, ch string) error {
	b.mu.Lock()
	b.unsubscribe[app+"/"+ch]++
	b.mu.Unlock()
	return b.Memory.Unsubscribe(ctx, app, ch)
}

func (b *countingBroker) counts(key string) (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribes[key], b.unsubscribe[key]
}

// gate passes the broker's deliveries to the hub unless closed: closed, it
// drops them, as a broken broker connection does.
type gate struct {
	h      *hub.Hub
	closed atomic.Bool
}

func (g *gate) HandlePublication(p broker.Publication) {
	if !g.closed.Load() {
		g.h.HandlePublication(p)
	}
}

func (g *gate) HandleReconnect() { g.h.HandleReconnect() }

type env struct {
	t      *testing.T
	hub    *hub.Hub
	gate   *gate
	broker *countingBroker
	srv    *httptest.Server
	reg    *prometheus.Registry
	seq    int
}

func newEnv(t *testing.T, cfg hub.Config, apps ...string) *env {
	t.Helper()
	return newEnvWith(t, cfg, broker.Config{DedupeWindow: time.Minute, HistorySize: 100, HistoryTTL: time.Minute}, apps...)
}

func newEnvWith(t *testing.T, cfg hub.Config, bc broker.Config, apps ...string) *env {
	t.Helper()
	if len(apps) == 0 {
		apps = []string{"1400000000"}
	}
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: apps})
	require.NoError(t, err)
	b := &countingBroker{
		Memory:      broker.NewMemory(bc),
		subscribes:  map[string]int{},
		unsubscribe: map[string]int{},
	}
	reg := prometheus.NewRegistry()
	cfg.Node = "node-a"
	cfg.Metrics = hub.NewMetrics(reg)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := hub.New(cfg, b, v)
	g := &gate{h: h}
	srv := hubtest.Serve(t, h, b, g)
	return &env{t: t, hub: h, gate: g, broker: b, srv: srv, reg: reg}
}

func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws" }

func (e *env) token(mod ...func(*auth.Claims)) string {
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "jared", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	for _, m := range mod {
		m(&c)
	}
	tok, err := auth.Mint(secret, c)
	require.NoError(e.t, err)
	return tok
}

func groups(g ...string) func(*auth.Claims) { return func(c *auth.Claims) { c.Groups = g } }
func admin(c *auth.Claims)                  { c.Admin = true }
func user(u string) func(*auth.Claims)      { return func(c *auth.Claims) { c.Subject = u } }

// connect dials and reads the greeting: connected, then subscribed to the
// user's own channel.
func (e *env) connect(tok string) *wstest.Conn {
	e.t.Helper()
	c := wstest.Dial(e.t, e.wsURL(), tok)
	f := c.ReadOp("connected")
	require.Equal(e.t, []string{"user:" + f.User}, f.Channels)
	sub := c.ReadOp("subscribed")
	require.Equal(e.t, "user:"+f.User, sub.Channel)
	return c
}

func (e *env) publish(app string, channels ...string) broker.Result {
	e.t.Helper()
	e.seq++
	data := fmt.Sprintf(`{"id":"e%d","type":"group.message.sent","n":%d}`, e.seq, e.seq)
	r, err := e.broker.Publish(context.Background(), broker.Message{App: app, ID: fmt.Sprint(e.seq), Channels: channels, Data: []byte(data)})
	require.NoError(e.t, err)
	return r
}

func subscribe(t *testing.T, c *wstest.Conn, channel string, id any) wstest.Frame {
	t.Helper()
	c.Send(map[string]any{"op": "subscribe", "channel": channel, "id": id})
	f := c.Read()
	require.Equal(t, "subscribed", f.Op, f.Raw)
	require.Equal(t, channel, f.Channel)
	return f
}

func eventN(t *testing.T, f wstest.Frame) int {
	t.Helper()
	require.Equal(t, "event", f.Op, f.Raw)
	var ev struct{ N int }
	require.NoError(t, json.Unmarshal(f.Event, &ev))
	return ev.N
}

func TestConnectAndReceive(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := wstest.Dial(t, e.wsURL(), e.token(groups("G1")))
	f := c.ReadOp("connected")
	assert.Equal(t, "jared", f.User)
	assert.Equal(t, "1400000000", f.App)
	assert.Equal(t, "node-a", f.Node)
	assert.Equal(t, []string{"user:jared"}, f.Channels)
	own := c.ReadOp("subscribed")
	assert.Equal(t, "user:jared", own.Channel)
	assert.NotEmpty(t, own.Offset)

	sub := subscribe(t, c, "group:G1", 1)
	assert.JSONEq(t, "1", string(sub.ID), "the id is echoed")
	assert.Nil(t, sub.Recovered, "recovered is said only when since was given")
	r := e.publish("1400000000", "group:G1", "app")
	ev := c.Read()
	assert.Equal(t, "event", ev.Op)
	assert.Equal(t, "group:G1", ev.Channel)
	assert.Equal(t, r.Positions[0].String(), ev.Offset)
	assert.JSONEq(t, `{"id":"e1","type":"group.message.sent","n":1}`, string(ev.Event))

	e.publish("1400000000", "user:jared")
	assert.Equal(t, "user:jared", c.Read().Channel, "the own user channel is live from the start")
}

func TestTokenInHeader(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c, err := wstest.TryDial(t, e.wsURL(), "", http.Header{"Authorization": {"Bearer " + e.token()}})
	require.NoError(t, err)
	assert.Equal(t, "connected", c.Read().Op)
}

func TestAuthCloses(t *testing.T) {
	e := newEnv(t, hub.Config{})
	for _, tc := range []struct {
		name  string
		token string
		code  websocket.StatusCode
	}{
		{"no token", "", hub.CloseInvalidToken},
		{"garbage", "abc", hub.CloseInvalidToken},
		{"wrong secret", func() string {
			tok, _ := auth.Mint([]byte("another-secret-another-secret"), auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
			return tok
		}(), hub.CloseInvalidToken},
		{"other app", e.token(func(c *auth.Claims) { c.App = "999" }), hub.CloseInvalidToken},
		{"expired", e.token(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }), hub.CloseTokenExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, e.wsURL(), tc.token)
			frames := c.ExpectClose(tc.code)
			assert.Empty(t, frames, "nothing is sent before the close")
		})
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "expired")))
}

// A close reason too long for a close frame is cut between characters:
// a reason that is not valid UTF-8 fails the connection in a browser,
// which then never sees the close code.
func TestRefusalReasonIsValidUTF8(t *testing.T) {
	e := newEnv(t, hub.Config{})
	// "token is for app \"x" is 19 bytes: a two-byte character straddles
	// byte 120.
	tok := e.token(func(c *auth.Claims) { c.App = "x" + strings.Repeat("é", 100) })
	c := wstest.Dial(t, e.wsURL(), tok)
	_, err := c.TryRead(wstest.Timeout)
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, hub.CloseInvalidToken, ce.Code)
	assert.True(t, utf8.ValidString(ce.Reason), "reason %q", ce.Reason)
	assert.LessOrEqual(t, len(ce.Reason), 123, "a close frame holds at most 123 bytes of reason")
	assert.Contains(t, ce.Reason, "token is for app")
}

func (e *env) metric(name string, labels ...string) prometheus.Collector {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(e.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if match {
				v := 0.0
				switch {
				case m.GetCounter() != nil:
					v = m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					v = m.GetGauge().GetValue()
				}
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return 0 })
}

// A token that expires while connected closes the session with 4002,
// unless a refresh brought a later one.
func TestExpiryAndRefresh(t *testing.T) {
	e := newEnv(t, hub.Config{})
	soon := func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1500 * time.Millisecond)) }

	expiring := e.connect(e.token(soon))
	expiring.ExpectClose(hub.CloseTokenExpired)

	c := e.connect(e.token(soon, groups("G1", "G2")))
	subscribe(t, c, "group:G1", 1)
	subscribe(t, c, "group:G2", 2)
	c.Send(map[string]any{"op": "refresh", "token": e.token(user("mallory")), "id": 3})
	f := c.ReadOp("error")
	assert.Equal(t, hub.CodeForbidden, f.Code)
	assert.JSONEq(t, "3", string(f.ID))
	c.Send(map[string]any{"op": "refresh", "token": "not-a-token", "id": 4})
	assert.Equal(t, hub.CodeForbidden, c.ReadOp("error").Code)

	// The new token no longer grants G2: it is unsubscribed.
	c.Send(map[string]any{"op": "refresh", "token": e.token(groups("G1")), "id": 5})
	un := c.ReadOp("unsubscribed")
	assert.Equal(t, "group:G2", un.Channel)
	ok := c.ReadOp("refreshed")
	assert.JSONEq(t, "5", string(ok.ID))
	assert.Greater(t, ok.Expires, time.Now().Add(30*time.Minute).Unix())

	time.Sleep(2 * time.Second) // past the first token's exp
	e.publish("1400000000", "group:G2")
	e.publish("1400000000", "group:G1")
	ev := c.Read()
	assert.Equal(t, "group:G1", ev.Channel, "still connected, and G2 no longer delivered")
}

func TestSubscribeRules(t *testing.T) {
	e := newEnv(t, hub.Config{MaxSubs: 3})
	c := e.connect(e.token(groups("G1", "G2", "G3")))
	for _, tc := range []struct {
		frame map[string]any
		code  string
	}{
		{map[string]any{"op": "subscribe", "channel": "group:X", "id": "a"}, hub.CodeForbidden},
		{map[string]any{"op": "subscribe", "channel": "user:bob", "id": 1}, hub.CodeForbidden},
		{map[string]any{"op": "subscribe", "channel": "app", "id": 2}, hub.CodeForbidden},
		{map[string]any{"op": "subscribe", "channel": "room:1", "id": 3}, hub.CodeUnknownChannel},
		{map[string]any{"op": "subscribe", "channel": "group:", "id": 4}, hub.CodeUnknownChannel},
		{map[string]any{"op": "subscribe", "channel": "group:" + strings.Repeat("x", 400), "id": 4}, hub.CodeUnknownChannel},
		{map[string]any{"op": "subscribe", "id": 5}, hub.CodeBadRequest},
		{map[string]any{"op": "unsubscribe", "id": 6}, hub.CodeBadRequest},
		{map[string]any{"op": "dance", "id": 7}, hub.CodeBadRequest},
		{map[string]any{"channel": "group:G1", "id": 8}, hub.CodeBadRequest},
		{map[string]any{"op": "ping", "id": map[string]any{"x": 1}}, hub.CodeBadRequest},
	} {
		c.Send(tc.frame)
		f := c.ReadOp("error")
		assert.Equal(t, tc.code, f.Code, "frame %v: %s", tc.frame, f.Raw)
		assert.NotEmpty(t, f.Message)
		if id, ok := tc.frame["id"]; ok {
			if _, isMap := id.(map[string]any); !isMap {
				want, _ := json.Marshal(id)
				assert.JSONEq(t, string(want), string(f.ID))
			}
		}
		if ch, ok := tc.frame["channel"].(string); ok && len(ch) <= 300 {
			assert.Equal(t, ch, f.Channel)
		} else if ok {
			assert.Equal(t, ch[:300]+"…", f.Channel, "a channel no channel can be is echoed clipped")
		}
	}
	subscribe(t, c, "group:G1", 10)
	subscribe(t, c, "group:G2", 11)
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G3", "id": 12})
	f := c.ReadOp("error")
	assert.Equal(t, hub.CodeTooManySubs, f.Code, "user:jared, G1 and G2 make 3")
	subscribe(t, c, "group:G1", 13) // again: no new subscription, still fine

	c.Send(map[string]any{"op": "ping", "id": "p"})
	assert.JSONEq(t, `"p"`, string(c.ReadOp("pong").ID))
	c.Send(map[string]any{"op": "ping"})
	pong := c.ReadOp("pong")
	assert.Empty(t, pong.ID)
	assert.Equal(t, `{"op":"pong"}`, pong.Raw)
}

func TestAdminAndWildcard(t *testing.T) {
	e := newEnv(t, hub.Config{})
	a := e.connect(e.token(admin, user("ops")))
	subscribe(t, a, "app", 1)
	subscribe(t, a, "user:bob", 2)
	subscribe(t, a, "group:any", 3)
	w := e.connect(e.token(groups("*")))
	subscribe(t, w, "group:whatever", 1)
	w.Send(map[string]any{"op": "subscribe", "channel": "app"})
	assert.Equal(t, hub.CodeForbidden, w.ReadOp("error").Code, "all groups is not admin")

	e.publish("1400000000", "group:whatever", "app")
	assert.Equal(t, "app", a.Read().Channel)
	assert.Equal(t, "group:whatever", w.Read().Channel)
}

// Nothing of one app reaches a client of another, on the same channel
// names.
func TestAppsAreIsolated(t *testing.T) {
	e := newEnv(t, hub.Config{}, "100", "200")
	a := e.connect(e.token(groups("G"), func(c *auth.Claims) { c.App = "100" }, admin))
	subscribe(t, a, "group:G", 1)
	subscribe(t, a, "app", 2)
	e.publish("200", "group:G", "app", "user:jared")
	e.publish("100", "group:G")
	f := a.Read()
	assert.Equal(t, "group:G", f.Channel)
	assert.Equal(t, 2, eventN(t, f), "app 200's event never arrived")
	_, err := a.TryRead(200 * time.Millisecond)
	assert.Error(t, err, "no other frame")

	c := wstest.Dial(t, e.wsURL(), e.token())
	c.ExpectClose(hub.CloseInvalidToken) // several apps: the token must name one
}

func TestUnsubscribeAndRefcount(t *testing.T) {
	e := newEnv(t, hub.Config{})
	a := e.connect(e.token(groups("G")))
	b := e.connect(e.token(groups("G"), user("bob")))
	subscribe(t, a, "group:G", 1)
	subscribe(t, b, "group:G", 1)
	subs, unsubs := e.broker.counts("1400000000/group:G")
	assert.Equal(t, 1, subs, "one broker subscription per channel per node")
	assert.Equal(t, 0, unsubs)
	assert.Equal(t, 3.0, testutil.ToFloat64(e.metric("imhub_ws_channels")), "group:G, user:jared, user:bob")

	a.Send(map[string]any{"op": "unsubscribe", "channel": "group:G", "id": 9})
	f := a.ReadOp("unsubscribed")
	assert.JSONEq(t, "9", string(f.ID))
	e.publish("1400000000", "group:G")
	assert.Equal(t, 1, eventN(t, b.Read()))
	e.publish("1400000000", "user:jared")
	assert.Equal(t, "user:jared", a.Read().Channel, "a got nothing of G after unsubscribing")

	_, unsubs = e.broker.counts("1400000000/group:G")
	assert.Equal(t, 0, unsubs, "bob still needs it")
	_ = b.C.Close(websocket.StatusNormalClosure, "")
	require.Eventually(t, func() bool { _, u := e.broker.counts("1400000000/group:G"); return u == 1 }, 5*time.Second, 10*time.Millisecond,
		"the last local session leaving drops the broker subscription")
}

func TestMalformedFrames(t *testing.T) {
	e := newEnv(t, hub.Config{MaxFrame: 1024})
	c := e.connect(e.token())
	c.SendRaw(websocket.MessageText, []byte("{not json"))
	c.ExpectClose(hub.CloseMalformed)

	c = e.connect(e.token())
	c.SendRaw(websocket.MessageBinary, []byte(`{"op":"ping"}`))
	c.ExpectClose(hub.CloseMalformed)

	c = e.connect(e.token())
	c.SendRaw(websocket.MessageText, []byte(`{"op":"ping","pad":"`+strings.Repeat("x", 2000)+`"}`))
	c.ExpectClose(hub.CloseTooLarge)
}

// A refused handshake's log line quotes what the client sent (its Origin
// and Host, up to the header limit) only clipped.
func TestRefusedHandshakeLogIsClipped(t *testing.T) {
	var logs hubtest.SyncBuffer
	e := newEnv(t, hub.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	origin := "http://" + strings.Repeat("o", 20000) + ".example"
	_, err := wstest.TryDial(t, e.wsURL(), e.token(), http.Header{"Origin": {origin}})
	require.Error(t, err, "a foreign Origin is refused")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "websocket handshake refused") }, 5*time.Second, 10*time.Millisecond)
	assert.Less(t, len(logs.String()), 1000, "the log line is short")
}

func TestTooManyConnections(t *testing.T) {
	e := newEnv(t, hub.Config{MaxConns: 2})
	e.connect(e.token())
	e.connect(e.token())
	c := wstest.Dial(t, e.wsURL(), e.token())
	c.ExpectClose(hub.CloseTooManyConns)
}

func TestOrigin(t *testing.T) {
	e := newEnv(t, hub.Config{AllowedOrigins: []string{"dash.example.com"}})
	_, err := wstest.TryDial(t, e.wsURL(), e.token(), http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err, "a foreign page may not connect")
	c, err := wstest.TryDial(t, e.wsURL(), e.token(), http.Header{"Origin": {"https://dash.example.com"}})
	require.NoError(t, err)
	assert.Equal(t, "connected", c.Read().Op)
	c, err = wstest.TryDial(t, e.wsURL(), e.token(), http.Header{"Origin": {e.srv.URL}})
	require.NoError(t, err, "the hub's own host is always allowed")
	assert.Equal(t, "connected", c.Read().Op)
}

// The same Origin rules hold for a client the library serves (one that
// offers compression to a hub with it on) as for the others; a pattern
// that is not path.Match syntax allows nothing, and takes nothing from
// the patterns after it.
func TestOriginWithCompression(t *testing.T) {
	for _, compression := range []bool{false, true} {
		t.Run(fmt.Sprint("compression=", compression), func(t *testing.T) {
			e := newEnv(t, hub.Config{Compression: compression, AllowedOrigins: []string{"[bad", "https://dash.example.com"}})
			for origin, ok := range map[string]bool{
				"https://dash.example.com": true,
				"http://dash.example.com":  false,
				"https://[bad":             false,
				"null":                     false,
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, resp, err := websocket.Dial(ctx, e.wsURL()+"?token="+e.token(), &websocket.DialOptions{
					HTTPHeader:      http.Header{"Origin": {origin}},
					CompressionMode: websocket.CompressionNoContextTakeover,
				})
				cancel()
				if !ok {
					require.Error(t, err, "%s refused", origin)
					assert.Equal(t, http.StatusForbidden, resp.StatusCode, origin)
					continue
				}
				require.NoError(t, err, origin)
				assert.Equal(t, compression, resp.Header.Get("Sec-WebSocket-Extensions") != "", "the library served it")
				_ = c.CloseNow()
			}
		})
	}
}

// A client that stops reading is closed with 4008 when its queue
// overflows; a fast client on the same channel gets every event, and the
// publisher is never held up.
func TestSlowClient(t *testing.T) {
	// The close frame waits in the socket until the slow client reads
	// again, after the last publication: the write deadline must outlast
	// the publishing, however slow the machine (over a minute has been
	// seen with -race on a loaded one).
	e := newEnv(t, hub.Config{SendQueue: 16, WriteTimeout: 5 * time.Minute})
	fast := e.connect(e.token(groups("G")))
	slow := e.connect(e.token(groups("G"), user("slow")))
	subscribe(t, fast, "group:G", 1)
	subscribe(t, slow, "group:G", 1)

	// 400 events of 64 KiB overflow the socket buffers of a client that
	// does not read. The publisher keeps at most 8 events ahead of the
	// fast client, within its queue, so only the slow one falls behind.
	const n, window = 400, 8
	big := strings.Repeat("x", 64<<10)
	got := make(chan int, n)
	go func() {
		for range n {
			f, err := fast.TryRead(30 * time.Second)
			if err != nil {
				close(got)
				return
			}
			got <- eventN(t, f)
		}
		close(got)
	}()
	want := 1
	check := func(n int) {
		require.Equal(t, want, n, "fast client: in order, no gap")
		want++
	}
	for i := 1; i <= n; i++ {
		for i-want > window {
			v, ok := <-got
			require.True(t, ok, "the fast client was cut off after %d events", want-1)
			check(v)
		}
		data := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, big)
		_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint(i), Channels: []string{"group:G"}, Data: []byte(data)})
		require.NoError(t, err)
	}
	for v := range got {
		check(v)
	}
	assert.Equal(t, n+1, want, "the fast client got all %d events", n)
	slow.ExpectClose(hub.CloseTooSlow)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4008")))
	assert.Greater(t, testutil.ToFloat64(e.metric("imhub_ws_frames_dropped_total")), 0.0)
}

// A client that neither reads nor answers pings is found dead and closed.
func TestDeadClientIsClosed(t *testing.T) {
	e := newEnv(t, hub.Config{PingInterval: 100 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	c := wstest.Dial(t, e.wsURL(), e.token())
	_ = c // never read: pongs are only sent by a reading client
	require.Eventually(t, func() bool { return e.hub.Sessions() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 10*time.Second, 20*time.Millisecond,
		"the hub pings, gets no pong, and drops the connection")

	// A live client answers pings and stays.
	live := e.connect(e.token())
	go func() {
		for {
			if _, err := live.TryRead(time.Minute); err != nil {
				return
			}
		}
	}()
	time.Sleep(time.Second)
	assert.Equal(t, 1, e.hub.Sessions())
}

func TestDrain(t *testing.T) {
	e := newEnv(t, hub.Config{})
	var conns []*wstest.Conn
	for range 5 {
		conns = append(conns, e.connect(e.token()))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.hub.Drain(ctx, 500*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "closes are spread over the period")
	for _, c := range conns {
		c.ExpectClose(hub.CloseShuttingDown)
	}
	late := wstest.Dial(t, e.wsURL(), e.token())
	late.ExpectClose(hub.CloseShuttingDown)
}

// subscribe with since replays what history holds after it, then goes
// live, with no gap and no duplicate.
func TestSinceReplay(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	first := subscribe(t, c, "group:G", 1)
	for range 3 {
		e.publish("1400000000", "group:G")
	}
	var last string
	for i := 1; i <= 3; i++ {
		f := c.Read()
		assert.Equal(t, i, eventN(t, f))
		if i == 1 {
			last = f.Offset
		}
	}
	_ = c.C.Close(websocket.StatusNormalClosure, "")
	e.publish("1400000000", "group:G") // 4, while away

	c = e.connect(e.token(groups("G")))
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": last, "id": 2})
	sub := c.ReadOp("subscribed")
	require.NotNil(t, sub.Recovered)
	assert.True(t, *sub.Recovered)
	for want := 2; want <= 4; want++ {
		assert.Equal(t, want, eventN(t, c.Read()))
	}
	e.publish("1400000000", "group:G")
	assert.Equal(t, 5, eventN(t, c.Read()), "then live")

	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": "garbage", "id": 3})
	sub = c.ReadOp("subscribed")
	require.NotNil(t, sub.Recovered)
	assert.False(t, *sub.Recovered)
	assert.NotEqual(t, first.Offset, sub.Offset)
	e.publish("1400000000", "group:G")
	assert.Equal(t, 6, eventN(t, c.Read()))
}

// With -compression, a client that offers permessage-deflate gets it and
// events arrive intact; without it, the offer is declined.
func TestCompression(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			e := newEnv(t, hub.Config{Compression: on})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, e.wsURL()+"?token="+e.token(groups("G")), &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
			require.NoError(t, err)
			defer c.CloseNow()
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if on {
				assert.Contains(t, ext, "permessage-deflate")
			} else {
				assert.Empty(t, ext)
			}
			for range 2 { // connected, subscribed
				_, _, err := c.Read(ctx)
				require.NoError(t, err)
			}
			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","channel":"group:G"}`)))
			_, _, err = c.Read(ctx)
			require.NoError(t, err)
			big := strings.Repeat("compressible ", 2000)
			_, err = e.broker.Publish(ctx, broker.Message{App: "1400000000", ID: "z", Channels: []string{"group:G"}, Data: []byte(`{"t":"` + big + `"}`)})
			require.NoError(t, err)
			_, b, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Contains(t, string(b), big)
		})
	}
}

// Publications that never reached the node are filled in from history:
// on the next publication (an offset jump), and, for a channel gone quiet,
// when the broker reports its connection restored.
func TestGapRepair(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G", "Q")))
	subscribe(t, c, "group:G", 1)
	subscribe(t, c, "group:Q", 2)
	e.publish("1400000000", "group:G") // 1
	assert.Equal(t, 1, eventN(t, c.Read()))

	e.gate.closed.Store(true)
	e.publish("1400000000", "group:G") // 2, lost on the way
	e.publish("1400000000", "group:G") // 3, lost on the way
	e.publish("1400000000", "group:Q") // 4, lost on the way; Q then stays quiet
	e.gate.closed.Store(false)
	e.publish("1400000000", "group:G") // 5
	for _, want := range []int{2, 3, 5} {
		f := c.Read()
		assert.Equal(t, "group:G", f.Channel)
		assert.Equal(t, want, eventN(t, f), "in order, nothing missing, nothing twice")
	}

	e.hub.HandleReconnect()
	f := c.Read()
	assert.Equal(t, "group:Q", f.Channel)
	assert.Equal(t, 4, eventN(t, f))
	e.publish("1400000000", "group:G") // 6
	assert.Equal(t, 6, eventN(t, c.Read()), "and live again, with no repeat")
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_gap_repairs_total", "outcome", "recovered")),
		"the gap on G and the quiet Q; the reconnect's checks of G and the user channel found nothing to fill")
}

// A gap older than history can fill is said plainly: an unasked
// "subscribed" with recovered false and the current offset.
func TestGapBeyondHistory(t *testing.T) {
	e := newEnvWith(t, hub.Config{}, broker.Config{HistorySize: 2, HistoryTTL: time.Minute})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	e.gate.closed.Store(true)
	for range 4 {
		e.publish("1400000000", "group:G") // 1..4, lost; history keeps 3 and 4
	}
	e.gate.closed.Store(false)
	r := e.publish("1400000000", "group:G") // 5
	f := c.ReadOp("subscribed")
	require.NotNil(t, f.Recovered)
	assert.False(t, *f.Recovered)
	assert.Equal(t, "group:G", f.Channel)
	assert.Equal(t, r.Positions[0].String(), f.Offset, "the offset to go on from")
	e.publish("1400000000", "group:G") // 6
	assert.Equal(t, 6, eventN(t, c.Read()))
}

// A slow repair after a broker reconnect holds live events back, more than
// the send queue holds: the client is not closed for the hub's delay, and
// gets every event once, in order.
func TestSlowRepairKeepsClients(t *testing.T) {
	e := newEnv(t, hub.Config{SendQueue: 16})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	e.gate.closed.Store(true)
	e.publish("1400000000", "group:G") // 1, missed
	e.gate.closed.Store(false)
	e.broker.historyDelay.Store(int64(300 * time.Millisecond))
	e.hub.HandleReconnect()
	for range 40 { // 2..41, live while the repair waits for history
		e.publish("1400000000", "group:G")
	}
	for want := 1; want <= 41; want++ {
		f, err := c.TryRead(10 * time.Second)
		require.NoError(t, err, "the client was cut off after %d events", want-1)
		require.Equal(t, want, eventN(t, f))
	}
}

// A broker reconnect with nothing missed (Redis came back before anything
// was published), then a burst that trims history before the repair reads
// it: the events came live and were held back, so nothing is lost and the
// client is not told recovered:false.
func TestRepairCoveredByHeldEvents(t *testing.T) {
	e := newEnvWith(t, hub.Config{}, broker.Config{HistorySize: 3, HistoryTTL: time.Minute})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	e.publish("1400000000", "group:G") // 1
	assert.Equal(t, 1, eventN(t, c.Read()))
	e.broker.historyDelay.Store(int64(300 * time.Millisecond))
	e.hub.HandleReconnect()
	for range 10 { // 2..11, live while the repair waits; history keeps 9..11
		e.publish("1400000000", "group:G")
	}
	for want := 2; want <= 11; want++ {
		f, err := c.TryRead(10 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "event", f.Op, "after %d: %s", want-1, f.Raw)
		require.Equal(t, want, eventN(t, f))
	}
	assert.Equal(t, 0.0, testutil.ToFloat64(e.metric("imhub_ws_gap_repairs_total", "outcome", "lost")))
}

// A subscribe with since whose history read fails does not guess: it is
// refused, and a retry works.
func TestSinceWhenHistoryFails(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	for range 3 {
		e.publish("1400000000", "group:G")
	}
	var offs []string
	for range 3 {
		offs = append(offs, c.Read().Offset)
	}
	c.Send(map[string]any{"op": "unsubscribe", "channel": "group:G"})
	c.ReadOp("unsubscribed")
	e.broker.historyFail.Store(true)
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": offs[1], "id": 2})
	f := c.ReadOp("error")
	assert.Equal(t, hub.CodeUnavailable, f.Code)
	e.publish("1400000000", "group:G") // 4: not subscribed, not delivered
	e.broker.historyFail.Store(false)
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": offs[1], "id": 3})
	sub := c.ReadOp("subscribed")
	require.NotNil(t, sub.Recovered)
	assert.True(t, *sub.Recovered)
	assert.Equal(t, 3, eventN(t, c.Read()), "from after the offset asked for")
	assert.Equal(t, 4, eventN(t, c.Read()))
}

// A client that stops reading while its queue has room is dropped when a
// write runs past its deadline, and counted as too slow (4008): its queue
// here never fills, so only the deadline can end it.
func TestStalledWriteCountedAsTooSlow(t *testing.T) {
	e := newEnv(t, hub.Config{SendQueue: 100000, SendQueueBytes: 1 << 40, WriteTimeout: 300 * time.Millisecond})
	slow := e.connect(e.token(groups("G"), user("slow")))
	subscribe(t, slow, "group:G", 1)
	big := strings.Repeat("x", 64<<10)
	for i := 1; i <= 400; i++ {
		data := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, big)
		_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint("s", i), Channels: []string{"group:G"}, Data: []byte(data)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_connections")) == 0 },
		20*time.Second, 20*time.Millisecond, "the session is gone")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4008")), "counted as too slow")
}

// A client too slow even to take its close frame is dropped by the write
// deadline; its 4008 is counted all the same, when it is decided.
func TestSlowClientDroppedByDeadlineIsCounted(t *testing.T) {
	e := newEnv(t, hub.Config{SendQueue: 16, WriteTimeout: 300 * time.Millisecond})
	slow := e.connect(e.token(groups("G"), user("slow")))
	subscribe(t, slow, "group:G", 1)
	big := strings.Repeat("x", 64<<10)
	for i := 1; i <= 400; i++ {
		data := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, big)
		_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint("d", i), Channels: []string{"group:G"}, Data: []byte(data)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4008")) == 1
	}, 20*time.Second, 20*time.Millisecond, "the 4008 is counted")
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_connections")) == 0 },
		20*time.Second, 20*time.Millisecond, "the session is gone")
}
