package hub_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/sse"
	"github.com/imhub/imhub/internal/ssetest"
)

// sseURL is the /sse URL of channels, with the query parameters extra
// (pairs of name and value) besides.
func (e *env) sseURL(channels []string, extra ...string) string {
	q := url.Values{}
	for _, ch := range channels {
		q.Add("channel", ch)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Add(extra[i], extra[i+1])
	}
	return e.srv.URL + "/sse?" + q.Encode()
}

// stream opens a stream of channels with tok and reads its subscribed
// messages, one per channel, in the order asked; the replays that follow
// each are in replayed.
func (e *env) stream(tok string, header http.Header, channels []string, extra ...string) (s *ssetest.Stream, subs []ssetest.Message, replayed []ssetest.Message) {
	e.t.Helper()
	s = ssetest.Open(e.t, e.sseURL(channels, append([]string{"token", tok}, extra...)...), header)
	for len(subs) < len(channels) {
		m := s.Read()
		if m.Event == "event" && len(subs) > 0 {
			replayed = append(replayed, m)
			continue
		}
		require.Equal(e.t, "subscribed", m.Event, m.Data)
		require.Equal(e.t, channels[len(subs)], m.Frame.Channel, m.Data)
		subs = append(subs, m)
	}
	return s, subs, replayed
}

// A stream of two channels: the SSE headers and a jittered retry, one
// subscribed message per channel, then each channel's events as "event"
// messages whose data is the event frame of /ws, each with an id.
func TestSSEEventsOnTwoChannels(t *testing.T) {
	e := newEnv(t, hub.Config{})
	tok := e.token(groups("G1", "G2"))
	s, subs, _ := e.stream(tok, nil, []string{"group:G1", "group:G2"})
	assert.Equal(t, "text/event-stream", s.Resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", s.Resp.Header.Get("Cache-Control"))
	assert.Equal(t, "no", s.Resp.Header.Get("X-Accel-Buffering"))
	assert.GreaterOrEqual(t, subs[0].Retry, 1000)
	assert.LessOrEqual(t, subs[0].Retry, 3000)
	for _, m := range subs {
		assert.Nil(t, m.Frame.Recovered, "no since, no recovered")
		assert.NotEmpty(t, m.ID, "a subscribed message says where the stream stands")
	}

	ws := e.connect(tok)
	subscribe(t, ws, "group:G1", 1)
	r1 := e.publish("1400000000", "group:G1")
	r2 := e.publish("1400000000", "group:G2")
	ev1 := s.ReadEvent("event")
	assert.Equal(t, "group:G1", ev1.Frame.Channel)
	assert.Equal(t, r1.Positions[0].String(), ev1.Frame.Offset)
	assert.Equal(t, 1, eventN(t, ev1.Frame))
	assert.Equal(t, ws.ReadOp("event").Raw, ev1.Data, "the same frame as on /ws")
	ev2 := s.ReadEvent("event")
	assert.Equal(t, "group:G2", ev2.Frame.Channel)
	assert.Equal(t, r2.Positions[0].String(), ev2.Frame.Offset)
	assert.NotEqual(t, ev1.ID, ev2.ID, "each event moves the id")
}

// Every refusal before the stream, with its status and a body that says
// what was wrong; a refused credential is not told why.
func TestSSERefusals(t *testing.T) {
	e := newEnv(t, hub.Config{})
	tok := e.token(groups("G1"))
	_, subs, _ := e.stream(tok, nil, []string{"group:G1"})
	valid := subs[0].ID
	_, other, _ := e.stream(e.token(groups("G2")), nil, []string{"group:G2"})
	raw, err := base64.RawURLEncoding.DecodeString(valid)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 1 // a digit of the offset, say
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	many := make([]string, hub.MaxStreamChannels+1)
	for i := range many {
		many[i] = fmt.Sprintf("group:G%d", i)
	}
	for _, tc := range []struct {
		name   string
		method string
		url    string
		header http.Header
		status int
		body   string
	}{
		{"not GET", http.MethodPost, e.sseURL([]string{"group:G1"}, "token", tok), nil, http.StatusMethodNotAllowed, "GET"},
		{"no credential", "", e.sseURL([]string{"group:G1"}), nil, http.StatusUnauthorized, "credential"},
		{"bad token", "", e.sseURL([]string{"group:G1"}, "token", "x.y.z"), nil, http.StatusUnauthorized, "credential"},
		{"expired token", "", e.sseURL([]string{"group:G1"}, "token", e.token(expired)), nil, http.StatusUnauthorized, "credential"},
		{"bad bearer", "", e.sseURL([]string{"group:G1"}), http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized, "credential"},
		{"forbidden channel", "", e.sseURL([]string{"group:G1", "group:G2"}, "token", tok), nil, http.StatusForbidden, "group:G2"},
		{"another user", "", e.sseURL([]string{"user:tommy"}, "token", tok), nil, http.StatusForbidden, "user:tommy"},
		{"unknown channel", "", e.sseURL([]string{"room:1"}, "token", tok), nil, http.StatusBadRequest, "room:1"},
		{"no channel", "", e.sseURL(nil, "token", tok), nil, http.StatusBadRequest, "at least one channel"},
		{"too many channels", "", e.sseURL(many, "token", e.token(groups("*"))), nil, http.StatusBadRequest, "at most 32"},
		{"a channel twice", "", e.sseURL([]string{"group:G1", "group:G1"}, "token", tok), nil, http.StatusBadRequest, "twice"},
		{"since not an id", "", e.sseURL([]string{"group:G1"}, "token", tok, "since", "12:abc"), nil, http.StatusBadRequest, "since"},
		{"since twice", "", e.sseURL([]string{"group:G1"}, "token", tok, "since", valid, "since", valid), nil, http.StatusBadRequest, "since once"},
		{"tampered id", "", e.sseURL([]string{"group:G1"}, "token", tok), http.Header{"Last-Event-ID": {tampered}}, http.StatusBadRequest, "checksum"},
		{"tampered since", "", e.sseURL([]string{"group:G1"}, "token", tok, "since", tampered), nil, http.StatusBadRequest, "checksum"},
		{"cut id", "", e.sseURL([]string{"group:G1"}, "token", tok), http.Header{"Last-Event-ID": {valid[:len(valid)-4]}}, http.StatusBadRequest, "id"},
		{"oversized id", "", e.sseURL([]string{"group:G1"}, "token", tok), http.Header{"Last-Event-ID": {strings.Repeat("A", hub.MaxStreamIDLen+1)}}, http.StatusBadRequest, "longer than 4096"},
		{"id of other channels", "", e.sseURL([]string{"group:G1"}, "token", tok), http.Header{"Last-Event-ID": {other[0].ID}}, http.StatusBadRequest, "a channel the request does not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, tc.url, nil)
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode, string(b))
			assert.Contains(t, string(b), tc.body)
			assert.NotContains(t, string(b), "signature", "never why a credential failed")
			assert.NotEqual(t, "text/event-stream", resp.Header.Get("Content-Type"))
		})
	}
}

