package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// chaosToken is the app's callback token: every callback is signed.
const chaosToken = "chaos-callback-token"

// chaosEvery is how often each lane sends a callback: six lanes at 8/s
// make 48 callbacks a second, 48 events a second on the app channel.
const chaosEvery = 125 * time.Millisecond

// chaosHistory is the history kept per channel. The app channel carries
// every event (48/s), and in the last phase the clients of the killed hub
// are away for seconds, while Redis is down and then while the spools
// publish what they held in a burst: by the time they resubscribe with
// since, more than 100 events (the default) went out on that channel, and
// they are rightly told recovered:false (measured: the admin on app was,
// having missed about 190 events). 1000 is 20 s of the app channel,
// and far more of every other channel.
const chaosHistory = "1000"

// chaosNode is one hub of the chaos test: its address and spool stay the
// same across restarts; proc is the process running now.
type chaosNode struct {
	name  string
	addr  string
	spool string
	mu    sync.Mutex
	proc  *hubtest.Process
	old   []*hubtest.Process // earlier processes, for their logs
}

func (n *chaosNode) current() *hubtest.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// restart starts the node again after it exited, with the same flags,
// address and spool directory.
func (n *chaosNode) restart(t *testing.T) {
	t.Helper()
	next := n.current().Restart()
	n.mu.Lock()
	n.old = append(n.old, n.proc)
	n.proc = next
	n.mu.Unlock()
}

func (n *chaosNode) base() string { return "http://" + n.addr }

// startChaosNodes starts three hubs on redisURL, each with a spool of its
// own and an address that stays the same across restarts, signed
// callbacks required, and waits until they are ready.
func startChaosNodes(t *testing.T, redisURL string, extra ...string) []*chaosNode {
	t.Helper()
	nodes := make([]*chaosNode, 3)
	for i := range nodes {
		n := &chaosNode{
			name:  fmt.Sprintf("hub-%c", 'a'+i),
			addr:  fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)),
			spool: filepath.Join(t.TempDir(), "spool"),
		}
		n.proc = hubtest.Start(t, append([]string{
			"-addr", n.addr, "-node", n.name, "-redis", redisURL, "-apps", "100:" + chaosToken,
			"-jwt-secret", clusterSecret, "-spool-dir", n.spool,
		}, extra...))
		nodes[i] = n
	}
	for _, n := range nodes {
		n.current().WaitReady(200)
	}
	return nodes
}

// lane is a stream of callbacks sent one after another, each once it was
// acknowledged, as the IM sends the events of one conversation: a group's
// messages, or the messages between two users. Its callbacks go to its
// home node (or, spread, to each node in turn), and after a failure to the
// next node, and the next.
type lane struct {
	name string
	home int
	// spread sends each callback to the next node in turn, as a load
	// balancer that knows nothing of conversations does.
	spread   bool
	command  string
	body     func(seq int) string
	channels []string
	first    int // its callbacks are numbered first, first+1, …
}

// ack is one acknowledged callback.
type ack struct {
	seq      int
	key      string
	phase    string
	attempts int
	node     string // the node that acknowledged it
	// redisAway: acknowledged in a phase in which Redis was away, so it
	// may have been spooled.
	redisAway bool
}

// mayOvertake reports whether later, acknowledged after earlier was,
// may be published before it. Each node's spool publishes in the order it
// took callbacks, also after a restart, and a node publishes at once
// while Redis is there; but two nodes that both spooled callbacks of one
// channel while Redis was away publish them side by side when it is back,
// and nothing orders one node's against the other's. So only that is
// allowed: callbacks of one lane acknowledged by two nodes, the earlier
// one while Redis was away.
func mayOvertake(earlier, later ack) bool {
	return earlier.redisAway && earlier.node != later.node
}

