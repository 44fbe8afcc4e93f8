package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/api"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/hub/presence"
	"github.com/imhub/imhub/internal/redistest"
)

const (
	keyA = "key-of-app-100-0123456789"
	keyB = "key-of-app-200-0123456789"
)

// fixture is the API over the in-process broker, presence and control
// channel, with the commands the nodes were sent recorded; the nodes
// answer each that they closed closes sessions.
type fixture struct {
	srv      *httptest.Server
	broker   *broker.Memory
	presence *presence.Tracker
	revs     *control.Revocations
	commands []control.Command
	closes   int
	reg      *prometheus.Registry
	metrics  *api.Metrics
}

// newFixture serves the API with keys of apps 100 and 200, the hub also
// serving app 300 without a key; opts change its config.
func newFixture(t *testing.T, opts ...func(*api.Config)) *fixture {
	t.Helper()
	f := &fixture{
		broker:   broker.NewMemory(broker.Config{DedupeWindow: time.Minute, HistorySize: 10, HistoryTTL: time.Minute}),
		presence: presence.New(presence.Config{}),
		revs:     control.NewRevocations(control.RevocationsConfig{MaxTTL: time.Hour}),
		reg:      prometheus.NewRegistry(),
	}
	f.metrics = api.NewMetrics(f.reg)
	bus := control.NewBus(control.BusConfig{}, func(c control.Command) int { f.commands = append(f.commands, c); return f.closes })
	cfg := api.Config{
		Keys:        []api.Key{{App: "100", Key: keyA}, {App: "200", Key: keyB}},
		MaxBody:     1024,
		Publisher:   f.broker,
		Presence:    f.presence,
		Bus:         bus,
		Revocations: f.revs,
		Metrics:     f.metrics,
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.srv = httptest.NewServer(api.New(cfg))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) call(t *testing.T, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	resp, out := f.raw(t, method, path, key, body)
	return resp.StatusCode, out
}

// raw is call with the whole response, its body read and closed.
func (f *fixture) raw(t *testing.T, method, path, key, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out), "answer is JSON: %s", data)
	return resp, out
}

// published is the latest offset of app 100's channel, 0 when nothing.
func (f *fixture) published(t *testing.T, channel string) uint64 {
	h, err := f.broker.History(context.Background(), "100", channel, nil)
	require.NoError(t, err)
	return h.Latest.Offset
}

