package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/apiclient"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

const apiKey = "api-test-key-0123456789abcdef"

// mintAt mints a token of app 100 for sub, issued at iat.
func mintAt(t *testing.T, sub string, iat time.Time, groups ...string) string {
	t.Helper()
	c := auth.Claims{App: "100", Groups: groups}
	c.Subject = sub
	c.IssuedAt = jwt.NewNumericDate(iat)
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok, err := auth.Mint([]byte(clusterSecret), c)
	require.NoError(t, err)
	return tok
}

func dialUser(t *testing.T, p *hubtest.Process, token string) *wstest.Conn {
	t.Helper()
	c := wstest.Dial(t, wsURL(p), token)
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	return c
}

// The server API on three hub processes sharing one Redis: see
// testServerAPI.
func TestServerAPIMultiNode(t *testing.T) {
	testServerAPI(t, redistest.Start(t).URL())
}

// The same on a Redis Cluster of three primaries.
func TestServerAPIMultiNodeRedisCluster(t *testing.T) {
	testServerAPI(t, redistest.StartCluster(t, 3).URL())
}

// testServerAPI: a publish on one node reaches clients on every node and is
// recovered with since, once even when repeated with its idempotency key;
// presence agrees with the clients connected to any node after joins and
// leaves; disconnect and revoke close the user's sessions on every node
// with 4010, and the revoked token is refused on every node; a node that
// drains leaves presence when it exits, one that is killed within the
// presence TTL.
func testServerAPI(t *testing.T, url string) {
	const ttl = 3 * time.Second
	nodes := startNodes(t, url, 3, "-api-keys", "100:"+apiKey, "-presence-ttl", ttl.String(), "-drain", "500ms", "-log-level", "debug")
	ctx := context.Background()
	api := func(i int) *apiclient.Client { return apiclient.New(nodes[i].URL(""), "100", apiKey) }
	now := time.Now()

	// Clients of G1 on every node; one on node c will come later with since.
	var g1 []*wstest.Conn
	var before string
	for i, p := range nodes {
		c := dialUser(t, p, mintAt(t, fmt.Sprintf("u%d", i), now, "G1"))
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
		before = c.ReadOp("subscribed").Offset
		g1 = append(g1, c)
	}

	off, dup, err := api(0).Publish(ctx, "group:G1", map[string]string{"text": "shipped"}, "order-1")
	require.NoError(t, err)
	assert.False(t, dup)
	for i, c := range g1 {
		f := c.ReadOp("event")
		assert.Equal(t, off, f.Offset, "node %d", i)
		var ev struct {
			Type string
			App  string
			Data map[string]string
		}
		require.NoError(t, json.Unmarshal(f.Event, &ev))
		assert.Equal(t, "custom", ev.Type)
		assert.Equal(t, "100", ev.App)
		assert.Equal(t, map[string]string{"text": "shipped"}, ev.Data)
	}
	again, dup, err := api(1).Publish(ctx, "group:G1", map[string]string{"text": "shipped"}, "order-1")
	require.NoError(t, err, "a repeat at another node")
	assert.True(t, dup)
	assert.Equal(t, off, again, "answered with the first offset")
	late := dialUser(t, nodes[2], mintAt(t, "late", now, "G1"))
	late.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "since": before})
	sub := late.ReadOp("subscribed")
	require.NotNil(t, sub.Recovered)
	assert.True(t, *sub.Recovered)
	assert.Equal(t, off, late.ReadOp("event").Offset, "recovered with since")
	// The repeat published nothing: the next event any client gets is the
	// next publish.
	next, _, err := api(2).Publish(ctx, "group:G1", "next", "")
	require.NoError(t, err)
	for _, c := range append(g1, late) {
		assert.Equal(t, next, c.ReadOp("event").Offset)
	}

	// Presence, asked of any node, agrees with who is connected where.
	wantG1 := map[string]int{"u0": 1, "u1": 1, "u2": 1, "late": 1}
	waitPresence := func(want map[string]int, on ...int) {
		t.Helper()
		for _, i := range on {
			require.Eventually(t, func() bool {
				got, err := api(i).Presence(ctx, "group:G1")
				return err == nil && fmt.Sprint(got) == fmt.Sprint(want)
			}, 10*time.Second, 20*time.Millisecond, "presence of group:G1 on node %d, want %v", i, want)
		}
	}
	waitPresence(wantG1, 0, 1, 2)
	late.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	late.ReadOp("unsubscribed")
	delete(wantG1, "late")
	waitPresence(wantG1, 0, 1, 2)
	g1[1].Send(map[string]any{"op": "presence", "channel": "group:G1", "id": 1})
	assert.Equal(t, wantG1, g1[1].ReadOp("presence").Users, "the presence op agrees")

	// Disconnect: jared's sessions on every node closed with 4010, the
	// others kept.
	var jared []*wstest.Conn
	for _, p := range nodes {
		jared = append(jared, dialUser(t, p, mintAt(t, "jared", now)))
	}
	require.Eventually(t, func() bool { n, _ := api(1).Connections(ctx, "jared"); return n == 3 }, 10*time.Second, 20*time.Millisecond)
	n, err := api(1).Disconnect(ctx, "jared")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for _, c := range jared {
		c.ExpectClose(hub.CloseDisconnected)
	}
	require.Eventually(t, func() bool { n, _ := api(2).Connections(ctx, "jared"); return n == 0 }, 10*time.Second, 20*time.Millisecond)
	n, err = api(2).Disconnect(ctx, "jared")
	require.NoError(t, err)
	assert.Zero(t, n, "a user with no sessions")

	// Revoke: ann's tokens issued before the cut are closed on every
	// node and refused at every node; a later one is let in.
	cut := time.Now().Truncate(time.Second)
	old := mintAt(t, "ann", cut.Add(-10*time.Second))
	var ann []*wstest.Conn
	for _, p := range nodes {
		ann = append(ann, dialUser(t, p, old))
	}
	n, err = api(0).Revoke(ctx, "ann", cut)
	require.NoError(t, err)
	assert.Equal(t, len(nodes), n, "one session closed on each node")
	for _, c := range ann {
		c.ExpectClose(hub.CloseDisconnected)
	}
	for _, p := range nodes {
		wstest.Dial(t, wsURL(p), old).ExpectClose(hub.CloseInvalidToken)
	}
	dialUser(t, nodes[1], mintAt(t, "ann", cut.Add(time.Second)))

	// A drain: node c's clients leave presence once it has exited.
	nodes[2].Signal(syscall.SIGTERM)
	assert.Equal(t, 0, nodes[2].Wait(20*time.Second))
	delete(wantG1, "u2")
	waitPresence(wantG1, 0, 1)
	// A kill: node b's clients leave within the TTL.
	nodes[1].Kill()
	delete(wantG1, "u1")
	waitPresence(wantG1, 0)
	n, err = api(0).Connections(ctx, "ann")
	require.NoError(t, err)
	assert.Zero(t, n, "ann's fresh session was on the killed node")
	for _, p := range nodes {
		assert.NotContains(t, p.Stderr()+p.Stdout(), apiKey, "the API key is never logged")
	}
}