// TestChaos runs three hubs on one Redis with an append-only file, each
// with its own spool, under a steady flow of signed callbacks, while one
// after another: a hub is killed with SIGKILL and restarted; a hub is
// drained with SIGTERM and restarted; Redis is killed with SIGKILL and
// restarted from its append-only file; Redis is shut down cleanly and
// restarted; Redis is killed while a hub holds spooled callbacks, and that
// hub is killed too and restarted with its spool before Redis is back.
// Clients (the Go client, which reconnects to the next node and
// resubscribes with since) must end with every acknowledged callback
// exactly once, at consecutive offsets of one epoch that mean the same
// event for all of them, each conversation in the order its callbacks were
// acknowledged (but for what mayOvertake allows), and none of them may be
// told recovered:false.
func TestChaos(t *testing.T) {
	started := time.Now()
	srv := redistest.StartPersistent(t)

	nodes := startChaosNodes(t, srv.URL(), "-drain", "2s", "-history-size", chaosHistory)
	t.Cleanup(func() {
		if t.Failed() {
			// The processes that ended before the test: hubtest shows
			// the ones still running.
			for _, n := range nodes {
				for i, p := range n.old {
					t.Logf("%s, run %d, stderr:\n%s", n.name, i+1, p.Stderr())
				}
			}
			log, _ := os.ReadFile(filepath.Join(srv.Dir(), "redis.log"))
			t.Logf("redis log:\n%s", log)
		}
	})
	urls := func(first int) []string {
		var u []string
		for i := range nodes {
			u = append(u, "ws://"+nodes[(first+i)%len(nodes)].addr+"/ws")
		}
		return u
	}

	lanes := lanesFor([]lane{
		{name: "G1", home: 0, command: "Group.CallbackAfterSendMsg", channels: []string{"group:G1"}},
		{name: "G2", home: 1, command: "Group.CallbackAfterSendMsg", channels: []string{"group:G2"}},
		{name: "G3", home: 2, command: "Group.CallbackAfterSendMsg", channels: []string{"group:G3"}},
		{name: "G4", spread: true, command: "Group.CallbackAfterSendMsg", channels: []string{"group:G4"}},
		{name: "u0-u1", home: 0, command: "C2C.CallbackAfterSendMsg", channels: []string{"user:u0", "user:u1"}},
		{name: "u2-u3", home: 1, command: "C2C.CallbackAfterSendMsg", channels: []string{"user:u2", "user:u3"}},
	})

	// Sixteen clients spread over the nodes: two per group, one on three
	// groups, each user of the pairs (two devices for u0 and u2), and an
	// admin on the app channel.
	var cols []*collector
	add := func(cfg collectConfig) {
		cfg.urls = urls(len(cols))
		cols = append(cols, collectWith(t, cfg))
	}
	for _, g := range []string{"G1", "G2", "G3", "G4"} {
		for j := range 2 {
			u := fmt.Sprintf("%s-m%d", strings.ToLower(g), j)
			add(collectConfig{name: u, user: u, groups: []string{g}, channels: []string{"group:" + g}})
		}
	}
	add(collectConfig{name: "all-groups", user: "w", groups: []string{"*"}, channels: []string{"group:G1", "group:G2", "group:G3"}})
	for _, u := range []string{"u0", "u0", "u1", "u2", "u2", "u3"} {
		add(collectConfig{name: fmt.Sprintf("%s#%d", u, len(cols)), user: u})
	}
	add(collectConfig{name: "admin", user: "ops", admin: true, channels: []string{"app"}})

	flow := startFlow(t, flowConfig{lanes: lanes, every: chaosEvery, token: chaosToken,
		node: func(i int) (string, string) {
			n := nodes[i%len(nodes)]
			return n.name, n.base()
		},
		away: func(phase string) bool { return strings.Contains(phase, "redis") },
	})

	// The phases, one after another, each followed by a quiet spell in
	// which the cluster must come back to normal by itself.
	var timings []string
	settle := func() {
		t.Helper()
		for _, n := range nodes {
			n.current().WaitReady(200)
		}
		waitSpoolsEmpty(t, nodes)
		time.Sleep(time.Second)
	}
	run := func(name string, f func()) {
		t.Helper()
		flow.setPhase(name)
		start := time.Now()
		f()
		settle()
		timings = append(timings, fmt.Sprintf("%s %.1fs", name, time.Since(start).Seconds()))
	}
	time.Sleep(1500 * time.Millisecond)

	run("kill-hub", func() {
		nodes[0].current().Kill()
		time.Sleep(time.Second)
		nodes[0].restart(t)
	})
	run("drain-hub", func() {
		p := nodes[1].current()
		p.Signal(syscall.SIGTERM)
		require.Equal(t, 0, p.Wait(30*time.Second), "a drained hub exits 0")
		nodes[1].restart(t)
	})
	run("kill-redis", func() {
		srv.Kill()
		time.Sleep(1500 * time.Millisecond)
		srv.Restart()
	})
	run("shutdown-redis", func() {
		srv.Shutdown()
		time.Sleep(time.Second)
		srv.Restart()
	})
	run("kill-redis-and-spooling-hub", func() {
		srv.Kill()
		victim := nodes[2]
		require.Eventually(t, func() bool { return spoolEvents(victim.current()) > 0 }, 10*time.Second, 20*time.Millisecond,
			"%s spools while Redis is away", victim.name)
		time.Sleep(500 * time.Millisecond)
		held := spoolEvents(victim.current())
		victim.current().Kill()
		time.Sleep(300 * time.Millisecond)
		victim.restart(t)
		l := victim.current().WaitLog(10*time.Second, "spool from the earlier run", func(l map[string]any) bool {
			return strings.Contains(fmt.Sprint(l["msg"]), "spool holds events from an earlier run")
		})
		assert.GreaterOrEqual(t, l["events"], float64(held), "the restarted hub found what it had spooled")
		time.Sleep(500 * time.Millisecond)
		srv.Restart()
	})

	done := flow.finish(t)
	settle()
	rep := checkDeliveries(t, lanes, done, cols)
	perPhase := map[string]int{}
	for _, a := range done {
		perPhase[a.phase]++
	}
	t.Logf("chaos: %d callbacks acknowledged (%v), %d retries, %d deliveries to %d clients (%d pairs overtaken across spools), %d reconnects; phases: %s; total %.1fs",
		len(done), perPhase, flow.retries(), rep.deliveries, len(cols), rep.overtaken, rep.reconnects, strings.Join(timings, ", "), time.Since(started).Seconds())
}