// Every request the API refuses gets its status and a message saying what
// was wrong, and nothing is published nor sent to the nodes.
func TestRejections(t *testing.T) {
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	big := `{"channel":"user:jared","data":"` + strings.Repeat("x", 2000) + `"}`
	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		msg                           string
	}{
		{"no key", "POST", "/api/publish", "", `{"channel":"user:jared","data":{}}`, 401, "no API key"},
		{"bearer, not apikey", "POST", "/api/publish", "Bearer " + keyA, `{"channel":"user:jared","data":{}}`, 401, "no API key"},
		{"wrong key", "POST", "/api/publish", "apikey " + keyA + "x", `{"channel":"user:jared","data":{}}`, 401, "not valid"},
		{"other app's key", "POST", "/api/publish", "apikey " + keyB, `{"app":"100","channel":"user:jared","data":{}}`, 403, "not for app 100"},
		{"app not served", "POST", "/api/publish", "apikey " + keyA, `{"app":"999","channel":"user:jared","data":{}}`, 403, "not for app 999"},
		{"app without a key", "POST", "/api/publish", "apikey " + keyA, `{"app":"300","channel":"user:jared","data":{}}`, 403, "not for app 300"},
		{"channel app", "POST", "/api/publish", "apikey " + keyA, `{"channel":"app","data":{}}`, 400, "firehose"},
		{"channel missing", "POST", "/api/publish", "apikey " + keyA, `{"data":{}}`, 400, "channel is required"},
		{"channel malformed", "POST", "/api/publish", "apikey " + keyA, `{"channel":"room:1","data":{}}`, 400, "is not user:<UserID> or group:<GroupId>"},
		{"channel without a name", "POST", "/api/publish", "apikey " + keyA, `{"channel":"group:","data":{}}`, 400, "is not user"},
		{"channel too long", "POST", "/api/publish", "apikey " + keyA, `{"channel":"group:` + strings.Repeat("g", 300) + `","data":{}}`, 400, "longer than 300"},
		{"data missing", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared"}`, 400, "data is required"},
		{"data null", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":null}`, 400, "data is required"},
		{"body not JSON", "POST", "/api/publish", "apikey " + keyA, `channel=user:jared`, 400, "not the JSON object"},
		{"data not JSON", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{x}}`, 400, "not the JSON object"},
		{"unknown key", "POST", "/api/publish", "apikey " + keyA, `{"chanel":"user:jared","data":{}}`, 400, `unknown key "chanel": this call takes app, channel, data, idempotency_key`},
		{"key in another case", "POST", "/api/publish", "apikey " + keyA, `{"Channel":"user:jared","data":{}}`, 400, `unknown key "Channel": names match exactly; did you mean "channel"?`},
		{"key in another case besides the key", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:bob","Channel":"user:jared","data":{}}`, 400, `unknown key "Channel"`},
		{"key twice", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:bob","data":{},"channel":"user:jared"}`, 400, `key "channel" is given more than once`},
		{"key twice, once escaped", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:bob","chann\u0065l":"user:jared","data":{}}`, 400, `key "channel" is given more than once`},
		{"app twice", "POST", "/api/publish", "apikey " + keyA, `{"app":"100","app":"100","channel":"user:jared","data":{}}`, 400, `key "app" is given more than once`},
		{"data twice", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{},"data":1}`, 400, `key "data" is given more than once`},
		{"unknown key clipped", "POST", "/api/publish", "apikey " + keyA, `{"` + strings.Repeat("k", 100) + `":1}`, 400, `unknown key "` + strings.Repeat("k", 64) + `…"`},
		{"user key in another case", "POST", "/api/disconnect", "apikey " + keyA, `{"USER":"jared"}`, 400, `unknown key "USER": names match exactly; did you mean "user"?`},
		{"user twice", "POST", "/api/disconnect", "apikey " + keyA, `{"user":"bob","user":"jared"}`, 400, `key "user" is given more than once`},
		{"issued_before twice", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared","issued_before":1,"issued_before":2}`, 400, `key "issued_before" is given more than once`},
		{"revoke unknown key", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared","issued_before":1,"before":2}`, 400, `unknown key "before": this call takes app, user, issued_before`},
		{"body an array", "POST", "/api/publish", "apikey " + keyA, `[{"channel":"user:jared","data":{}}]`, 400, "not the JSON object expected: it starts with [, not {"},
		{"body a string", "POST", "/api/publish", "apikey " + keyA, `"user:jared"`, 400, "not the JSON object expected: it starts with user:jared, not {"},
		{"body empty", "POST", "/api/publish", "apikey " + keyA, ``, 400, "not the JSON object expected: EOF"},
		{"body cut short", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{}`, 400, "not the JSON object expected"},
		{"two objects", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{}}{}`, 400, "more after"},
		{"a stray bracket after", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{}} ]`, 400, "more after"},
		{"a stray brace after", "POST", "/api/publish", "apikey " + keyA, "{\"channel\":\"user:jared\",\"data\":{}}\n}", 400, "more after"},
		{"not UTF-8", "POST", "/api/publish", "apikey " + keyA, "{\"channel\":\"user:jared\",\"data\":\"\xff\"}", 400, "UTF-8"},
		{"idempotency key too long", "POST", "/api/publish", "apikey " + keyA, `{"channel":"user:jared","data":{},"idempotency_key":"` + strings.Repeat("k", 257) + `"}`, 400, "longer than 256"},
		{"body too large", "POST", "/api/publish", "apikey " + keyA, big, 413, "larger than 1024"},
		{"GET publish", "GET", "/api/publish", "apikey " + keyA, ``, 405, "must be POST"},
		{"unknown call", "POST", "/api/kick", "apikey " + keyA, `{}`, 404, "no such API call"},
		{"disconnect without user", "POST", "/api/disconnect", "apikey " + keyA, `{"app":"100"}`, 400, "user is required"},
		{"disconnect other app", "POST", "/api/disconnect", "apikey " + keyA, `{"app":"200","user":"jared"}`, 403, "not for app 200"},
		{"disconnect no key", "POST", "/api/disconnect", "", `{"user":"jared"}`, 401, "no API key"},
		{"revoke without issued_before", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared"}`, 400, "issued_before is required"},
		{"revoke in the future", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared","issued_before":` + future + `}`, 400, "in the future"},
		{"revoke zero", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared","issued_before":0}`, 400, "greater than zero"},
		{"revoke not a number", "POST", "/api/revoke", "apikey " + keyA, `{"user":"jared","issued_before":"yesterday"}`, 400, "not the JSON object"},
		{"revoke wrong key", "POST", "/api/revoke", "apikey nope", `{"user":"jared","issued_before":1}`, 401, "not valid"},
		{"presence neither", "GET", "/api/presence", "apikey " + keyA, ``, 400, "one of them"},
		{"presence both", "GET", "/api/presence?channel=user:a&user=a", "apikey " + keyA, ``, 400, "one of them"},
		{"presence malformed", "GET", "/api/presence?channel=x", "apikey " + keyA, ``, 400, "is not app, user:<UserID> or group:<GroupId>"},
		{"presence other app", "GET", "/api/presence?app=200&channel=app", "apikey " + keyA, ``, 403, "not for app 200"},
		{"presence app not served", "GET", "/api/presence?app=999&channel=app", "apikey " + keyA, ``, 403, "not for app 999"},
		{"presence channel twice", "GET", "/api/presence?channel=user:bob&channel=user:jared", "apikey " + keyA, ``, 400, `query parameter "channel" is given more than once`},
		{"presence channel twice, once undecodable", "GET", "/api/presence?channel=user:bob&channel=%zz", "apikey " + keyA, ``, 400, `the query does not decode`},
		{"presence with a semicolon", "GET", "/api/presence?channel=user:bob;channel=user:eve", "apikey " + keyA, ``, 400, `the query does not decode`},
		{"presence app twice", "GET", "/api/presence?app=100&app=200&channel=app", "apikey " + keyA, ``, 400, `query parameter "app" is given more than once`},
		{"presence parameter in another case", "GET", "/api/presence?Channel=user:jared", "apikey " + keyA, ``, 400, `unknown query parameter "Channel": names match exactly; did you mean "channel"?`},
		{"presence unknown parameter", "GET", "/api/presence?channel=app&limit=5", "apikey " + keyA, ``, 400, `unknown query parameter "limit": this call takes app, channel, user`},
		{"presence no key", "GET", "/api/presence?channel=app", "", ``, 401, "no API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			status, out := f.call(t, tc.method, tc.path, tc.key, tc.body)
			assert.Equal(t, tc.status, status)
			assert.Contains(t, out["error"], tc.msg)
			assert.Zero(t, f.published(t, "user:jared"), "nothing published")
			assert.Zero(t, f.published(t, "app"), "nothing published")
			assert.Empty(t, f.commands, "no command sent")
			call := strings.TrimPrefix(tc.path, "/api/")
			call, _, _ = strings.Cut(call, "?")
			if call == "kick" {
				call = "other"
			}
			assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Requests(call, tc.status)), "counted")
		})
	}
}

