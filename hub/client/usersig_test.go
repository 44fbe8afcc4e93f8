package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
)

const (
	testApp = "1400000000"
	testKey = "client-test-im-secret-key"
)

// handshake is what the stand-in saw of one connection's request.
type handshake struct {
	authorization string
	query         url.Values
}

// standIn speaks for the hub: it takes every WebSocket, records its
// request, and hands the connection to the test, which reads and writes
// the frames.
type standIn struct {
	url   string
	shook chan handshake
	conns chan *websocket.Conn
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{shook: make(chan handshake, 16), conns: make(chan *websocket.Conn, 16)}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.shook <- handshake{authorization: r.Header.Get("Authorization"), query: r.URL.Query()}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		s.conns <- conn
		<-stop
		conn.CloseNow()
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
	})
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	return s
}

// accept waits for the next connection and its request.
func (s *standIn) accept(t *testing.T) (*websocket.Conn, handshake) {
	t.Helper()
	select {
	case h := <-s.shook:
		return <-s.conns, h
	case <-time.After(10 * time.Second):
		t.Fatal("no connection to the stand-in")
		return nil, handshake{}
	}
}

func send(t *testing.T, conn *websocket.Conn, f string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(f)))
}

// next reads the client's next frame, as JSON text and decoded.
func next(t *testing.T, conn *websocket.Conn) (string, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := conn.Read(ctx)
	require.NoError(t, err, "a frame from the client")
	var f map[string]any
	require.NoError(t, json.Unmarshal(b, &f))
	return string(b), f
}

// signer hands out UserSigs of user, each issued by a clock skew behind
// ours and living life, and remembers them in order.
type signer struct {
	user string
	skew time.Duration
	life func(n int) time.Duration
	mu   sync.Mutex
	sigs []string
	at   []time.Time // when each was handed out
}

func (s *signer) sig(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig, err := auth.SignUserSig([]byte(testKey), testApp, s.user, time.Now().Add(-s.skew), s.life(len(s.sigs)))
	s.sigs = append(s.sigs, sig)
	s.at = append(s.at, time.Now())
	return sig, err
}

func (s *signer) nth(n int) (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sigs[n], s.at[n]
}

func run(t *testing.T, cfg Config) (*Client, <-chan error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := New(cfg)
	c.refreshRetry = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(Event) {}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return c, done
}

// The handshake of a UserSig: Authorization: UserSig <sig>, the app and
// the user in the query beside the URL's own, and the UserSig nowhere
// else; a token's is Bearer, with no query added.
func TestUserSigHandshake(t *testing.T) {
	s := newStandIn(t)
	sg := &signer{user: "jared ü&x", life: func(int) time.Duration { return time.Hour }}
	run(t, Config{
		URLs:     []string{s.url + "?v=1"},
		UserSig:  &UserSig{SDKAppID: testApp, UserID: "jared ü&x", Sig: sg.sig},
		Channels: []string{"group:G"},
	})
	conn, h := s.accept(t)
	sig, _ := sg.nth(0)
	assert.Equal(t, "UserSig "+sig, h.authorization)
	assert.Equal(t, url.Values{"v": {"1"}, "sdkappid": {testApp}, "userid": {"jared ü&x"}}, h.query, "no usersig, no token in the query")
	v := auth.NewUserSigVerifier(map[string][]byte{testApp: []byte(testKey)})
	_, err := v.Verify(strings.TrimPrefix(h.authorization, "UserSig "), h.query.Get("sdkappid"), h.query.Get("userid"))
	require.NoError(t, err, "the hub's verifier takes it")
	send(t, conn, `{"op":"connected","user":"jared ü&x","app":"1400000000","node":"n1","channels":["user:jared ü&x"]}`)
	text, _ := next(t, conn)
	assert.JSONEq(t, `{"op":"subscribe","channel":"group:G","id":2}`, text)

	s2 := newStandIn(t)
	run(t, Config{URLs: []string{s2.url}, Token: func(context.Context) (string, error) { return "a.jwt.token", nil }})
	_, h = s2.accept(t)
	assert.Equal(t, "Bearer a.jwt.token", h.authorization)
	assert.Empty(t, h.query)
}