// chaosKey is messageKey of the event a lane's callback seq becomes.
func chaosKey(command string, seq int) string {
	if strings.HasPrefix(command, "Group.") {
		return fmt.Sprintf("group.message.sent#%d", seq)
	}
	return fmt.Sprintf("c2c.message.sent#%d", seq)
}

// streamReport is what is wrong with what one client got on one channel.
type streamReport struct {
	missing    []string // acknowledged, never delivered
	duplicates []string // delivered more than once
	unexpected []string // delivered, never acknowledged
	// offsetGaps are places where the offset did not go up by one, or
	// the epoch changed: a hole in the stream as the client saw it.
	offsetGaps []string
	// reordered are events delivered after one acknowledged later, where
	// that is not allowed (see mayOvertake).
	reordered []string
	// overtaken counts the pairs delivered out of acknowledgement order
	// where that is allowed.
	overtaken int
	conflicts []string // one offset, two events, on two clients
}

func (r streamReport) ok() bool {
	return len(r.missing)+len(r.duplicates)+len(r.unexpected)+len(r.offsetGaps)+len(r.reordered)+len(r.conflicts) == 0
}

func (r streamReport) String() string {
	var b strings.Builder
	part := func(what string, s []string) {
		if len(s) == 0 {
			return
		}
		fmt.Fprintf(&b, "%d %s", len(s), what)
		if len(s) > 8 {
			s = append(s[:8:8], "…")
		}
		fmt.Fprintf(&b, " %v; ", s)
	}
	part("missing (gaps)", r.missing)
	part("duplicates", r.duplicates)
	part("never acknowledged", r.unexpected)
	part("offset gaps", r.offsetGaps)
	part("out of order", r.reordered)
	part("offset conflicts", r.conflicts)
	return b.String()
}

// checkStream compares what a client got on a channel with what was
// acknowledged for it. Order is checked within each lane: callbacks of
// different lanes are sent at the same time, and their order is not
// promised (the app channel has them all). Within a lane, an event must
// not be delivered after one acknowledged later, unless mayOvertake.
func checkStream(want []ack, got []received) streamReport {
	var r streamReport
	type place struct {
		lane, i int
	}
	order := map[string]place{}
	lanePos := map[int][]ack{}
	for _, a := range want {
		l := a.seq / 100000
		order[a.key] = place{l, len(lanePos[l])}
		lanePos[l] = append(lanePos[l], a)
	}
	seen := map[string]bool{}
	delivered := map[int][]int{} // lane -> places of the events delivered
	var prev string
	for _, e := range got {
		if prev != "" && !nextOffset(prev, e.offset) {
			r.offsetGaps = append(r.offsetGaps, prev+" -> "+e.offset)
		}
		prev = e.offset
		if seen[e.key] {
			r.duplicates = append(r.duplicates, e.key+" at "+e.offset)
			continue
		}
		seen[e.key] = true
		p, ok := order[e.key]
		if !ok {
			r.unexpected = append(r.unexpected, e.key)
			continue
		}
		// Every event of the lane delivered so far that was acknowledged
		// after this one has overtaken it.
		for _, j := range delivered[p.lane] {
			if j <= p.i {
				continue
			}
			earlier, later := lanePos[p.lane][p.i], lanePos[p.lane][j]
			if mayOvertake(earlier, later) {
				r.overtaken++
			} else {
				r.reordered = append(r.reordered, fmt.Sprintf("%s after %s", earlier, later))
			}
		}
		delivered[p.lane] = append(delivered[p.lane], p.i)
	}
	for _, a := range want {
		if !seen[a.key] {
			r.missing = append(r.missing, a.String())
		}
	}
	return r
}

func (a ack) String() string {
	return fmt.Sprintf("%s (%s, by %s, %d attempts)", a.key, a.phase, a.node, a.attempts)
}

// nextOffset reports whether b is the offset right after a, in the same
// epoch ("n:epoch:tag"; the tags are the hub's to check).
func nextOffset(a, b string) bool {
	na, ea, _ := strings.Cut(a, ":")
	nb, eb, _ := strings.Cut(b, ":")
	ea, _, _ = strings.Cut(ea, ":")
	eb, _, _ = strings.Cut(eb, ":")
	x, err1 := strconv.ParseUint(na, 10, 64)
	y, err2 := strconv.ParseUint(nb, 10, 64)
	return err1 == nil && err2 == nil && ea == eb && y == x+1
}

// waitSpoolsEmpty waits until every node has published what it spooled.
func waitSpoolsEmpty(t *testing.T, nodes []*chaosNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if spoolEvents(n.current()) != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the spools are published")
}

var spoolEventsRE = regexp.MustCompile(`(?m)^imhub_spool_events (\S+)$`)

// spoolEvents is the number of callbacks p holds in its spool, -1 when
// it cannot tell.
func spoolEvents(p *hubtest.Process) int {
	resp, err := http.Get(p.URL("/metrics"))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	m := spoolEventsRE.FindSubmatch(b)
	if m == nil {
		return -1
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return -1
	}
	return int(f)
}