// A publish reaches the channel and the firehose as a custom event with the
// caller's data, and a repeat of its idempotency key answers the first
// offset without publishing again.
func TestPublish(t *testing.T) {
	f := newFixture(t)
	body := `{"app":"100","channel":"user:jared","data":{"text":"shipped", "n": 1},"idempotency_key":"order-1"}`
	status, out := f.call(t, "POST", "/api/publish", "apikey "+keyA, body)
	require.Equal(t, 200, status, out)
	first := out["offset"]
	require.NotEmpty(t, first)
	assert.Nil(t, out["duplicate"])

	h, err := f.broker.History(context.Background(), "100", "user:jared", &broker.Position{})
	require.NoError(t, err)
	require.Len(t, h.Publications, 1)
	assert.Equal(t, first, h.Publications[0].Position.String())
	var ev map[string]any
	require.NoError(t, json.Unmarshal(h.Publications[0].Data, &ev))
	assert.Equal(t, "custom", ev["type"])
	assert.Equal(t, "100", ev["app"])
	assert.Equal(t, map[string]any{"text": "shipped", "n": float64(1)}, ev["data"])
	assert.NotEmpty(t, ev["id"])
	assert.Equal(t, uint64(1), f.published(t, "app"), "the firehose has it too")

	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyA, body)
	require.Equal(t, 200, status, out)
	assert.Equal(t, first, out["offset"], "a repeat answers the first offset")
	assert.Equal(t, true, out["duplicate"])
	assert.Equal(t, uint64(1), f.published(t, "user:jared"), "not published again")

	// The same key on another channel is another publication.
	status, _ = f.call(t, "POST", "/api/publish", "apikey "+keyA, strings.Replace(body, "user:jared", "group:G1", 1))
	require.Equal(t, 200, status)
	assert.Equal(t, uint64(2), f.published(t, "app"))

	// Without a key every publish is new; the app may be left out.
	for range 2 {
		status, _ = f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":"plain"}`)
		require.Equal(t, 200, status)
	}
	assert.Equal(t, uint64(3), f.published(t, "user:jared"))
}