// expired makes a token that expired a minute ago.
func expired(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }

// A node at its -max-conns, or draining, refuses a stream with 503; one at
// its limit counts streams and WebSockets alike.
func TestSSEOverLimits(t *testing.T) {
	e := newEnv(t, hub.Config{MaxConns: 1})
	tok := e.token(groups("G1"))
	e.stream(tok, nil, []string{"group:G1"})
	_, status, body := ssetest.TryOpen(t, e.sseURL([]string{"group:G1"}, "token", tok), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "too many connections")
}

// A drain ends a stream with an error message naming 1012, then the end of
// the response, so that EventSource reconnects elsewhere; a new stream is
// refused 503 meanwhile.
func TestSSEDrain(t *testing.T) {
	e := newEnv(t, hub.Config{})
	tok := e.token(groups("G1"))
	s, _, _ := e.stream(tok, nil, []string{"group:G1"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.hub.Drain(context.Background(), 0)
	}()
	got := s.ExpectEnd()
	require.NotEmpty(t, got)
	last := got[len(got)-1]
	assert.Equal(t, "error", last.Event)
	assert.Contains(t, last.Data, `"close":1012`)
	assert.Equal(t, hub.CodeClosed, last.Frame.Code)
	<-done
	_, status, _ := ssetest.TryOpen(t, e.sseURL([]string{"group:G1"}, "token", tok), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
}

// A stream the hub ends after admitting it and before it opens (a drain,
// a revocation), whose connection is then taken over by the close itself,
// ends cleanly: a 200, its retry, the error message naming the close code,
// then the end of the response; its session leaves the hub with its
// subscriptions, its address's slot and its goroutines.
func TestSSEEndedBeforeTakeover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close int
		end   func(e *env, drained chan<- struct{})
	}{
		{"drain", 1012, func(e *env, drained chan<- struct{}) {
			go func() {
				defer close(drained)
				e.hub.Drain(context.Background(), 0)
			}()
		}},
		{"revocation", 4010, func(e *env, drained chan<- struct{}) {
			close(drained)
			assert.Equal(e.t, 1, e.hub.Disconnect("1400000000", "jared", time.Time{}, "token revoked"), "the admitted stream is closed")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, hub.Config{MaxConnsPerIP: 1, PingInterval: time.Hour})
			tok := e.token(groups("G1"))
			before := streamGoroutines()
			read := make(chan struct{})
			drained := make(chan struct{})
			var admitted atomic.Int32
			hub.SetStreamAdmitted(e.hub, func() {
				admitted.Add(1)
				tc.end(e, drained)
				// The handler goes on once the client has read the end:
				// the close, not the handler, opened the stream.
				select {
				case <-read:
				case <-time.After(ssetest.Timeout):
				}
			})
			s := ssetest.Open(t, e.sseURL([]string{"group:G1"}, "token", tok), nil)
			got := s.ExpectEnd()
			close(read)
			assert.True(t, s.Resp.Close, "the body ended with the connection")
			require.Len(t, got, 1, "the error message alone: %v", got)
			assert.Equal(t, "error", got[0].Event)
			assert.Equal(t, hub.CodeClosed, got[0].Frame.Code)
			assert.Contains(t, got[0].Data, fmt.Sprintf(`"close":%d`, tc.close))
			assert.GreaterOrEqual(t, got[0].Retry, 1000, "the stream opened with its retry")
			<-drained
			require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 10*time.Second, 5*time.Millisecond, "the session left")
			require.Eventually(t, func() bool { return streamGoroutines() <= before }, 10*time.Second, 5*time.Millisecond, "no goroutine of the stream remains")
			e.broker.mu.Lock()
			subs, unsubs := e.broker.subscribes["1400000000/group:G1"], e.broker.unsubscribe["1400000000/group:G1"]
			e.broker.mu.Unlock()
			assert.Equal(t, subs, unsubs, "whatever it subscribed to it left")
			assert.Equal(t, int32(1), admitted.Load())
			hub.SetStreamAdmitted(e.hub, nil)
			if tc.name == "revocation" {
				// The address's one slot is free again.
				next, _, _ := e.stream(tok, nil, []string{"group:G1"})
				next.Close()
			}
		})
	}
}

