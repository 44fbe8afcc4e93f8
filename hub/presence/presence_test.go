package presence_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/presence"
	"github.com/imhub/imhub/internal/redistest"
)

// node is a tracker with its Run, as one hub process has.
type node struct {
	*presence.Tracker
	stop func() // ends Run, as a kill would: nothing removed
}

func startNode(t *testing.T, url, name string, ttl time.Duration) *node {
	t.Helper()
	c, err := broker.NewRedisClient(url, "")
	require.NoError(t, err)
	tr := presence.New(presence.Config{Client: c, Node: name, TTL: ttl, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	n := &node{Tracker: tr, stop: func() { cancel(); <-done }}
	t.Cleanup(func() {
		n.stop()
		_ = c.Close()
	})
	return n
}

func users(t *testing.T, n *node, channel string) map[string]int {
	t.Helper()
	u, err := n.Users(context.Background(), "1", channel)
	require.NoError(t, err)
	return u
}

func conns(t *testing.T, n *node, user string) int {
	t.Helper()
	c, err := n.Connections(context.Background(), "1", user)
	require.NoError(t, err)
	return c
}

// Nodes see each other's sessions; a node that stops cleanly leaves at
// once, one that is killed when its heartbeat key expires.
func TestAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	testAcrossNodes(t, srv.URL())
}

// The same on a Redis Cluster: every key of a channel is on its shard, the
// heartbeat keys share one slot.
func TestAcrossNodesRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	testAcrossNodes(t, cl.URL())
}