// Disconnect answers the sessions presence counts, 0 for a user with none,
// and sends the order to every node; revoke stores the revocation first,
// and answers the sessions the nodes say they closed.
func TestDisconnectAndRevoke(t *testing.T) {
	f := newFixture(t)
	status, out := f.call(t, "POST", "/api/disconnect", "apikey "+keyA, `{"user":"nobody"}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"sessions": float64(0)}, out)

	f.presence.Connect("100", "jared")
	f.presence.Connect("100", "jared")
	f.presence.Connect("200", "jared")
	status, out = f.call(t, "POST", "/api/disconnect", "apikey "+keyA, `{"app":"100","user":"jared"}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"sessions": float64(2)}, out)

	before := time.Now().Add(-time.Minute).Unix()
	f.closes = 1
	status, out = f.call(t, "POST", "/api/revoke", "apikey "+keyA, `{"user":"jared","issued_before":`+strconv.FormatInt(before, 10)+`}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"sessions": float64(1)}, out)
	assert.Equal(t, []control.Command{
		{Op: control.OpDisconnect, App: "100", User: "nobody"},
		{Op: control.OpDisconnect, App: "100", User: "jared"},
		{Op: control.OpRevoke, App: "100", User: "jared", Before: before},
	}, f.commands)
}

// Presence answers per channel and per user.
func TestPresence(t *testing.T) {
	f := newFixture(t)
	f.presence.Connect("100", "jared")
	f.presence.Join("100", "group:G1", "jared")
	f.presence.Join("100", "group:G1", "jared")
	f.presence.Join("100", "group:G1", "ann")
	f.presence.Join("200", "group:G1", "bob")
	status, out := f.call(t, "GET", "/api/presence?app=100&channel=group:G1", "apikey "+keyA, "")
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"users": map[string]any{"jared": float64(2), "ann": float64(1)}}, out)
	status, out = f.call(t, "GET", "/api/presence?user=jared", "apikey "+keyA, "")
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"online": true, "connections": float64(1)}, out)
	status, out = f.call(t, "GET", "/api/presence?channel=app", "apikey "+keyA, "")
	require.Equal(t, 200, status, out)
	assert.Equal(t, map[string]any{"users": map[string]any{}}, out)
}

// A hub without API keys answers every /api/ call 404, saying how to turn
// the API on.
func TestOff(t *testing.T) {
	srv := httptest.NewServer(api.Off())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/publish", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Contains(t, string(b), "-api-keys")
}

// A repeat whose first publication's position Redis does not hold (its
// dedupe key was written by a node that kept none) still answers an
// offset: the channel's latest, at or after the first.
func TestPublishDuplicateWithoutPosition(t *testing.T) {
	srv := redistest.Start(t)
	b, err := broker.NewRedis(broker.RedisConfig{Config: broker.Config{DedupeWindow: time.Minute, HistorySize: 10, HistoryTTL: time.Minute},
		URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	bus := control.NewBus(control.BusConfig{}, func(control.Command) int { return 0 })
	h := api.New(api.Config{
		Keys: []api.Key{{App: "100", Key: keyA}}, MaxBody: 1024,
		Publisher: b, Presence: presence.New(presence.Config{}), Bus: bus,
		Revocations: control.NewRevocations(control.RevocationsConfig{}), Metrics: api.NewMetrics(prometheus.NewRegistry()),
	})
	f := &fixture{srv: httptest.NewServer(h)}
	t.Cleanup(f.srv.Close)

	status, out := f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":1}`)
	require.Equal(t, 200, status, out)
	latest := out["offset"]
	require.NotEmpty(t, latest)
	sum := sha256.Sum256([]byte("user:jared\norder-9"))
	id := "api:" + hex.EncodeToString(sum[:16])
	for _, ch := range []string{"user:jared", "app"} {
		require.NoError(t, srv.Client().Set(context.Background(), "imhub:{100:"+ch+"}:seen:"+id, "1", time.Minute).Err())
	}
	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":2,"idempotency_key":"order-9"}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, true, out["duplicate"])
	assert.Equal(t, latest, out["offset"], "the channel's latest position")

	// Only the channel had it: published to the firehose, and the
	// channel's position answered all the same.
	sum = sha256.Sum256([]byte("user:jared\norder-10"))
	id = "api:" + hex.EncodeToString(sum[:16])
	require.NoError(t, srv.Client().Set(context.Background(), "imhub:{100:user:jared}:seen:"+id, "1", time.Minute).Err())
	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":3,"idempotency_key":"order-10"}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, latest, out["offset"])
}

