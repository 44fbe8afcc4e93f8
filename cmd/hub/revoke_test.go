package main

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/apiclient"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// metric is the value of one series in p's /metrics ("name" or
// `name{label="v"}`), 0 when p does not show it.
func metric(t *testing.T, p *hubtest.Process, series string) float64 {
	t.Helper()
	_, body := p.Get("/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f
		}
	}
	return 0
}

// stallRedis stops Redis answering any client until the test resumes it,
// as a Redis that stalls (a slow fork, a long script, a frozen VM) does:
// the connections stay up, and what is sent meanwhile waits. It is
// resumed at the end of the test if the test does not resume it first.
func stallRedis(t *testing.T, srv *redistest.Server) {
	t.Helper()
	srv.Pause()
	t.Cleanup(srv.Resume)
}

// revokedKey is where the revocation of app 100's user is kept.
func revokedKey(user string) string { return "imhub:{100:user:" + user + "}:revoked" }

// expectCloseWithin reads c until it closes with code, waiting up to d
// (longer than wstest's usual wait, for what happens once a pause ends).
func expectCloseWithin(t *testing.T, c *wstest.Conn, code int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := c.TryRead(time.Until(deadline))
		if err == nil {
			continue
		}
		got := wsCloseStatus(err)
		require.Equal(t, code, got, "%s: closed with %d (%v), want %d", what, got, err, code)
		return
	}
}

// Two hubs share a Redis that stalls (SIGSTOP) until the test lets it go on.
// The node that must judge tokens meanwhile refuses, from memory, a token
// whose revocation it was told over the control channel and one whose
// revocation it read from Redis before; it lets in, unchecked, a token
// whose revocation it never heard of (left in Redis alone, as a command
// missed while unsubscribed leaves it) and one that is not revoked; once
// Redis answers it checks both again, closes the revoked one with 4010
// and keeps the other. The metrics count each step.
func TestBinaryRevocationsThroughRedisPause(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	nodes := startNodes(t, srv.URL(), 2, "-api-keys", "100:"+apiKey)
	a, b := nodes[0], nodes[1]
	cut := time.Now().Truncate(time.Second)
	old := func(user string) string { return mintAt(t, user, cut.Add(-time.Minute)) }

	// dave: revoked through node a; b hears it on the control channel.
	_, err := apiclient.New(a.URL(""), "100", apiKey).Revoke(ctx, "dave", cut)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return metric(t, b, `imhub_revocations_remembered`) == 1 },
		10*time.Second, 20*time.Millisecond, "node b remembers dave's revocation")
	// carl: in Redis only; b reads it at carl's connect.
	require.NoError(t, rc.Set(ctx, revokedKey("carl"), cut.Unix(), time.Hour).Err())
	wstest.Dial(t, wsURL(b), old("carl")).ExpectClose(hub.CloseInvalidToken)
	// ann: in Redis only, and nobody asks before the pause.
	require.NoError(t, rc.Set(ctx, revokedKey("ann"), cut.Unix(), time.Hour).Err())
	bobToken := old("bob")

	stallRedis(t, srv)
	wstest.Dial(t, wsURL(b), old("dave")).ExpectClose(hub.CloseInvalidToken)
	wstest.Dial(t, wsURL(b), old("carl")).ExpectClose(hub.CloseInvalidToken)
	ann := wstest.Dial(t, wsURL(b), old("ann"))
	ann.ReadOp("connected")
	bob := wstest.Dial(t, wsURL(b), bobToken)
	bob.ReadOp("connected")
	assert.Equal(t, 2.0, metric(t, b, `imhub_ws_revocation_unchecked_total{action="admitted"}`), "ann and bob let in unchecked")
	assert.Equal(t, 2.0, metric(t, b, `imhub_ws_sessions_unchecked`))

	srv.Resume()
	expectCloseWithin(t, ann, int(hub.CloseDisconnected), 30*time.Second, "ann, once Redis answers")
	require.Eventually(t, func() bool { return metric(t, b, `imhub_ws_sessions_unchecked`) == 0 },
		30*time.Second, 20*time.Millisecond, "every session checked")
	assert.Equal(t, 1.0, metric(t, b, `imhub_ws_revocation_rechecks_total{result="revoked"}`))
	assert.Equal(t, 1.0, metric(t, b, `imhub_ws_revocation_rechecks_total{result="clear"}`))
	for {
		f := bob.Read()
		if f.Op == "subscribed" {
			break
		}
	}
	bob.Send(map[string]any{"op": "ping", "id": 1})
	bob.ReadOp("pong")
	// Redis answers connects again at once.
	wstest.Dial(t, wsURL(b), old("ann")).ExpectClose(hub.CloseInvalidToken)
}

