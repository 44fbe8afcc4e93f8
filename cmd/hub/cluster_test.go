package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

const clusterSecret = "cluster-secret-cluster-secret-cluster"

func mint(t testing.TB, app, sub string, admin bool, groups ...string) string {
	t.Helper()
	c := auth.Claims{App: app, Admin: admin, Groups: groups}
	c.Subject = sub
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok, err := auth.Mint([]byte(clusterSecret), c)
	require.NoError(t, err)
	return tok
}

func startNodes(t *testing.T, redisURL string, n int, extra ...string) []*hubtest.Process {
	t.Helper()
	var nodes []*hubtest.Process
	for i := range n {
		args := append([]string{"-redis", redisURL, "-apps", "100,200", "-jwt-secret", clusterSecret,
			"-node", fmt.Sprintf("hub-%c", 'a'+i)}, extra...)
		nodes = append(nodes, hubtest.Start(t, args))
	}
	for _, p := range nodes {
		p.WaitReady(200)
	}
	return nodes
}

func wsURL(p *hubtest.Process) string { return "ws://" + p.Addr + "/ws" }

// postCommand posts one callback to node p and returns the status.
func postCommand(t *testing.T, p *hubtest.Process, app, cmd, body string) int {
	t.Helper()
	resp, err := http.Post(p.URL("/im/callback?SdkAppid="+app+"&CallbackCommand="+cmd), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func groupMsg(group string, seq int) string {
	return fmt.Sprintf(`{"GroupId":%q,"From_Account":"jared","MsgSeq":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"m%d"}}]}`, group, seq, seq)
}

func c2cMsg(from, to string, seq int) string {
	return fmt.Sprintf(`{"From_Account":%q,"To_Account":%q,"MsgKey":"k%d","MsgSeq":%d,"MsgBody":[]}`, from, to, seq, seq)
}

// listener is a client that records, per channel, the messages it gets.
type listener struct {
	name string
	c    *wstest.Conn
	mu   sync.Mutex
	got  map[string][]string // channel -> message keys, in arrival order
	offs map[string][]string // channel -> offsets, in arrival order
	done chan struct{}
	err  error
}

func listen(t *testing.T, name string, p *hubtest.Process, token string, channels ...string) *listener {
	t.Helper()
	c := wstest.Dial(t, wsURL(p), token)
	require.Equal(t, "connected", c.Read().Op)
	require.Equal(t, "subscribed", c.Read().Op)
	for _, ch := range channels {
		c.Send(map[string]any{"op": "subscribe", "channel": ch})
		f := c.Read()
		require.Equal(t, "subscribed", f.Op, "%s on %s: %s", name, ch, f.Raw)
	}
	l := &listener{name: name, c: c, got: map[string][]string{}, offs: map[string][]string{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			f, err := c.TryRead(time.Minute)
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			if f.Op != "event" {
				continue
			}
			l.mu.Lock()
			l.got[f.Channel] = append(l.got[f.Channel], messageKey(f.Event))
			l.offs[f.Channel] = append(l.offs[f.Channel], f.Offset)
			l.mu.Unlock()
		}
	}()
	return l
}

// messageKey names an event by its type and message identity.
func messageKey(ev []byte) string {
	var e callback.Event
	if err := json.Unmarshal(ev, &e); err != nil || len(e.Messages) == 0 {
		return "malformed:" + string(ev)
	}
	return fmt.Sprintf("%s#%d", e.Type, e.Messages[0].Seq)
}

func (l *listener) channel(ch string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got[ch])
}

// closeCode is the code the connection was closed with, -1 while open or
// when it ended without a close frame.
func (l *listener) closeCode() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		return -1
	}
	return wsCloseStatus(l.err)
}

func (l *listener) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.got {
		n += len(v)
	}
	return n
}

// Three hub processes on one Redis act as one: every permitted client gets
// every event exactly once and in order, whichever node took the callback;
// nobody gets what they may not see; Redis restarting in the middle drops
// no session and the nodes recover by themselves.
func TestMultiNode(t *testing.T) {
	srv := redistest.Start(t)
	testMultiNode(t, redisUnderTest{url: srv.URL(), stop: srv.Stop, restart: srv.Restart})
}

