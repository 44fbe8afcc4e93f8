package hub_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/wstest"
)

// imKey is the IM secret key of the app the UserSig tests use.
var imKey = []byte("the-app-s-im-secret-key-0123456789")

const sigApp = "1400000000"

// userSigs verifies the UserSigs of sigApp.
func userSigs() *auth.UserSigVerifier {
	return auth.NewUserSigVerifier(map[string][]byte{sigApp: imKey})
}

// sign makes app's UserSig of user, issued now, valid for ttl.
func sign(t testing.TB, key []byte, app, user string, ttl time.Duration) string {
	t.Helper()
	s, err := auth.SignUserSig(key, app, user, time.Now(), ttl)
	require.NoError(t, err)
	return s
}

// sigURL is the /ws URL a browser connects with: its UserSig in the query.
func (e *env) sigURL(app, user, sig string) string {
	q := url.Values{}
	if app != "" {
		q.Set("sdkappid", app)
	}
	if user != "" {
		q.Set("userid", user)
	}
	if sig != "" {
		q.Set("usersig", sig)
	}
	return e.wsURL() + "?" + q.Encode()
}

// connectSig connects with a UserSig in the query and reads the greeting.
func (e *env) connectSig(user, sig string) *wstest.Conn {
	e.t.Helper()
	c := wstest.Dial(e.t, e.sigURL(sigApp, user, sig), "")
	f := c.ReadOp("connected")
	require.Equal(e.t, user, f.User)
	require.Equal(e.t, sigApp, f.App)
	require.Equal(e.t, "user:"+user, c.ReadOp("subscribed").Channel)
	return c
}

// A browser connects with the UserSig it logs in to the IM with, in the
// query; the Go client with it in the Authorization header. Either way the
// session is the user's, on the user's own channel, and may see nothing
// else a UserSig does not grant: not the app channel, not another user's.
func TestUserSigConnects(t *testing.T) {
	e := newEnv(t, hub.Config{UserSigs: userSigs()})
	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))
	e.publish(sigApp, "user:jared")
	assert.Equal(t, "user:jared", c.ReadOp("event").Channel)
	for _, ch := range []string{"app", "user:tommy", "group:G1"} {
		c.Send(map[string]any{"op": "subscribe", "channel": ch, "id": 1})
		f := c.ReadOp("error")
		assert.Equal(t, hub.CodeForbidden, f.Code, ch)
		c.Send(map[string]any{"op": "presence", "channel": ch, "id": 2})
		assert.Equal(t, hub.CodeForbidden, c.ReadOp("error").Code, "presence of %s", ch)
	}

	h, err := wstest.TryDial(t, e.wsURL()+"?sdkappid="+sigApp+"&userid=tommy", "",
		http.Header{"Authorization": {"UserSig " + sign(t, imKey, sigApp, "tommy", time.Hour)}})
	require.NoError(t, err)
	assert.Equal(t, "tommy", h.ReadOp("connected").User)
}

// Every UserSig that fails is refused with 4001 and the same reason,
// whatever failed; one expired with 4002. A JWT and a UserSig together, or
// a UserSig parameter twice, are refused as well. The debug log says what
// failed, never the UserSig.
func TestUserSigRefusals(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, hub.Config{UserSigs: userSigs(), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	good := sign(t, imKey, sigApp, "jared", time.Hour)
	expired, err := auth.SignUserSig(imKey, sigApp, "jared", time.Now().Add(-2*time.Hour), time.Hour)
	require.NoError(t, err)
	long := strings.Repeat("A", auth.MaxUserSigLen+1)
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		code   websocket.StatusCode
		reason string
	}{
		{"another user's", e.sigURL(sigApp, "tommy", good), nil, hub.CloseInvalidToken, "usersig refused"},
		{"another app", e.sigURL("1400000001", "jared", good), nil, hub.CloseInvalidToken, "usersig refused"},
		{"another key", e.sigURL(sigApp, "jared", sign(t, []byte("another-key"), sigApp, "jared", time.Hour)), nil, hub.CloseInvalidToken, "usersig refused"},
		{"garbage", e.sigURL(sigApp, "jared", "abc"), nil, hub.CloseInvalidToken, "usersig refused"},
		{"longer than any", e.sigURL(sigApp, "jared", long), nil, hub.CloseInvalidToken, "usersig refused"},
		{"no userid", e.sigURL(sigApp, "", good), nil, hub.CloseInvalidToken, "usersig refused"},
		{"no sdkappid", e.sigURL("", "jared", good), nil, hub.CloseInvalidToken, "usersig refused"},
		{"empty", e.sigURL(sigApp, "jared", "") + "&usersig=", nil, hub.CloseInvalidToken, "usersig refused"},
		{"empty header", e.sigURL(sigApp, "jared", ""), http.Header{"Authorization": {"UserSig "}}, hub.CloseInvalidToken, "usersig refused"},
		{"expired", e.sigURL(sigApp, "jared", expired), nil, hub.CloseTokenExpired, "usersig expired"},
		{"and a token", e.sigURL(sigApp, "jared", good) + "&token=" + e.token(), nil, hub.CloseInvalidToken, "give one credential"},
		{"and a bearer token", e.sigURL(sigApp, "jared", good), http.Header{"Authorization": {"Bearer " + e.token()}}, hub.CloseInvalidToken, "give one credential"},
		{"a header sig and a token", e.sigURL(sigApp, "jared", "") + "&token=" + e.token(), http.Header{"Authorization": {"UserSig " + good}}, hub.CloseInvalidToken, "give one credential"},
		{"in the header and the query", e.sigURL(sigApp, "jared", good), http.Header{"Authorization": {"UserSig " + good}}, hub.CloseInvalidToken, "give one credential"},
		{"twice", e.sigURL(sigApp, "jared", good) + "&usersig=" + good, nil, hub.CloseInvalidToken, "give one credential"},
		{"userid twice", e.sigURL(sigApp, "jared", good) + "&userid=tommy", nil, hub.CloseInvalidToken, "give one credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := wstest.TryDial(t, tc.url, "", tc.header)
			require.NoError(t, err)
			_, err = c.TryRead(wstest.Timeout)
			var ce websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.code, ce.Code)
			assert.True(t, strings.HasPrefix(ce.Reason, tc.reason), "reason %q", ce.Reason)
		})
	}
	assert.Equal(t, 16.0, sumOf(t, e, "imhub_ws_auth_failures_total", "credential", "usersig"), "every refusal counted as a UserSig's")
	assert.Equal(t, 6.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "mixed", "credential", "usersig")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "expired", "credential", "usersig")))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "malformed", "credential", "usersig")), "garbage, and the one too long")
	assert.Contains(t, logs.String(), "usersig refused", "the debug log says")
	assert.Contains(t, logs.String(), "reason=signature")
	for _, s := range []string{good, expired, long[:100]} {
		assert.NotContains(t, logs.String(), s, "the log holds no UserSig")
	}
}

