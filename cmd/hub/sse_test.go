package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/ssetest"
)

// sseURL is node p's /sse URL of channels with the query q besides.
func sseURL(p *hubtest.Process, q url.Values, channels ...string) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	v["channel"] = channels
	return p.URL("/sse?" + v.Encode())
}

// eventKey of an SSE event message: its event's type and sequence.
func sseEventKey(t *testing.T, m ssetest.Message) string {
	t.Helper()
	require.Equal(t, "event", m.Event, m.Data)
	return messageKey(m.Frame.Event)
}

// The built hub streams two channels on /sse with a token in the query,
// resumes them from Last-Event-ID with what it missed, refuses what the
// protocol says before the stream starts, and logs no credential.
func TestBinarySSE(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100,200", "-jwt-secret", clusterSecret, "-log-level", "debug"})
	p.WaitReady(200)
	tok := mint(t, "100", "jared", false, "G1")
	q := url.Values{"token": {tok}}

	for _, tc := range []struct {
		name   string
		url    string
		status int
	}{
		{"no credential", sseURL(p, nil, "group:G1"), http.StatusUnauthorized},
		{"another app's token", sseURL(p, url.Values{"token": {mint(t, "300", "jared", false, "G1")}}, "group:G1"), http.StatusUnauthorized},
		{"forbidden", sseURL(p, q, "group:G1", "group:G2"), http.StatusForbidden},
		{"no channel", sseURL(p, q), http.StatusBadRequest},
		{"bad since", sseURL(p, url.Values{"token": {tok}, "since": {"AAAA"}}, "group:G1"), http.StatusBadRequest},
	} {
		_, status, body := ssetest.TryOpen(t, tc.url, nil)
		assert.Equal(t, tc.status, status, "%s: %s", tc.name, body)
	}
	resp, err := http.Post(sseURL(p, q, "group:G1"), "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	s := ssetest.Open(t, sseURL(p, q, "group:G1", "user:jared"), nil)
	assert.Equal(t, "group:G1", s.ReadEvent("subscribed").Frame.Channel)
	assert.Equal(t, "user:jared", s.ReadEvent("subscribed").Frame.Channel)
	require.Equal(t, 200, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G1", 1)))
	require.Equal(t, 200, postCommand(t, p, "100", "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", 2)))
	assert.Equal(t, "group.message.sent#1", sseEventKey(t, s.Read()))
	second := s.Read()
	assert.Equal(t, "c2c.message.sent#2", sseEventKey(t, second))
	s.Close()

	for seq := 3; seq <= 6; seq++ {
		if seq%2 == 1 {
			require.Equal(t, 200, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G1", seq)))
		} else {
			require.Equal(t, 200, postCommand(t, p, "100", "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", seq)))
		}
	}
	r := ssetest.Open(t, sseURL(p, q, "group:G1", "user:jared"), http.Header{"Last-Event-ID": {second.ID}})
	var got []string
	subscribed := 0
	for len(got) < 4 {
		m := r.Read()
		if m.Event == "subscribed" {
			require.NotNil(t, m.Frame.Recovered, m.Data)
			assert.True(t, *m.Frame.Recovered, m.Data)
			subscribed++
			continue
		}
		got = append(got, sseEventKey(t, m))
	}
	assert.Equal(t, 2, subscribed)
	assert.ElementsMatch(t, []string{"group.message.sent#3", "c2c.message.sent#4", "group.message.sent#5", "c2c.message.sent#6"}, got)

	logs := p.Stdout() + p.Stderr()
	assert.NotContains(t, logs, tok, "no log line holds a token")
	assert.NotContains(t, logs, tok[strings.LastIndexByte(tok, '.')+1:], "nor its signature")
}

// SIGTERM drains a stream as it drains a WebSocket: an error message
// naming 1012, then the end of the response.
func TestBinarySSEDrain(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100,200", "-jwt-secret", clusterSecret, "-drain", "1s"})
	p.WaitReady(200)
	s := ssetest.Open(t, sseURL(p, url.Values{"token": {mint(t, "100", "jared", false)}}, "user:jared"), nil)
	s.ReadEvent("subscribed")
	p.Signal(syscall.SIGTERM)
	got := s.ExpectEnd()
	require.NotEmpty(t, got)
	last := got[len(got)-1]
	assert.Equal(t, "error", last.Event)
	var f struct{ Code string }
	require.NoError(t, json.Unmarshal([]byte(last.Data), &f))
	assert.Equal(t, "closed", f.Code)
	assert.Contains(t, last.Data, `"close":1012`)
	assert.Equal(t, 0, p.Wait(exitWithin))
}

// A UserSig stream of a member the IM's exit callback names is sent the
// group.member.left event, then unsubscribed with reason removed, and
// nothing of the group after; the UserSig is in no log line.
func TestBinarySSEUserSigRemoved(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	p := hubtest.Start(t, append(imArgs(imURL), "-log-level", "debug"))
	p.WaitReady(200)
	sig := userSig(t, "jared")
	q := url.Values{"sdkappid": {imApp}, "userid": {"jared"}, "usersig": {sig}}
	s := ssetest.Open(t, sseURL(p, q, "group:G1", "user:jared"), nil)
	s.ReadEvent("subscribed")
	s.ReadEvent("subscribed")

	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", 1)))
	require.Equal(t, 200, postCommand(t, p, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", 2)))
	left := s.ReadEvent("event")
	assert.Equal(t, "group:G1", left.Frame.Channel)
	assert.Contains(t, string(left.Frame.Event), `"group.member.left"`)
	u := s.ReadEvent("unsubscribed")
	assert.Equal(t, "group:G1", u.Frame.Channel)
	assert.Equal(t, "removed", u.Frame.Reason)
	for { // the exit goes to user:jared too
		m := s.ReadEvent("event")
		require.Equal(t, "user:jared", m.Frame.Channel, "nothing of group:G1 after the removal: %s", m.Data)
		if messageKey(m.Frame.Event) == "c2c.message.sent#2" {
			break
		}
	}

	bad := url.Values{"sdkappid": {imApp}, "userid": {"jared"}, "usersig": {sig + "x"}}
	_, status, body := ssetest.TryOpen(t, sseURL(p, bad, "user:jared"), nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "credential missing or refused\n", body, "never why")
	logs := p.Stdout() + p.Stderr()
	assert.NotContains(t, logs, sig, "no log line holds a UserSig")
}

// For an app whose groups follow the IM, the built hub asks the IM about
// a stream's groups before the stream starts: a group the IM says the
// user is not in is a 403 naming the channel, for a UserSig and a JWT
// alike; an IM that cannot answer, with no answer kept, is a 503 with
// Retry-After; a group whose answer is kept streams though the IM is
// down. Neither answer says anything of the credential.
func TestBinarySSEMembershipBeforeTheStream(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	stub.CreateGroup(imApp, "G2", "Public", "leckie")
	stub.CreateGroup(imApp, "G3", "Public", "leckie", "jared")
	stub.CreateGroup(imApp, "G4", "Public", "leckie", "jared")
	p := hubtest.Start(t, imArgs(imURL))
	p.WaitReady(200)
	sig := userSig(t, "jared")
	q := url.Values{"sdkappid": {imApp}, "userid": {"jared"}, "usersig": {sig}}
	tok := mint(t, imApp, "jared", false, "*")

	for _, cred := range []struct {
		name string
		q    url.Values
	}{{"usersig", q}, {"jwt", url.Values{"token": {tok}}}} {
		s, status, body := ssetest.TryOpen(t, sseURL(p, cred.q, "group:G1", "group:G2"), nil)
		require.Nil(t, s, "%s: the stream does not start", cred.name)
		assert.Equal(t, http.StatusForbidden, status, "%s: %s", cred.name, body)
		assert.True(t, strings.HasPrefix(body, "group:G2: "), "%s: the channel is named: %s", cred.name, body)
		assert.Contains(t, body, "not a member")
		assert.NotContains(t, body, sig)
		assert.NotContains(t, body, "usersig", "nothing of the credential")
	}

	s := ssetest.Open(t, sseURL(p, q, "group:G1", "user:jared"), nil)
	assert.Equal(t, "group:G1", s.ReadEvent("subscribed").Frame.Channel)
	assert.Equal(t, "user:jared", s.ReadEvent("subscribed").Frame.Channel)
	s.Close()

	stub.SetFault(imstub.FaultError)
	resp, err := http.Get(sseURL(p, q, "group:G3"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.True(t, strings.HasPrefix(string(body), "group:G3: "), "the channel is named: %s", body)
	kept := ssetest.Open(t, sseURL(p, q, "group:G1"), nil)
	assert.Equal(t, "group:G1", kept.ReadEvent("subscribed").Frame.Channel, "the answer kept stands while the IM is down")
	kept.Close()

	// G3's failed ask holds it back a moment; G4 was never asked.
	stub.SetFault(imstub.FaultNone)
	again := ssetest.Open(t, sseURL(p, q, "group:G4"), nil)
	assert.Equal(t, "group:G4", again.ReadEvent("subscribed").Frame.Channel, "the IM back, its groups stream")
	assert.NotContains(t, p.Stdout()+p.Stderr(), sig, "no log line holds a UserSig")
}

// A stream over the node's limits is refused for them before the IM is
// asked of its groups, and a stream refused for a group gives its place
// back: a crowd of streams costs the IM no asks past what the limits let
// in.
func TestBinarySSELimitsBeforeTheIM(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	stub.CreateGroup(imApp, "G2", "Public", "leckie")
	stub.CreateGroup(imApp, "G3", "Public", "leckie", "jared")
	p := hubtest.Start(t, append(imArgs(imURL), "-max-conns-per-ip", "1"))
	p.WaitReady(200)
	q := url.Values{"sdkappid": {imApp}, "userid": {"jared"}, "usersig": {userSig(t, "jared")}}

	_, status, body := ssetest.TryOpen(t, sseURL(p, q, "group:G2"), nil)
	assert.Equal(t, http.StatusForbidden, status, "%s", body)
	open := ssetest.Open(t, sseURL(p, q, "group:G1"), nil)
	assert.Equal(t, "group:G1", open.ReadEvent("subscribed").Frame.Channel, "the refused stream gave its place back")

	_, status, body = ssetest.TryOpen(t, sseURL(p, q, "group:G3"), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, "one stream from this address at a time: %s", body)
	calls, _ := stub.Calls(imApp, "G3")
	assert.Zero(t, calls, "the IM was not asked of a group of a stream the limits refused")
	open.Close()
}

// A stream outlives -read-timeout and the server's write timeout, which
// bound a request, not a stream: its pings and events keep coming.
func TestBinarySSEOutlivesTheRequestTimeouts(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-read-timeout", "1s",
		"-write-timeout", "1s", "-ping-interval", "300ms"})
	p.WaitReady(200)
	s := ssetest.Open(t, sseURL(p, url.Values{"token": {mint(t, "100", "jared", false, "G1")}}, "group:G1"), nil)
	s.ReadEvent("subscribed")
	// Past every one of them: the server's write timeout is -read-timeout,
	// the callbacks' publish timeout (5s) and -write-timeout together.
	time.Sleep(8 * time.Second)
	require.Equal(t, 200, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G1", 1)))
	assert.Equal(t, "group.message.sent#1", sseEventKey(t, s.Read()))
}