func testAcrossNodes(t *testing.T, url string) {
	const ttl = 3 * time.Second
	a, b, c := startNode(t, url, "a", ttl), startNode(t, url, "b", ttl), startNode(t, url, "c", ttl)
	for _, n := range []*node{a, b, c} {
		n.Connect("1", "ann")
		n.Join("1", "user:ann", "ann")
		n.Join("1", "group:G1", "ann")
	}
	b.Connect("1", "bob")
	b.Join("1", "group:G1", "bob")
	b.Join("2", "group:G1", "other-app")
	want := map[string]int{"ann": 3, "bob": 1}
	for _, n := range []*node{a, b, c} {
		require.Eventually(t, func() bool { u, _ := n.Users(context.Background(), "1", "group:G1"); return equal(u, want) },
			5*time.Second, 10*time.Millisecond, "every node sees all: %v", users(t, n, "group:G1"))
	}
	assert.Equal(t, 3, conns(t, a, "ann"))
	assert.Equal(t, 1, conns(t, c, "bob"))
	assert.Equal(t, map[string]int{"ann": 3}, users(t, c, "user:ann"), "the user's channel, not their connections")

	// A leave.
	b.Leave("1", "group:G1", "bob")
	b.Disconnect("1", "bob")
	require.Eventually(t, func() bool {
		return equal(users(t, a, "group:G1"), map[string]int{"ann": 3}) && conns(t, a, "bob") == 0
	},
		5*time.Second, 10*time.Millisecond)

	// A clean stop: gone at once.
	b.stop()
	require.NoError(t, b.Close(context.Background()))
	assert.Equal(t, map[string]int{"ann": 2}, users(t, a, "group:G1"))
	assert.Equal(t, 2, conns(t, a, "ann"))

	// A kill: counted until its heartbeat key expires.
	c.stop()
	assert.Equal(t, 2, conns(t, a, "ann"), "a killed node counts until its TTL")
	require.Eventually(t, func() bool { return conns(t, a, "ann") == 1 }, 2*ttl, 50*time.Millisecond)
	assert.Equal(t, map[string]int{"ann": 1}, users(t, a, "group:G1"))
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Redis losing every key (a restart without persistence) is mended by the
// next heartbeat: the node writes all its counts again.
func TestRewrittenAfterRedisLostThem(t *testing.T) {
	srv := redistest.Start(t)
	a, b := startNode(t, srv.URL(), "a", 3*time.Second), startNode(t, srv.URL(), "b", 3*time.Second)
	a.Connect("1", "ann")
	a.Join("1", "group:G1", "ann")
	require.Eventually(t, func() bool { return conns(t, b, "ann") == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
	assert.Zero(t, conns(t, b, "ann"))
	require.Eventually(t, func() bool { return conns(t, b, "ann") == 1 && users(t, b, "group:G1")["ann"] == 1 },
		5*time.Second, 50*time.Millisecond, "written again within a heartbeat (TTL/3)")
}

// The cost of presence in Redis, the figures BENCHMARKS.md quotes: the
// commands one connect and one disconnect send (a session of a user
// subscribed to their own channel), and the memory of the presence keys
// with 10,000 such sessions on one node. Run with -v to see them.
func TestCost(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	n := startNode(t, srv.URL(), "hub-a", 25*time.Second)
	settle := func() {
		// The node's key plus a user's hash: written when its command
		// count stops moving, for a second (five looks), which a flush
		// delayed on a busy machine does not pass for.
		prev, still := -1, 0
		require.Eventually(t, func() bool {
			c := total(t, rc)
			if c == prev {
				still++
			} else {
				still = 0
			}
			prev = c
			return still >= 5
		}, 60*time.Second, 200*time.Millisecond)
	}
	settle()

	// One connect, alone: the session of jared, subscribed to user:jared.
	before := total(t, rc)
	n.Connect("1", "jared")
	n.Join("1", "user:jared", "jared")
	settle()
	connect := total(t, rc) - before
	before = total(t, rc)
	n.Leave("1", "user:jared", "jared")
	n.Disconnect("1", "jared")
	settle()
	disconnect := total(t, rc) - before
	t.Logf("redis commands per connect: %d (%s), per disconnect: %d", connect, "HSET + PEXPIRE, one round trip", disconnect)
	assert.LessOrEqual(t, connect, 2, "one HSET and one PEXPIRE")
	assert.LessOrEqual(t, disconnect, 1, "one HDEL")

	// 10,000 sessions of 10,000 users, each on its own channel.
	mem0 := usedMemory(t, rc)
	before = total(t, rc)
	const sessions = 10000
	for i := range sessions {
		u := "user" + strconv.Itoa(i)
		n.Connect("1", u)
		n.Join("1", "user:"+u, u)
	}
	// Asked of INFO, which total leaves out.
	require.Eventually(t, func() bool { return keyCount(t, rc) >= sessions+1 },
		60*time.Second, 100*time.Millisecond, "a hash per user channel and the node's key")
	settle()
	cmds := total(t, rc) - before
	keys, bytes := presenceKeys(t, rc)
	mem := usedMemory(t, rc) - mem0
	t.Logf("%d sessions: %d presence keys, MEMORY USAGE sum %d bytes (%.0f per session), used_memory grew %d bytes (%.0f per session); %d commands (%.2f per connect, batched)",
		sessions, keys, bytes, float64(bytes)/sessions, mem, float64(mem)/sessions, cmds, float64(cmds)/sessions)
	assert.Equal(t, sessions+1, keys, "a hash per user channel and the node's key")
	assert.LessOrEqual(t, cmds, 4*sessions+20, "at most an HSET per field (two a session), each with a PEXPIRE")
	u, err := n.Connections(ctx, "1", "user9999")
	require.NoError(t, err)
	assert.Equal(t, 1, u)
}

// total is the commands the server has run so far, but INFO, which the
// test itself sends, and HELLO.
func total(t *testing.T, rc *redis.Client) int {
	t.Helper()
	info, err := rc.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		// HELLO opens a connection of the client's pool, not a cost of
		// each connect.
		if !ok || name == "cmdstat_info" || name == "cmdstat_hello" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		c, err := strconv.Atoi(calls)
		require.NoError(t, err)
		n += c
	}
	return n
}

// keyCount is the number of keys in the database, from INFO keyspace.
func keyCount(t *testing.T, rc *redis.Client) int {
	t.Helper()
	info, err := rc.Info(context.Background(), "keyspace").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "db0:keys="); ok {
			v, _, _ = strings.Cut(v, ",")
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

func usedMemory(t *testing.T, rc *redis.Client) int {
	t.Helper()
	info, err := rc.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// presenceKeys counts the presence keys and sums their MEMORY USAGE.
func presenceKeys(t *testing.T, rc *redis.Client) (keys, bytes int) {
	t.Helper()
	ctx := context.Background()
	iter := rc.Scan(ctx, 0, "imhub:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if !strings.HasSuffix(k, "}:presence") && !strings.Contains(k, "{presence-nodes}") {
			continue
		}
		keys++
		n, err := rc.MemoryUsage(ctx, k).Result()
		require.NoError(t, err, fmt.Sprint("MEMORY USAGE ", k))
		bytes += int(n)
	}
	require.NoError(t, iter.Err())
	return keys, bytes
}

// A hash that emptied (Redis deletes it) and is written again gets a TTL
// again: otherwise what a node killed afterwards left in it would stay for
// good.
func TestRecreatedHashExpires(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	a := startNode(t, srv.URL(), "a", 3*time.Second)
	const key = "imhub:{1:group:G1}:presence"
	exists := func() bool { return rc.Exists(ctx, key).Val() == 1 }
	a.Join("1", "group:G1", "ann")
	require.Eventually(t, exists, 5*time.Second, 5*time.Millisecond)
	assert.Positive(t, rc.PTTL(ctx, key).Val())
	a.Leave("1", "group:G1", "ann")
	require.Eventually(t, func() bool { return !exists() }, 5*time.Second, 5*time.Millisecond, "the last field gone, Redis drops the hash")
	a.Join("1", "group:G1", "ann")
	require.Eventually(t, exists, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return rc.PTTL(ctx, key).Val() > 0 }, time.Second, 5*time.Millisecond,
		"the hash written again has a TTL (PTTL %v)", rc.PTTL(ctx, key).Val())
}

// A node whose heartbeat lapsed writes its counts again; a reader that took
// it for dead may delete them just after (its HDEL follows its MGET). The
// node writes them once more on its next heartbeat, so they come back.
func TestReaderDeleteRacingRewrite(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	a, b := startNode(t, srv.URL(), "a", 3*time.Second), startNode(t, srv.URL(), "b", 3*time.Second)
	a.Join("1", "group:G1", "ann")
	require.Eventually(t, func() bool { return users(t, b, "group:G1")["ann"] == 1 }, 5*time.Second, 10*time.Millisecond)
	const hash = "imhub:{1:group:G1}:presence"
	fields := rc.HKeys(ctx, hash).Val()
	require.Len(t, fields, 1)
	instance, _, _ := strings.Cut(fields[0], " ")

	var once sync.Once
	presence.SetBeforeReap(b.Tracker, func() {
		once.Do(func() {
			// The rewrite of a's next heartbeat lands between b's MGET
			// and its HDEL: made visible by taking the field away first.
			require.NoError(t, rc.HDel(ctx, hash, fields[0]).Err())
			require.Eventually(t, func() bool { return rc.HExists(ctx, hash, fields[0]).Val() }, 5*time.Second, 5*time.Millisecond,
				"a writes its counts again once its heartbeat finds its key gone")
		})
	})
	require.NoError(t, rc.Del(ctx, "imhub:{presence-nodes}:"+instance).Err(), "a's heartbeat lapsed")
	assert.Empty(t, users(t, b, "group:G1"), "a taken for dead, its field deleted")
	assert.False(t, rc.HExists(ctx, hash, fields[0]).Val(), "b's HDEL landed after a's rewrite")
	require.Eventually(t, func() bool { return users(t, b, "group:G1")["ann"] == 1 }, 5*time.Second, 20*time.Millisecond,
		"a writes its counts again on the heartbeat after")
}