// The same on a Redis Cluster of three primaries: publications spread over
// the shards by channel, and one shard going away and coming back is
// survived like a single Redis restarting.
func TestMultiNodeRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	// The shard that serves group:G1 is the one that goes away, so every
	// node has a subscription on it to restore.
	down := cl.Owner(streamKey("100", "group:G1"))
	testMultiNode(t, redisUnderTest{
		url: cl.URL(),
		published: func(t *testing.T, perChannel map[string]int) {
			want := map[*redistest.Server]int{}
			for ch, n := range perChannel {
				want[cl.Owner(streamKey("100", ch))] += n
			}
			require.GreaterOrEqual(t, len(want), 2, "the channels are on more than one shard")
			for _, s := range cl.Nodes {
				assert.Equal(t, want[s], redistest.CommandCalls(t, s, "spublish"), "SPUBLISHes on %s", s.Addr())
				assert.Zero(t, redistest.CommandCalls(t, s, "publish"), "no cluster-wide PUBLISH on %s", s.Addr())
			}
		},
		stop: func() {
			down.Stop()
			cl.WaitState("fail")
		},
		restart: func() {
			down.Restart()
			cl.WaitOK()
		},
	})
}

// streamKey is the hub's name for a channel's keys and pub/sub channel in
// Redis, with the default prefix.
func streamKey(app, channel string) string { return "imhub:{" + app + ":" + channel + "}" }

// redisUnderTest is the Redis a multi-node test runs on.
type redisUnderTest struct {
	url string
	// published, if set, checks the Redis side once the first events are
	// delivered, given how many publications each channel had.
	published func(t *testing.T, perChannel map[string]int)
	// stop returns once the hubs can no longer publish; restart once Redis
	// is back.
	stop, restart func()
}

func testMultiNode(t *testing.T, rd redisUnderTest) {
	nodes := startNodes(t, rd.url, 3)

	var all []*listener
	type expect struct {
		l    *listener
		want map[string][]string // channel -> keys
	}
	var checks []expect
	add := func(l *listener, want map[string][]string) {
		all = append(all, l)
		checks = append(checks, expect{l, want})
	}
	wantG1, wantG2, wantAlice, wantBob, wantApp := []string{}, []string{}, []string{}, []string{}, []string{}
	var g1, g2, alice, bob, admins []*listener
	for i, p := range nodes {
		g1 = append(g1, listen(t, fmt.Sprintf("g1@%d", i), p, mint(t, "100", fmt.Sprintf("u%d", i), false, "G1"), "group:G1"))
		g2 = append(g2, listen(t, fmt.Sprintf("g2@%d", i), p, mint(t, "100", fmt.Sprintf("v%d", i), false, "G2"), "group:G2"))
		alice = append(alice, listen(t, fmt.Sprintf("alice@%d", i), p, mint(t, "100", "alice", false)))
		bob = append(bob, listen(t, fmt.Sprintf("bob@%d", i), p, mint(t, "100", "bob", false)))
		admins = append(admins, listen(t, fmt.Sprintf("admin@%d", i), p, mint(t, "100", "ops", true), "app"))
	}
	// Another app's admin, with the same channel names: sees nothing of app 100.
	var others []*listener
	for i, p := range nodes {
		others = append(others, listen(t, fmt.Sprintf("other@%d", i), p, mint(t, "200", "ops", true), "app", "group:G1", "user:alice"))
	}

	seq := 0
	round := func(n int) {
		for range n {
			seq++
			node := nodes[seq%len(nodes)]
			switch seq % 3 {
			case 0:
				require.Equal(t, 200, postCommand(t, node, "100", "Group.CallbackAfterSendMsg", groupMsg("G1", seq)))
				wantG1 = append(wantG1, fmt.Sprintf("group.message.sent#%d", seq))
				wantApp = append(wantApp, fmt.Sprintf("group.message.sent#%d", seq))
			case 1:
				require.Equal(t, 200, postCommand(t, node, "100", "Group.CallbackAfterSendMsg", groupMsg("G2", seq)))
				wantG2 = append(wantG2, fmt.Sprintf("group.message.sent#%d", seq))
				wantApp = append(wantApp, fmt.Sprintf("group.message.sent#%d", seq))
			case 2:
				require.Equal(t, 200, postCommand(t, node, "100", "C2C.CallbackAfterSendMsg", c2cMsg("alice", "bob", seq)))
				k := fmt.Sprintf("c2c.message.sent#%d", seq)
				wantAlice, wantBob, wantApp = append(wantAlice, k), append(wantBob, k), append(wantApp, k)
			}
			// The IM backend retries one callback in five, at another node.
			if seq%5 == 0 {
				other := nodes[(seq+1)%len(nodes)]
				body := groupMsg("G1", seq)
				cmd := "Group.CallbackAfterSendMsg"
				switch seq % 3 {
				case 1:
					body = groupMsg("G2", seq)
				case 2:
					body, cmd = c2cMsg("alice", "bob", seq), "C2C.CallbackAfterSendMsg"
				}
				require.Equal(t, 200, postCommand(t, other, "100", cmd, body))
			}
		}
	}
	waitAll := func() {
		t.Helper()
		for _, l := range g1 {
			add(l, map[string][]string{"group:G1": wantG1})
		}
		for _, l := range g2 {
			add(l, map[string][]string{"group:G2": wantG2})
		}
		for _, l := range alice {
			add(l, map[string][]string{"user:alice": wantAlice})
		}
		for _, l := range bob {
			add(l, map[string][]string{"user:bob": wantBob})
		}
		for _, l := range admins {
			add(l, map[string][]string{"app": wantApp})
		}
		for _, c := range checks {
			want := 0
			for _, w := range c.want {
				want += len(w)
			}
			require.Eventually(t, func() bool { return c.l.total() >= want }, 20*time.Second, 10*time.Millisecond,
				"%s got %d of %d events", c.l.name, c.l.total(), want)
		}
		time.Sleep(200 * time.Millisecond) // anything extra would arrive now
		for _, c := range checks {
			for ch, w := range c.want {
				assert.Equal(t, w, c.l.channel(ch), "%s on %s: every event once, in order", c.l.name, ch)
			}
			assert.Equal(t, len(c.want), len(c.l.got), "%s got events of channels it did not ask for", c.l.name)
		}
		for _, o := range others {
			assert.Zero(t, o.total(), "%s saw another app's events", o.name)
		}
		// The same event has the same offset on every node.
		for _, a := range admins[1:] {
			a.mu.Lock()
			admins[0].mu.Lock()
			assert.Equal(t, admins[0].offs["app"], a.offs["app"], "offsets on %s and %s", admins[0].name, a.name)
			admins[0].mu.Unlock()
			a.mu.Unlock()
		}
		checks = nil
	}

	round(30)
	waitAll()
	if rd.published != nil {
		rd.published(t, map[string]int{
			"group:G1": len(wantG1), "group:G2": len(wantG2),
			"user:alice": len(wantAlice), "user:bob": len(wantBob), "app": len(wantApp),
		})
	}

	// Redis goes away and comes back: callbacks are refused meanwhile,
	// no session is dropped, and the nodes pick up again by themselves.
	rd.stop()
	for _, p := range nodes {
		p.WaitReady(503)
	}
	assert.Equal(t, 503, postCommand(t, nodes[0], "100", "Group.CallbackAfterSendMsg", groupMsg("G1", 9999)))
	rd.restart()
	for _, p := range nodes {
		p.WaitReady(200)
		p.WaitLog(20*time.Second, "subscriptions restored", func(l map[string]any) bool {
			return strings.Contains(fmt.Sprint(l["msg"]), "subscriptions restored")
		})
	}
	round(30)
	waitAll()
	for _, l := range all {
		l.mu.Lock()
		assert.NoError(t, l.err, "%s lost its connection", l.name)
		l.mu.Unlock()
	}
}

