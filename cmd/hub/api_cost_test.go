package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// The Redis commands a connect and a disconnect cost a hub, by command,
// the figures BENCHMARKS.md quotes (run with -v): besides the broker's
// SUBSCRIBE and history script (EVALSHA, whose GET and HMGET count too),
// one GET (is the token revoked?) and presence's HSET and PEXPIRE per
// connect; UNSUBSCRIBE and one HDEL per disconnect.
func TestConnectRedisCommands(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 1, "-api-keys", "100:"+apiKey)
	rc := srv.Client()
	stats := func() map[string]int {
		info, err := rc.Info(context.Background(), "commandstats").Result()
		require.NoError(t, err)
		out := map[string]int{}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(calls)
		}
		return out
	}
	// Only what the clients cause: the heartbeat, pings and INFO are
	// left out.
	diff := func(a, b map[string]int, n int) (string, map[string]int) {
		d := map[string]int{}
		var names []string
		for k, v := range b {
			if k == "info" || k == "ping" || k == "set" || k == "hello" || v == a[k] {
				continue
			}
			d[k] = v - a[k]
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(d[k])/float64(n)))
		}
		return strings.Join(parts, ", "), d
	}
	const n = 50
	time.Sleep(200 * time.Millisecond)
	s0 := stats()
	var conns []*wstest.Conn
	for i := range n {
		c := wstest.Dial(t, wsURL(nodes[0]), mint(t, "100", fmt.Sprintf("user%d", i), false))
		c.ReadOp("connected")
		c.ReadOp("subscribed")
		conns = append(conns, c)
		time.Sleep(20 * time.Millisecond) // one at a time: no batching across connects
	}
	time.Sleep(300 * time.Millisecond)
	s1 := stats()
	for _, c := range conns {
		_ = c.C.CloseNow()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	s2 := stats()
	cs, c := diff(s0, s1, n)
	ds, d := diff(s1, s2, n)
	t.Logf("redis commands per connect: %s", cs)
	t.Logf("redis commands per disconnect: %s", ds)
	assert.Equal(t, 2*n, c["get"], "one revocation GET per connect, and the history script's")
	// A session's connect and its subscription to user:<sub> are two
	// changes, a history read apart: presence gathers changes for 5 ms, so
	// on a busy machine they may go out in two batches. One batch is the
	// usual cost (the figures BENCHMARKS.md quotes); two is the most.
	assert.GreaterOrEqual(t, c["hset"], n, "presence: an HSET per connect")
	assert.LessOrEqual(t, c["hset"], 2*n, "presence: at most two batches per connect")
	assert.Equal(t, c["hset"], c["pexpire"], "presence: a PEXPIRE with every HSET")
	assert.GreaterOrEqual(t, d["hdel"], n, "presence: an HDEL per disconnect")
	assert.LessOrEqual(t, d["hdel"], 2*n, "presence: at most two batches per disconnect")
}