// With a replica to wait for, a publication no replica confirms in time is
// not acknowledged: 503, to be sent again with its idempotency key, which
// is then answered as the duplicate it is, with its offset, once the
// replica is back.
func TestPublishWaitsForAReplica(t *testing.T) {
	primary, replica := redistest.StartReplicated(t, redistest.Options{})
	b, err := broker.NewRedis(broker.RedisConfig{Config: broker.Config{DedupeWindow: time.Minute, HistorySize: 10, HistoryTTL: time.Minute},
		URL: "redis://" + primary.Addr(), Wait: broker.WaitConfig{Replicas: broker.WaitAuto, Timeout: 50 * time.Millisecond},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	bus := control.NewBus(control.BusConfig{}, func(control.Command) int { return 0 })
	h := api.New(api.Config{
		Keys: []api.Key{{App: "100", Key: keyA}}, MaxBody: 1024,
		Publisher: b, Presence: presence.New(presence.Config{}), Bus: bus, Logger: slog.New(slog.DiscardHandler),
		Revocations: control.NewRevocations(control.RevocationsConfig{}), Metrics: api.NewMetrics(prometheus.NewRegistry()),
	})
	f := &fixture{srv: httptest.NewServer(h)}
	t.Cleanup(f.srv.Close)

	status, out := f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":1,"idempotency_key":"w1"}`)
	require.Equal(t, 200, status, out)
	replica.Pause()
	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":2,"idempotency_key":"w2"}`)
	assert.Equal(t, 503, status, out)
	assert.Equal(t, uint64(1), b.Unreplicated())
	replica.Resume()
	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyA, `{"channel":"user:jared","data":2,"idempotency_key":"w2"}`)
	require.Equal(t, 200, status, out)
	assert.Equal(t, true, out["duplicate"])
	assert.NotEmpty(t, out["offset"])
}

// A body over the limit is answered 413 and the connection closed, as
// http.MaxBytesReader asks the server to: the rest of the body is not
// read, so the connection cannot carry another request.
func TestTooLargeClosesConnection(t *testing.T) {
	f := newFixture(t)
	body := `{"channel":"user:jared","data":"` + strings.Repeat("x", 4096) + `"}`
	req, err := http.NewRequest("POST", f.srv.URL+"/api/publish", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "apikey "+keyA)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.True(t, resp.Close, "Connection: close")
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Requests("publish", http.StatusRequestEntityTooLarge)), "still counted")
}