// streamGoroutines counts the goroutines running a session or a stream's
// transport.
func streamGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "hub.(*Session)") || strings.Contains(g, "hub.(*sseConn)") {
			count++
		}
	}
	return count
}

// A stream resumed from its last id, by Last-Event-ID as the browser sends
// it or by since, is answered recovered on every channel and sent what it
// missed of each, in order, then live events; a channel with no position
// in the id starts afresh.
func TestSSEResume(t *testing.T) {
	for _, by := range []string{"Last-Event-ID", "since"} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t, hub.Config{})
			tok := e.token(groups("G1", "G2"))
			chans := []string{"group:G1", "group:G2"}
			s, _, _ := e.stream(tok, nil, chans)
			e.publish("1400000000", "group:G1")
			e.publish("1400000000", "group:G2")
			s.ReadEvent("event")
			last := s.ReadEvent("event").ID
			s.Close()
			e.publish("1400000000", "group:G1") // 3
			e.publish("1400000000", "group:G2") // 4
			e.publish("1400000000", "group:G1") // 5

			var header http.Header
			var extra []string
			if by == "since" {
				extra = []string{"since", last}
			} else {
				header = http.Header{"Last-Event-ID": {last}}
			}
			r, subs, replayed := e.stream(tok, header, chans, extra...)
			for _, m := range subs {
				require.NotNil(t, m.Frame.Recovered, m.Data)
				assert.True(t, *m.Frame.Recovered, m.Data)
			}
			for len(replayed) < 3 {
				replayed = append(replayed, r.ReadEvent("event"))
			}
			got := map[string][]int{}
			for _, m := range replayed {
				got[m.Frame.Channel] = append(got[m.Frame.Channel], eventN(t, m.Frame))
			}
			assert.Equal(t, map[string][]int{"group:G1": {3, 5}, "group:G2": {4}}, got)
			e.publish("1400000000", "group:G2")
			assert.Equal(t, 6, eventN(t, r.ReadEvent("event").Frame), "then live")
		})
	}
}