// sumOf adds up a counter's series whose label is value.
func sumOf(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// A UserSig session refreshes in band with a later UserSig of the same
// user, through the path a token's refresh takes: it then outlives the
// first one. A UserSig of another user, or a token, is refused, and the
// session keeps what it has; a token and a UserSig at once is a bad
// request.
func TestUserSigRefresh(t *testing.T) {
	e := newEnv(t, hub.Config{UserSigs: userSigs()})
	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", 2*time.Second))
	later := sign(t, imKey, sigApp, "jared", time.Hour)
	for _, tc := range []struct {
		name       string
		frame      map[string]any
		code, text string
	}{
		{"another user's", map[string]any{"usersig": sign(t, imKey, sigApp, "tommy", time.Hour)}, hub.CodeForbidden, "refresh refused: usersig refused"},
		{"garbage", map[string]any{"usersig": "abc"}, hub.CodeForbidden, "refresh refused: usersig refused"},
		{"a token", map[string]any{"token": e.token()}, hub.CodeForbidden, "refresh refused: a session refreshes with the kind of credential it connected with"},
		{"nothing", map[string]any{}, hub.CodeForbidden, "refresh refused: a session refreshes with the kind of credential it connected with"},
		{"both", map[string]any{"usersig": later, "token": e.token()}, hub.CodeBadRequest, "a refresh takes a token or a usersig, not both"},
	} {
		f := map[string]any{"op": "refresh", "id": 7}
		for k, v := range tc.frame {
			f[k] = v
		}
		c.Send(f)
		got := c.ReadOp("error")
		assert.Equal(t, tc.code, got.Code, tc.name)
		assert.True(t, strings.HasPrefix(got.Message, tc.text), "%s: %s", tc.name, got.Message)
		assert.JSONEq(t, "7", string(got.ID), tc.name)
	}
	c.Send(map[string]any{"op": "refresh", "usersig": later, "id": 8})
	r := c.ReadOp("refreshed")
	assert.JSONEq(t, "8", string(r.ID))
	assert.Greater(t, r.Expires, time.Now().Add(50*time.Minute).Unix())
	// Past the first UserSig's end the session still runs.
	time.Sleep(2500 * time.Millisecond)
	c.Send(map[string]any{"op": "ping", "id": 9})
	c.ReadOp("pong")

	// A token session refreshes with tokens only.
	j := e.connect(e.token())
	j.Send(map[string]any{"op": "refresh", "usersig": later, "id": 1})
	assert.Equal(t, hub.CodeForbidden, j.ReadOp("error").Code)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "refresh_other_credential", "credential", "usersig")))
}

// A UserSig that expires without a refresh closes the session with 4002.
func TestUserSigExpires(t *testing.T) {
	e := newEnv(t, hub.Config{UserSigs: userSigs()})
	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Second))
	c.ExpectClose(hub.CloseTokenExpired)
}

// A revocation judges a UserSig by TLS.time, its issue time: one issued
// before it is refused, one issued after let in.
func TestUserSigRevokedByIssueTime(t *testing.T) {
	revs := &stubRevocations{}
	var seen []time.Time
	var mu sync.Mutex
	revs.before = func(id *auth.Identity) {
		mu.Lock()
		seen = append(seen, id.Issued)
		mu.Unlock()
	}
	revs.set(false, "jared")
	e := newEnv(t, hub.Config{UserSigs: userSigs(), Revocations: revs})
	issued := time.Now().Add(-time.Minute).Truncate(time.Second)
	sig, err := auth.SignUserSig(imKey, sigApp, "jared", issued, time.Hour)
	require.NoError(t, err)
	c := wstest.Dial(t, e.sigURL(sigApp, "jared", sig), "")
	c.ExpectClose(hub.CloseInvalidToken)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 1)
	assert.True(t, seen[0].Equal(issued), "judged by TLS.time %v, not %v", issued, seen[0])
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_auth_failures_total", "reason", "revoked", "credential", "usersig")))
}

// syncBuffer is a log written by the hub's goroutines and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