// clock is a settable clock for the API's Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(time.Now().Unix(), 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// issued_before is unix seconds from 1970 to Skew (60s) ahead of the
// hub's clock, compared as a number: values near the int64 limit, which
// time.Unix wraps round to a time long past, are refused like any other
// future time, as is a time in milliseconds, with a word saying so.
func TestRevokeIssuedBeforeBounds(t *testing.T) {
	clk := newClock()
	now := clk.Now().Unix()
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, tc := range []struct {
		name, value string
		status      int
		msg         string
	}{
		{"one", "1", 200, ""},
		{"a minute ago", n(now - 60), 200, ""},
		{"now", n(now), 200, ""},
		{"the skew ahead", n(now + 60), 200, ""},
		{"a second past the skew", n(now + 61), 400, "in the future"},
		{"milliseconds", n(now * 1000), 400, "looks like milliseconds"},
		{"2^40", n(1 << 40), 400, "in the future"},
		{"2^62", n(1 << 62), 400, "in the future"},
		{"the largest int64", n(math.MaxInt64), 400, "in the future"},
		{"the largest int64 less one", n(math.MaxInt64 - 1), 400, "in the future"},
		{"past int64", "9223372036854775808", 400, "not the JSON object expected"},
		{"zero", "0", 400, "greater than zero"},
		{"minus one", "-1", 400, "greater than zero"},
		{"the smallest int64", n(math.MinInt64), 400, "greater than zero"},
		{"below int64", "-9223372036854775809", 400, "not the JSON object expected"},
		{"a fraction", n(now) + ".5", 400, "not the JSON object expected"},
		{"an exponent", "1.7e9", 400, "not the JSON object expected"},
		{"a string", `"` + n(now) + `"`, 400, "not the JSON object expected"},
		{"null", "null", 400, "issued_before is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *api.Config) { c.Now = clk.Now })
			status, out := f.call(t, "POST", "/api/revoke", "apikey "+keyA, `{"user":"jared","issued_before":`+tc.value+`}`)
			assert.Equal(t, tc.status, status, out)
			if tc.status != 200 {
				assert.Contains(t, out["error"], tc.msg)
				assert.Empty(t, f.commands, "no command sent")
				return
			}
			v, err := strconv.ParseInt(tc.value, 10, 64)
			require.NoError(t, err)
			assert.Equal(t, []control.Command{{Op: control.OpRevoke, App: "100", User: "jared", Before: v}}, f.commands)
		})
	}
}