// A UserSig is handed over in band ahead of the end it states, counted
// by its own life (TLS.expire) from when it came, whatever the signer's
// clock says; each answer taken, the next follows its successor's life;
// a refused refresh is tried again; the connection stays.
func TestUserSigRefreshedInBand(t *testing.T) {
	s := newStandIn(t)
	// Signed an hour ago by the signer's clock, each living 3 s: due 1.5 s
	// after it came (half a life shorter than two minutes), never at once.
	sg := &signer{user: "jared", skew: time.Hour, life: func(int) time.Duration { return 3 * time.Second }}
	var refused []string
	var mu sync.Mutex
	run(t, Config{
		URLs:         []string{s.url},
		UserSig:      &UserSig{SDKAppID: testApp, UserID: "jared", Sig: sg.sig},
		RefreshAhead: 2 * time.Minute,
		OnError: func(code, message, channel string) {
			mu.Lock()
			refused = append(refused, code+": "+message)
			mu.Unlock()
		},
	})
	conn, _ := s.accept(t)
	send(t, conn, `{"op":"connected","user":"jared","app":"1400000000","node":"n1","channels":["user:jared"]}`)
	for n := 1; n <= 3; n++ {
		text, f := next(t, conn)
		got := time.Now()
		sig, _ := sg.nth(n)
		_, prev := sg.nth(n - 1)
		id := fmt.Sprintf("refresh:%d", n)
		assert.JSONEq(t, fmt.Sprintf(`{"op":"refresh","usersig":%q,"id":%q}`, sig, id), text)
		assert.GreaterOrEqual(t, got.Sub(prev), 1500*time.Millisecond-10*time.Millisecond, "refresh %d not before it was due", n)
		if n < 3 {
			send(t, conn, fmt.Sprintf(`{"op":"refreshed","expires":%d,"id":%q}`, time.Now().Unix(), f["id"]))
		} else {
			send(t, conn, fmt.Sprintf(`{"op":"error","code":"forbidden","message":"refresh refused","id":%q}`, f["id"]))
		}
	}
	text, f := next(t, conn)
	assert.Equal(t, "refresh", f["op"], text)
	assert.Equal(t, "refresh:4", f["id"], "the refused one tried again, with a fresh UserSig")
	sig, _ := sg.nth(4)
	assert.Equal(t, sig, f["usersig"])
	mu.Lock()
	assert.Equal(t, []string{"forbidden: refresh refused"}, refused)
	mu.Unlock()
	select {
	case <-s.shook:
		t.Fatal("a second connection: the refresh should have kept the first")
	default:
	}
}

func TestRefreshAfter(t *testing.T) {
	for _, c := range []struct{ life, ahead, want time.Duration }{
		{180 * 24 * time.Hour, time.Minute, 180*24*time.Hour - time.Minute},
		{10 * time.Minute, time.Minute, 9 * time.Minute},
		{time.Minute, time.Minute, 30 * time.Second},
		{3 * time.Second, time.Minute, 1500 * time.Millisecond},
		{time.Second, time.Minute, time.Second},
		{0, time.Minute, time.Second},
	} {
		assert.Equal(t, c.want, refreshAfter(c.life, c.ahead), "life %v", c.life)
	}
}

// A UserSig that names another user or app than Config.UserSig is a
// mistake no retry mends: Run stops with ErrUnauthorized before it dials.
func TestUserSigOfAnotherUser(t *testing.T) {
	s := newStandIn(t)
	for _, c := range []struct{ name, user, app, want string }{
		{"another user", "bob", testApp, `the UserSig is of user "bob" of app 1400000000, not of user "jared" of app 1400000000`},
		{"another app", "jared", "1400000001", `the UserSig is of user "jared" of app 1400000001, not of user "jared" of app 1400000000`},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig, err := auth.SignUserSig([]byte(testKey), c.app, c.user, time.Now(), time.Hour)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl := New(Config{URLs: []string{s.url}, Logger: slog.New(slog.DiscardHandler),
				UserSig: &UserSig{SDKAppID: testApp, UserID: "jared", Sig: func(context.Context) (string, error) { return sig, nil }}})
			err = cl.Run(ctx, func(Event) {})
			require.ErrorIs(t, err, ErrUnauthorized)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), sig, "the UserSig is not repeated")
			assert.Empty(t, s.shook, "no connection was made")
		})
	}
}

// A UserSig the client cannot read is still presented: the hub judges it;
// it is just not refreshed in band (no due time), and the hub's 4002 at
// its end brings a fresh one.
func TestUserSigThatDoesNotDecode(t *testing.T) {
	s := newStandIn(t)
	cfg := Config{URLs: []string{s.url}, UserSig: &UserSig{SDKAppID: testApp, UserID: "jared", Sig: func(context.Context) (string, error) { return "not-a-usersig", nil }}}
	cred, err := New(cfg).credential(context.Background())
	require.NoError(t, err)
	assert.True(t, cred.due.IsZero(), "no refresh due: %v", cred.due)
	run(t, cfg)
	_, h := s.accept(t)
	assert.Equal(t, "UserSig not-a-usersig", h.authorization)
	assert.Equal(t, url.Values{"sdkappid": {testApp}, "userid": {"jared"}}, h.query)
}

