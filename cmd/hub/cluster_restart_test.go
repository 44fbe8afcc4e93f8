package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/redistest"
)

// A primary of a Redis Cluster is killed with SIGKILL and started again at
// once, before the cluster fails it over: its append-only file has every
// write it acknowledged, and the hubs must lose none of its channels'
// events on the way.
func TestRedisClusterPrimaryRestart(t *testing.T) { testClusterPrimaryLoss(t, false) }

// A primary is killed and the cluster promotes its replica; the old
// primary comes back as a replica of the new one.
func TestRedisClusterFailover(t *testing.T) { testClusterPrimaryLoss(t, true) }

// testClusterPrimaryLoss runs three hubs (each with its own spool) on a
// three-primary cluster with a replica each and append-only files synced
// on every write, under a steady flow of signed callbacks on eight busy
// groups, each callback retried on the next hub until acknowledged. The
// primary that serves most of the groups is killed, and either started
// again at once or failed over. The 24 clients (three per group, spread
// over the hubs) must end with every acknowledged callback exactly once,
// in order, and none may be told recovered:false.
//
// History is kept short on purpose (20 events, under a second of one
// group's traffic): after a restart, the hubs must resume before it would
// run out, or keep the events they have not read yet, not count on a long
// history; a failover is survived with -history-hold.
func testClusterPrimaryLoss(t *testing.T, failover bool) {
	started := time.Now()
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Primaries: 3, Replicas: 1, Persist: true})
	// A failover leaves the channels unsubscribed until the hubs see the
	// promoted replica, while the spools publish: only the hold keeps
	// those events from the short history's trimming. A restart is
	// resubscribed before any event can be published, so it needs none.
	args := []string{"-history-size", "20"}
	if failover {
		args = append(args, "-history-hold", "10s")
	}
	nodes := startChaosNodes(t, cl.URL(), args...)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range cl.Nodes {
				log, _ := os.ReadFile(filepath.Join(s.Dir(), "redis.log"))
				t.Logf("redis %s log:\n%s", s.Addr(), log)
			}
		}
	})

	var groups []lane
	owned := map[*redistest.Server]int{}
	for i := range 8 {
		g := fmt.Sprintf("G%d", i+1)
		groups = append(groups, lane{name: g, home: i % 3, command: "Group.CallbackAfterSendMsg", channels: []string{"group:" + g}})
		owned[cl.Owner(streamKey("100", "group:"+g))]++
	}
	lanes := lanesFor(groups)
	var victim *redistest.Server
	for s, n := range owned {
		if victim == nil || n > owned[victim] {
			victim = s
		}
	}
	t.Logf("the primary %s serves %d of the 8 groups", victim.Addr(), owned[victim])

	var cols []*collector
	for _, l := range lanes {
		g := l.name
		for j := range 3 {
			var urls []string
			for k := range nodes {
				urls = append(urls, "ws://"+nodes[(len(cols)+k)%len(nodes)].addr+"/ws")
			}
			u := fmt.Sprintf("%s-m%d", strings.ToLower(g), j)
			cols = append(cols, collectWith(t, collectConfig{name: u, user: u, groups: []string{g}, channels: []string{"group:" + g}, urls: urls}))
		}
	}

	flow := startFlow(t, flowConfig{lanes: lanes, every: 40 * time.Millisecond, token: chaosToken,
		node: func(i int) (string, string) {
			n := nodes[i%len(nodes)]
			return n.name, n.base()
		},
		away: func(phase string) bool { return phase != "warm-up" },
	})
	time.Sleep(1500 * time.Millisecond)
	if failover {
		flow.setPhase("failover")
		replica := cl.ReplicaOf(victim)
		victim.Kill()
		require.Eventually(t, func() bool { return cl.Primary(replica) }, 30*time.Second, 50*time.Millisecond, "the replica is promoted")
		cl.WaitOK()
		time.Sleep(500 * time.Millisecond)
		victim.Restart()
		cl.WaitOK()
		require.False(t, cl.Primary(victim), "the old primary came back as a replica")
		cl.WaitReplicasSynced()
	} else {
		flow.setPhase("primary-restart")
		victim.Kill()
		victim.Restart()
		cl.WaitOK()
		require.True(t, cl.Primary(victim), "the primary came back before a failover")
	}
	time.Sleep(3 * time.Second) // traffic after the return

	done := flow.finish(t)
	waitSpoolsEmpty(t, nodes)
	rep := checkDeliveries(t, lanes, done, cols)
	perPhase := map[string]int{}
	for _, a := range done {
		perPhase[a.phase]++
	}
	t.Logf("cluster: %d callbacks acknowledged (%v), %d retries, %d deliveries to %d clients (%d pairs overtaken across spools), %d reconnects; total %.1fs",
		len(done), perPhase, flow.retries(), rep.deliveries, len(cols), rep.overtaken, rep.reconnects, time.Since(started).Seconds())
	if t.Failed() {
		for _, n := range nodes {
			t.Logf("%s stderr:\n%s", n.name, n.current().Stderr())
		}
	}
}