// Each app with a key has its own quota, of every call together: past
// its burst it is refused with 429, a Retry-After in whole seconds and
// nothing done, counted by app, until its rate has given it a request
// again. A request refused for its key costs no app anything.
func TestQuota(t *testing.T) {
	clk := newClock()
	f := newFixture(t, func(c *api.Config) {
		c.Now = clk.Now
		c.Quota = api.Quota{Rate: 2, Burst: 3}
	})
	publish := `{"channel":"user:jared","data":1}`
	for range 5 {
		status, _ := f.call(t, "POST", "/api/publish", "apikey "+keyA+"x", publish)
		require.Equal(t, 401, status)
	}
	for i := range 3 {
		path, body := "/api/publish", publish
		method := "POST"
		if i == 1 {
			method, path, body = "GET", "/api/presence?user=jared", ""
		}
		status, out := f.call(t, method, path, "apikey "+keyA, body)
		require.Equal(t, 200, status, "request %d: %v", i, out)
	}
	assert.Equal(t, uint64(2), f.published(t, "user:jared"))

	resp, out := f.raw(t, "POST", "/api/publish", "apikey "+keyA, publish)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"), "half a second, rounded up")
	assert.Contains(t, out["error"], "app 100 is over this hub's server API rate limit (2 requests a second, 3 at once): nothing was done; retry after 1 s")
	assert.Equal(t, uint64(2), f.published(t, "user:jared"), "nothing published")
	status, _ := f.call(t, "POST", "/api/disconnect", "apikey "+keyA, `{"user":"jared"}`)
	assert.Equal(t, http.StatusTooManyRequests, status, "every call counts")
	assert.Empty(t, f.commands, "nothing sent to the nodes")
	assert.Equal(t, 2.0, testutil.ToFloat64(f.metrics.RateLimited("100")))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Requests("publish", http.StatusTooManyRequests)))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Requests("disconnect", http.StatusTooManyRequests)))

	status, out = f.call(t, "POST", "/api/publish", "apikey "+keyB, `{"channel":"user:jared","data":1}`)
	assert.Equal(t, 200, status, "app 200 has a quota of its own: %v", out)
	assert.Zero(t, testutil.ToFloat64(f.metrics.RateLimited("200")))

	clk.advance(499 * time.Millisecond)
	status, _ = f.call(t, "POST", "/api/publish", "apikey "+keyA, publish)
	assert.Equal(t, http.StatusTooManyRequests, status, "not yet a whole request")
	clk.advance(time.Millisecond)
	status, _ = f.call(t, "POST", "/api/publish", "apikey "+keyA, publish)
	assert.Equal(t, 200, status, "half a second gives one request")
	status, _ = f.call(t, "POST", "/api/publish", "apikey "+keyA, publish)
	assert.Equal(t, http.StatusTooManyRequests, status, "and only one")
	assert.Equal(t, uint64(3), f.published(t, "user:jared"))
}

// Retry-After is the wait for one request, in whole seconds rounded up:
// 100 s at a hundredth of a request a second; without a Burst, twice the
// rate (at least one) go at once; a zero Rate sets no limit.
func TestQuotaRetryAfterAndDefaults(t *testing.T) {
	clk := newClock()
	for _, tc := range []struct {
		name       string
		quota      api.Quota
		allowed    int // before the first 429, of 50
		retryAfter string
	}{
		{"a request every 100 s", api.Quota{Rate: 0.01, Burst: 1}, 1, "100"},
		{"a burst of twice the rate", api.Quota{Rate: 10}, 20, "1"},
		{"a burst of at least one", api.Quota{Rate: 0.1}, 1, "10"},
		{"no limit", api.Quota{}, 50, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *api.Config) { c.Now = clk.Now; c.Quota = tc.quota })
			allowed := 0
			var resp *http.Response
			for range 50 {
				resp, _ = f.raw(t, "GET", "/api/presence?user=jared", "apikey "+keyA, "")
				if resp.StatusCode != 200 {
					break
				}
				allowed++
			}
			assert.Equal(t, tc.allowed, allowed)
			if tc.retryAfter != "" {
				assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
				assert.Equal(t, tc.retryAfter, resp.Header.Get("Retry-After"))
			}
		})
	}
}

// Only the body's own keys are checked: data is the caller's JSON, passed
// on as it is, whatever its keys.
func TestPublishDataKeysAreTheCallers(t *testing.T) {
	f := newFixture(t)
	status, out := f.call(t, "POST", "/api/publish", "apikey "+keyA,
		` {"channel":"user:jared","data":{"Channel":"x","channel":"y","channel":"z"}} `+"\n")
	require.Equal(t, 200, status, out)
	h, err := f.broker.History(context.Background(), "100", "user:jared", &broker.Position{})
	require.NoError(t, err)
	require.Len(t, h.Publications, 1)
	assert.Contains(t, string(h.Publications[0].Data), `"data":{"Channel":"x","channel":"y","channel":"z"}`)
}