// SIGTERM to one node of three: its readiness fails at once, then its
// clients get 1012 spread over the drain period, and it exits 0; the other
// nodes' clients carry on.
func TestDrainOneNode(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 3, "-drain", "3s")
	var victims []*listener
	for i := range 2 {
		victims = append(victims, listen(t, fmt.Sprint("victim", i), nodes[0], mint(t, "100", fmt.Sprintf("u%d", i), false, "G")))
	}
	survivor := listen(t, "survivor", nodes[1], mint(t, "100", "s", false, "G"), "group:G")

	nodes[0].Signal(syscall.SIGTERM)
	require.Eventually(t, func() bool {
		resp, err := http.Get(nodes[0].URL("/readyz"))
		if err != nil {
			return true // the listener is closed: no new sockets either
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	}, time.Second, 5*time.Millisecond, "readiness fails at once")
	for _, v := range victims {
		assert.Equal(t, -1, v.closeCode(), "clients are still connected when readiness has failed")
	}

	start := time.Now()
	for _, v := range victims {
		<-v.done
		assert.Equal(t, int(hub.CloseShuttingDown), v.closeCode())
	}
	assert.Greater(t, time.Since(start), time.Second, "closes are spread over the drain period")
	assert.Equal(t, 0, nodes[0].Wait(15*time.Second))

	require.Equal(t, 200, postCommand(t, nodes[2], "100", "Group.CallbackAfterSendMsg", groupMsg("G", 1)))
	require.Eventually(t, func() bool { return survivor.total() == 1 }, 10*time.Second, 10*time.Millisecond)
}

func wsCloseStatus(err error) int { return int(websocketCloseStatus(err)) }