// A position history no longer holds is answered recovered false, as on
// /ws, and the stream goes on from the channel's current offset.
func TestSSEResumeUnrecovered(t *testing.T) {
	e := newEnvWith(t, hub.Config{}, broker.Config{DedupeWindow: time.Minute, HistorySize: 2, HistoryTTL: time.Minute})
	tok := e.token(groups("G1"))
	s, _, _ := e.stream(tok, nil, []string{"group:G1"})
	e.publish("1400000000", "group:G1")
	last := s.ReadEvent("event").ID
	s.Close()
	for range 4 {
		e.publish("1400000000", "group:G1")
	}
	r, subs, _ := e.stream(tok, http.Header{"Last-Event-ID": {last}}, []string{"group:G1"})
	require.NotNil(t, subs[0].Frame.Recovered)
	assert.False(t, *subs[0].Frame.Recovered)
	assert.NotEqual(t, last, subs[0].ID, "the id moves to where the stream goes on")
	e.publish("1400000000", "group:G1")
	assert.Equal(t, 6, eventN(t, r.ReadEvent("event").Frame))
}

// A reader too slow for its queue's bytes is sent an error message naming
// 4008, once it reads again, and its response ends.
func TestSSESlowReader(t *testing.T) {
	e := newEnv(t, hub.Config{SendQueueBytes: 64 << 10, WriteTimeout: time.Minute})
	tok := e.token(groups("G1"))
	req, err := http.NewRequest(http.MethodGet, e.sseURL([]string{"group:G1"}, "token", tok), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := sse.NewReader(resp.Body)
	m, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "subscribed", m.Event)

	big := strings.Repeat("x", 32<<10)
	require.Eventually(t, func() bool {
		e.publishEvent(`{"id":"big","type":"group.message.sent","text":"`+big+`"}`, "group:G1")
		return testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4008")) > 0
	}, 60*time.Second, time.Millisecond, "the stream is read by nobody: its queue overflows")

	var lastMsg sse.Message
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		lastMsg = m
	}
	assert.Equal(t, "error", lastMsg.Event)
	assert.Contains(t, lastMsg.Data, `"close":4008`)
	assert.Contains(t, lastMsg.Data, "too slow")
}

// A UserSig stream (sdkappid, userid and usersig in the query) of a
// member is sent the group.member.left event that names it, then an
// unsubscribed message with reason removed, and nothing of the group
// after it.
func TestSSEUserSigRemoved(t *testing.T) {
	e := newIMEnv(t, hub.Config{}, membership.Config{})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared")
	q := url.Values{"channel": {"group:G1", "user:jared"}, "sdkappid": {sigApp}, "userid": {"jared"}, "usersig": {sign(t, imKey, sigApp, "jared", time.Hour)}}
	s := ssetest.Open(t, e.srv.URL+"/sse?"+q.Encode(), nil)
	s.ReadEvent("subscribed")
	s.ReadEvent("subscribed")
	e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
	e.publishEvent(messageEvent("after", "G1", "hello"), "group:G1")
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	assert.Equal(t, "left", eventID(t, s.ReadEvent("event").Frame))
	u := s.ReadEvent("unsubscribed")
	assert.Equal(t, "group:G1", u.Frame.Channel)
	assert.Equal(t, hub.ReasonRemoved, u.Frame.Reason)
	own := s.ReadEvent("event")
	assert.Equal(t, "user:jared", own.Frame.Channel, "nothing of group:G1 after the removal")

	// The header form of the UserSig is taken too.
	h := http.Header{"Authorization": {"UserSig " + sign(t, imKey, sigApp, "leckie", time.Hour)}}
	q = url.Values{"channel": {"user:leckie"}, "sdkappid": {sigApp}, "userid": {"leckie"}}
	l := ssetest.Open(t, e.srv.URL+"/sse?"+q.Encode(), h)
	assert.Equal(t, "user:leckie", l.ReadEvent("subscribed").Frame.Channel)

	_, status, body := ssetest.TryOpen(t, e.srv.URL+"/sse?"+url.Values{"channel": {"user:leckie"}, "sdkappid": {sigApp}, "userid": {"leckie"}, "usersig": {"bad"}}.Encode(), nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.NotContains(t, body, "usersig", "never why a credential failed")
}

// An id is base64url of at most 4096 characters; it holds each channel of
// the stream.
func TestSSEIDForm(t *testing.T) {
	e := newEnv(t, hub.Config{})
	tok := e.token(groups("*"))
	chans := make([]string, hub.MaxStreamChannels)
	for i := range chans {
		chans[i] = "group:" + strings.Repeat("g", 200) + fmt.Sprint(i)
	}
	s, _, _ := e.stream(tok, nil, chans)
	e.publish("1400000000", chans...)
	var id string
	for range chans {
		id = s.ReadEvent("event").ID
	}
	assert.LessOrEqual(t, len(id), hub.MaxStreamIDLen)
	_, err := base64.RawURLEncoding.DecodeString(id)
	assert.NoError(t, err, id)
	_, subs, _ := e.stream(tok, http.Header{"Last-Event-ID": {id}}, chans)
	for _, m := range subs {
		assert.True(t, *m.Frame.Recovered, "every channel is in the id: %s", m.Data)
	}
}

// A stream with nothing to say is sent a comment line every
// -ping-interval, which keeps proxies from closing it.
func TestSSEPingComments(t *testing.T) {
	e := newEnv(t, hub.Config{PingInterval: 20 * time.Millisecond})
	resp, err := http.Get(e.sseURL([]string{"group:G1"}, "token", e.token(groups("G1"))))
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	pings := 0
	for pings < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), ":") {
			pings++
		}
	}
	assert.Equal(t, 3, pings, "the stream ended before: %v", sc.Err())
}