// With -revocation-check closed, a node that cannot read the revocations
// refuses a connect with 1013 (try again later) and a refresh with an
// unavailable error, keeps the sessions it had checked, and takes
// connects again as soon as Redis answers.
func TestBinaryRevocationCheckClosed(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 2, "-api-keys", "100:"+apiKey, "-revocation-check", "closed")
	b := nodes[1]
	now := time.Now()
	bob := dialUser(t, b, mintAt(t, "bob", now))

	stallRedis(t, srv)
	expectCloseWithin(t, wstest.Dial(t, wsURL(b), mintAt(t, "eve", now)), int(hub.CloseTryAgainLater), wstest.Timeout, "eve, while Redis is paused")
	bob.Send(map[string]any{"op": "refresh", "token": mintAt(t, "bob", now.Add(time.Second)), "id": 7})
	f := bob.ReadOp("error")
	assert.Equal(t, hub.CodeUnavailable, f.Code)
	assert.Equal(t, 2.0, metric(t, b, `imhub_ws_revocation_unchecked_total{action="refused"}`))
	assert.Zero(t, metric(t, b, `imhub_ws_revocation_unchecked_total{action="admitted"}`))

	// Once Redis answers, connects are let in again, and bob's session is
	// still up.
	srv.Resume()
	require.Eventually(t, func() bool {
		c, err := wstest.TryDial(t, wsURL(b), mintAt(t, "eve", now), nil)
		if err != nil {
			return false
		}
		defer c.C.CloseNow()
		f, err := c.TryRead(wstest.Timeout)
		return err == nil && f.Op == "connected"
	}, 30*time.Second, 100*time.Millisecond, "eve let in once Redis answers")
	bob.Send(map[string]any{"op": "ping", "id": 8})
	for {
		if f := bob.Read(); f.Op == "pong" {
			break
		}
	}
}

// A node that restarts reads every revocation in force before /readyz
// says ok: with Redis stalled right after, it still refuses a token
// revoked before it started.
func TestBinaryRestartedNodeLoadsRevocations(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	nodes := startNodes(t, srv.URL(), 2, "-api-keys", "100:"+apiKey)
	a, b := nodes[0], nodes[1]
	cut := time.Now().Truncate(time.Second)
	api := apiclient.New(a.URL(""), "100", apiKey)
	for _, user := range []string{"ann", "bob"} {
		_, err := api.Revoke(ctx, user, cut)
		require.NoError(t, err)
	}
	b.Kill()
	b = b.Restart()
	b.WaitReady(200)
	assert.Equal(t, 2.0, metric(t, b, `imhub_revocations_remembered`))

	stallRedis(t, srv)
	wstest.Dial(t, wsURL(b), mintAt(t, "ann", cut.Add(-time.Minute))).ExpectClose(hub.CloseInvalidToken)
	wstest.Dial(t, wsURL(b), mintAt(t, "bob", cut.Add(-time.Minute))).ExpectClose(hub.CloseInvalidToken)
	assert.Zero(t, metric(t, b, `imhub_ws_revocation_unchecked_total{action="admitted"}`), "judged from memory, not let in unchecked")
}

// Until the revocations are read, /readyz says so (503), and says ok once
// they are. Here Redis's ACL denies the hub's user the command that reads
// them, and then grants it.
func TestBinaryReadyzNeedsRevocationsLoaded(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	require.NoError(t, rc.Do(ctx, "ACL", "SETUSER", "hub", "on", ">hub-password", "~*", "&*", "+@all", "-zscan").Err())
	u := url.URL{Scheme: "unix", User: url.UserPassword("hub", "hub-password"), Path: srv.Socket()}
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-redis", u.String(), "-api-keys", "100:" + apiKey})
	var code int
	var body string
	require.Eventually(t, func() bool {
		code, body = p.Get("/readyz")
		return body == "revocations not loaded\n"
	}, 15*time.Second, 20*time.Millisecond, "readyz never named the revocations: %d %q", code, body)
	assert.Equal(t, 503, code)
	assert.Zero(t, metric(t, p, "imhub_ready"))

	require.NoError(t, rc.Do(ctx, "ACL", "SETUSER", "hub", "+zscan").Err())
	p.WaitReady(200)
	assert.Equal(t, 1.0, metric(t, p, "imhub_ready"))
}

// A revocation sent to one of two nodes answers the sessions it closed on
// both: ann's old token on each node, not her newer one.
func TestBinaryRevokeCountsEveryNode(t *testing.T) {
	nodes := startNodes(t, redistest.Start(t).URL(), 2, "-api-keys", "100:"+apiKey)
	cut := time.Now().Truncate(time.Second)
	old := mintAt(t, "ann", cut.Add(-time.Minute))
	var closed []*wstest.Conn
	for _, p := range nodes {
		closed = append(closed, dialUser(t, p, old))
	}
	kept := dialUser(t, nodes[1], mintAt(t, "ann", cut.Add(time.Second)))

	n, err := apiclient.New(nodes[0].URL(""), "100", apiKey).Revoke(context.Background(), "ann", cut)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "one session closed on each node")
	for _, c := range closed {
		c.ExpectClose(hub.CloseDisconnected)
	}
	kept.Send(map[string]any{"op": "ping", "id": 1})
	kept.ReadOp("pong") // the newer token's session stays open
}