func TestConfigRefusals(t *testing.T) {
	tok := func(context.Context) (string, error) { return "t", nil }
	sig := func(context.Context) (string, error) { return "s", nil }
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URLs", Config{Token: tok}, "client: URLs are required"},
		{"no credential", Config{URLs: []string{"ws://x/ws"}}, "client: Token or UserSig is required"},
		{"both", Config{URLs: []string{"ws://x/ws"}, Token: tok, UserSig: &UserSig{SDKAppID: testApp, UserID: "u", Sig: sig}}, "client: Token and UserSig are exclusive: set one"},
		{"no app", Config{URLs: []string{"ws://x/ws"}, UserSig: &UserSig{UserID: "u", Sig: sig}}, "client: UserSig needs SDKAppID, UserID and Sig"},
		{"no user", Config{URLs: []string{"ws://x/ws"}, UserSig: &UserSig{SDKAppID: testApp, Sig: sig}}, "client: UserSig needs SDKAppID, UserID and Sig"},
		{"no Sig", Config{URLs: []string{"ws://x/ws"}, UserSig: &UserSig{SDKAppID: testApp, UserID: "u"}}, "client: UserSig needs SDKAppID, UserID and Sig"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := New(c.cfg).Run(context.Background(), func(Event) {})
			assert.EqualError(t, err, c.want)
		})
	}
}

// A subscription the hub ends with a reason reaches OnRemoved after the
// event that says why, in order with the events; it is not subscribed
// again after a reconnect, and its offset is forgotten. An unsubscribed
// without a reason, or with an id, ends nothing.
func TestRemovedNotResubscribed(t *testing.T) {
	s := newStandIn(t)
	var mu sync.Mutex
	var seen []string
	note := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	c := New(Config{
		URLs:       []string{s.url},
		Token:      func(context.Context) (string, error) { return "t", nil },
		Channels:   []string{"group:G", "group:D", "group:K"},
		MinBackoff: time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
		OnRemoved:  func(channel, reason string) { note("removed " + channel + " " + reason) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(e Event) { note("event " + e.Channel + " " + e.Offset) }) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	conn, _ := s.accept(t)
	send(t, conn, `{"op":"connected","user":"jared","app":"1400000000","node":"n1","channels":["user:jared"]}`)
	for range 3 {
		_, f := next(t, conn)
		send(t, conn, fmt.Sprintf(`{"op":"subscribed","channel":%q,"offset":"1:e","id":%v}`, f["channel"], f["id"]))
	}
	for _, f := range []string{
		`{"op":"event","channel":"group:G","offset":"2:e","event":{"type":"group.member.left"}}`,
		`{"op":"unsubscribed","channel":"group:G","reason":"removed"}`,
		`{"op":"event","channel":"group:D","offset":"2:e","event":{"type":"group.destroyed"}}`,
		`{"op":"unsubscribed","channel":"group:D","reason":"destroyed"}`,
		`{"op":"event","channel":"group:G","offset":"3:e","event":{}}`,        // none should come: none is taken
		`{"op":"unsubscribed","channel":"group:K"}`,                           // no reason: ends nothing
		`{"op":"unsubscribed","channel":"group:K","reason":"removed","id":9}`, // an answer: not the hub's own
		`{"op":"event","channel":"group:K","offset":"2:e","event":{}}`,
	} {
		send(t, conn, f)
	}
	want := []string{"event group:G 2:e", "removed group:G removed", "event group:D 2:e", "removed group:D destroyed", "event group:K 2:e"}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(want)
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	assert.Equal(t, want, seen)
	mu.Unlock()
	assert.NotContains(t, c.Offsets(), "group:G")
	assert.NotContains(t, c.Offsets(), "group:D")

	require.NoError(t, conn.Close(websocket.StatusServiceRestart, "draining"))
	conn, _ = s.accept(t)
	send(t, conn, `{"op":"connected","user":"jared","app":"1400000000","node":"n2","channels":["user:jared"]}`)
	// The subscribes go in the order of Channels: group:G and group:D,
	// were they sent, would come before group:K.
	text, f := next(t, conn)
	assert.Equal(t, "group:K", f["channel"], "only group:K is subscribed again: %s", text)
	assert.Equal(t, "2:e", f["since"])
}