// A page of another origin may read a stream only where -allowed-origins
// lets it, as for /ws; an allowed one is told so by CORS.
func TestSSEOrigin(t *testing.T) {
	e := newEnv(t, hub.Config{AllowedOrigins: []string{"https://app.example"}})
	u := e.sseURL([]string{"group:G1"}, "token", e.token(groups("G1")))
	_, status, _ := ssetest.TryOpen(t, u, http.Header{"Origin": {"https://evil.example"}})
	assert.Equal(t, http.StatusForbidden, status)
	s := ssetest.Open(t, u, http.Header{"Origin": {"https://app.example"}})
	assert.Equal(t, "https://app.example", s.Resp.Header.Get("Access-Control-Allow-Origin"))
	s.ReadEvent("subscribed")
}

// An HTTP/1.1 stream is taken from the server: the hub writes its head
// itself, a body the connection's close ends (no chunks), and the server
// counts the connection hijacked, its goroutine and buffers gone. Events
// flow as before, and a drain's error message is followed by the close.
func TestSSEStreamTakenOver(t *testing.T) {
	e := newEnv(t, hub.Config{})
	hijacked := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateHijacked {
			hijacked <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + strings.TrimPrefix(e.sseURL([]string{"group:G1"}, "token", e.token(groups("G1"))), e.srv.URL))
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", u.RequestURI(), u.Host)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	assert.True(t, resp.Close, "the body ends with the connection")
	assert.Empty(t, resp.TransferEncoding, "no chunks")
	select {
	case <-hijacked:
	case <-time.After(10 * time.Second):
		t.Fatal("the server still serves the stream")
	}
	e.expectStreamLife(resp.Body)
}

// A client that goes is found on a stream taken over, with no write to
// fail: its session leaves the hub.
func TestSSEStreamClientGoes(t *testing.T) {
	e := newEnv(t, hub.Config{PingInterval: time.Hour})
	s, _, _ := e.stream(e.token(groups("G1")), nil, []string{"group:G1"})
	require.Eventually(t, func() bool { return e.hub.Sessions() == 1 }, 10*time.Second, 10*time.Millisecond)
	s.Close()
	require.Eventually(t, func() bool { return e.hub.Sessions() == 0 }, 10*time.Second, 10*time.Millisecond)
}

// Over HTTP/2, which cannot be taken over, the stream stays with the
// server and works as it does on HTTP/1.1: headers, retry, events, and
// the drain's error message at its end.
func TestSSEOverHTTP2(t *testing.T) {
	e := newEnv(t, hub.Config{})
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u := srv.URL + strings.TrimPrefix(e.sseURL([]string{"group:G1"}, "token", e.token(groups("G1"))), e.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	e.expectStreamLife(resp.Body)
}

// expectStreamLife reads a stream of group:G1 from its start to its end:
// subscribed with a retry, an event published, then a drain's error
// message and the end of the body.
func (e *env) expectStreamLife(body io.Reader) {
	t := e.t
	t.Helper()
	r := sse.NewReader(body)
	m, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, "subscribed", m.Event)
	assert.GreaterOrEqual(t, m.Retry, 1000)
	e.publish("1400000000", "group:G1")
	m, err = r.Next()
	require.NoError(t, err)
	assert.Equal(t, "event", m.Event)
	assert.Contains(t, m.Data, `"channel":"group:G1"`)
	e.hub.Drain(context.Background(), 0)
	m, err = r.Next()
	require.NoError(t, err)
	assert.Equal(t, "error", m.Event)
	assert.Contains(t, m.Data, `"close":1012`)
	_, err = r.Next()
	assert.ErrorIs(t, err, io.EOF, "then the body ends")
}
