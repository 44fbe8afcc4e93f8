package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// failoverRig is a Redis primary with a replica that the hubs reach
// through url, and the way that replica is made the primary.
type failoverRig struct {
	url              string
	primary, replica *redistest.Server
	promote          func(t *testing.T)
}

// sentinelRig is a primary and a replica, with append-only files synced on
// every write, watched by a Sentinel that fails over when told to.
func sentinelRig(t *testing.T) failoverRig {
	primary, replica := redistest.StartReplicated(t, redistest.Options{Persist: true})
	s := redistest.StartSentinel(t, primary, "imhub")
	sc := s.Client()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		replicas, err := sc.Do(ctx, "SENTINEL", "REPLICAS", "imhub").Slice()
		return err == nil && len(replicas) == 1
	}, 20*time.Second, 20*time.Millisecond, "Sentinel finds the replica")
	return failoverRig{
		url: "redis+sentinel://" + s.Addr() + "?master_name=imhub", primary: primary, replica: replica,
		promote: func(t *testing.T) {
			// Sentinel picks a replica only once it has answered again
			// for a while after its pause.
			require.Eventually(t, func() bool {
				return sc.Do(ctx, "SENTINEL", "FAILOVER", "imhub").Err() == nil
			}, 20*time.Second, 100*time.Millisecond, "Sentinel starts the failover")
			require.Eventually(t, func() bool {
				addr, _ := sc.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "imhub").StringSlice()
				return len(addr) == 2 && addr[0]+":"+addr[1] == replica.Addr()
			}, 30*time.Second, 20*time.Millisecond, "Sentinel names the replica")
		},
	}
}

// clusterRig is a three-primary Redis Cluster with a replica each and
// append-only files; the primary and replica are the shard of group:G,
// and the replica takes over with CLUSTER FAILOVER TAKEOVER.
func clusterRig(t *testing.T) failoverRig {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Primaries: 3, Replicas: 1, Persist: true})
	primary := cl.Owner(streamKey("100", "group:G"))
	replica := cl.ReplicaOf(primary)
	primary.WaitReplicaOnlineFor(streamKey("100", "group:G") + ":redistest")
	return failoverRig{
		url: cl.URL(), primary: primary, replica: replica,
		promote: func(t *testing.T) {
			require.NoError(t, replica.Client().Do(context.Background(), "CLUSTER", "FAILOVER", "TAKEOVER").Err())
			require.Eventually(t, func() bool { return cl.Primary(replica) }, 30*time.Second, 20*time.Millisecond, "the replica takes over")
			cl.WaitOK()
		},
	}
}

// resumer is a client of group:G that can go away with the offset it got
// last and come back with since, as a browser reloading a page does.
type resumer struct {
	t    *testing.T
	name string
	url  string
	mu   sync.Mutex
	got  []received
	// recovered is what the last subscribe with since was answered.
	recovered *bool
	told      bool // some subscribed frame on group:G said recovered:false
	conn      *wstest.Conn
	done      chan struct{}
}

func newResumer(t *testing.T, name, url string) *resumer {
	r := &resumer{t: t, name: name, url: url}
	r.connect("")
	return r
}

// connect subscribes to group:G, with since when not empty, and reads
// until the connection closes.
func (r *resumer) connect(since string) {
	r.t.Helper()
	c := wstest.Dial(r.t, r.url, mint(r.t, "100", r.name, false, "G"))
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	f := map[string]any{"op": "subscribe", "channel": "group:G", "id": 1}
	if since != "" {
		f["since"] = since
	}
	c.Send(f)
	r.mu.Lock()
	r.conn, r.done, r.recovered = c, make(chan struct{}), nil
	done := r.done
	r.mu.Unlock()
	go func() {
		defer close(done)
		for {
			f, err := c.TryRead(time.Minute)
			if err != nil {
				return
			}
			r.mu.Lock()
			switch {
			case f.Op == "subscribed" && f.Channel == "group:G" && f.Recovered != nil:
				if string(f.ID) == "1" {
					r.recovered = f.Recovered
				}
				r.told = r.told || !*f.Recovered
			case f.Op == "event" && f.Channel == "group:G":
				r.got = append(r.got, received{offset: f.Offset, key: messageKey(f.Event)})
			}
			r.mu.Unlock()
		}
	}()
	require.Eventually(r.t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return since == "" || r.recovered != nil
	}, 10*time.Second, 5*time.Millisecond, "%s is answered", r.name)
}

// leave closes the connection and returns the offset of the last event.
func (r *resumer) leave() string {
	r.t.Helper()
	r.mu.Lock()
	c, done := r.conn, r.done
	r.mu.Unlock()
	_ = c.C.Close(websocket.StatusNormalClosure, "")
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(r.t, r.got, "%s got nothing", r.name)
	return r.got[len(r.got)-1].offset
}

func (r *resumer) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.got {
		out = append(out, e.key)
	}
	return out
}

func (r *resumer) waitFor(keys ...string) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		have := r.keys()
		for _, k := range keys {
			if !slices.Contains(have, k) {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "%s gets %v; has %v", r.name, keys, r.keys())
}

// wasRecovered is what the subscribe with since was answered.
func (r *resumer) wasRecovered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recovered != nil && *r.recovered
}

func keysOf(from, to int) []string {
	var out []string
	for seq := from; seq <= to; seq++ {
		out = append(out, chaosKey("Group.", seq))
	}
	return out
}

var unreplicatedRE = regexp.MustCompile(`(?m)^imhub_broker_unreplicated_total (\S+)$`)

// unreplicated is p's imhub_broker_unreplicated_total.
func unreplicated(t *testing.T, p *hubtest.Process) int {
	t.Helper()
	_, body := p.Get("/metrics")
	m := unreplicatedRE.FindStringSubmatch(body)
	require.NotNil(t, m, "imhub_broker_unreplicated_total in the metrics")
	n, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return int(n)
}

// testLossyFailover reproduces a failover that loses writes, step by step:
// two hubs (each with a spool) on a primary with a replica; clients of
// group:G on both; five events (1..5) that reach the replica; the replica
// stops (SIGSTOP), and five more events (101..105) are acknowledged to the
// IM; some clients leave, holding the offset they got last; the primary is
// killed with SIGKILL, the replica resumed and made the primary; six more
// events (201..206) come through the other hub, as the IM retrying there
// would; the clients come back with since.
//
// Without waiting (-redis-wait-replicas 0) the replica's link is cut as
// well, so that events 101..105 are the primary's alone and lost with it:
// the new primary hands their offsets out again, to 201..205. Every client
// that got any of them must be told recovered:false, not given what
// follows as if its stream went on. With waiting (auto), events 101..105
// are not acknowledged as durable: each hub keeps them in its spool and
// publishes them once the new primary takes writes, and every client,
// the ones that come back included, ends with every event.
//
// With cut (and waiting), the link is cut too: the primary then has no
// replica to wait for, and the hub would take its writes as durable. With
// min-replicas-to-write 1 on the primary, as deploy/README advises, the
// primary refuses them instead, and the hubs keep them in their spools.
func testLossyFailover(t *testing.T, rig failoverRig, wait, cut bool) {
	flag := "0"
	if wait {
		flag = "auto"
	}
	if cut && wait {
		// On the primary alone: the replica, once promoted, has no
		// replica of its own to count.
		require.NoError(t, rig.primary.Client().ConfigSet(context.Background(), "min-replicas-to-write", "1").Err())
	}
	args := []string{"-redis", rig.url, "-apps", "100:" + chaosToken, "-jwt-secret", clusterSecret,
		"-redis-wait-replicas", flag, "-redis-wait-timeout", "100ms"}
	a := hubtest.Start(t, append(args, "-node", "hub-a", "-spool-dir", t.TempDir()))
	b := hubtest.Start(t, append(args, "-node", "hub-b", "-spool-dir", t.TempDir()))
	a.WaitReady(200)
	b.WaitReady(200)
	pub := &publisher{token: chaosToken, client: &http.Client{Timeout: 8 * time.Second}}
	send := func(to *hubtest.Process, from, until int) {
		t.Helper()
		for seq := from; seq <= until; seq++ {
			_, err := pub.deliver(context.Background(), seq, "Group.CallbackAfterSendMsg", groupMsg("G", seq),
				func(int) string { return to.URL("") })
			require.NoError(t, err)
		}
	}

	var live []*collector
	for i, p := range []*hubtest.Process{a, b, a, b} {
		live = append(live, collectWith(t, collectConfig{name: fmt.Sprint("live", i), user: fmt.Sprint("live", i),
			groups: []string{"G"}, channels: []string{"group:G"}, urls: []string{wsURL(p), wsURL(other(p, a, b))}}))
	}
	var away []*resumer
	for i, p := range []*hubtest.Process{a, b, a, b} {
		away = append(away, newResumer(t, fmt.Sprint("away", i), wsURL(p)))
	}
	before := newResumer(t, "before", wsURL(b))

	send(a, 1, 5)
	for _, r := range append(away, before) {
		r.waitFor(keysOf(1, 5)...)
	}
	sinceBefore := before.leave()

	rig.replica.Pause()
	if cut {
		rig.primary.CutReplicas()
	}
	send(a, 101, 105)
	seen := keysOf(101, 105) // what the clients get live from the old primary
	switch {
	case wait && cut:
		assert.Equal(t, 5, spoolEvents(a), "refused by the primary: kept in the spool")
		seen = nil
	case wait:
		assert.GreaterOrEqual(t, unreplicated(t, a), 1, "no replica confirmed them: counted")
		assert.Equal(t, 5, spoolEvents(a), "kept in the spool, not acknowledged as durable")
		seen = keysOf(101, 101) // the first; the rest wait behind it in the spool
	}
	since := make([]string, len(away))
	for i, r := range away {
		r.waitFor(seen...)
		since[i] = r.leave()
	}

	rig.primary.Kill()
	rig.replica.Resume()
	rig.promote(t)
	if wait {
		require.Eventually(t, func() bool { return spoolEvents(a) == 0 }, 30*time.Second, 20*time.Millisecond,
			"hub-a publishes what it kept on the new primary")
	}
	send(b, 201, 206)

	all := append(append(keysOf(1, 5), keysOf(101, 105)...), keysOf(201, 206)...)
	for i, r := range away {
		r.connect(since[i])
		if !wait {
			assert.False(t, r.wasRecovered(), "%s resumed from %s, an offset the new primary handed out again: it must be told", r.name, since[i])
			continue
		}
		assert.True(t, r.wasRecovered(), "%s resumed from %s", r.name, since[i])
		r.waitFor(keysOf(201, 206)...)
		assert.Equal(t, all, dedupe(r.keys()), "%s: every event once, in order", r.name)
	}
	if wait {
		before.connect(sinceBefore)
		assert.True(t, before.wasRecovered())
		before.waitFor(keysOf(201, 206)...)
		assert.Equal(t, all[5:], before.keys()[5:], "back from before the failover: every event since, in order")
	}

	if !wait {
		// The events between the offset a client was told to go on from
		// and the next live one are not sent (the client reloads what it
		// missed): what follows reaches every client, live.
		send(b, 207, 207)
	}
	last := chaosKey("Group.", 206)
	if !wait {
		last = chaosKey("Group.", 207)
	}
	for _, col := range live {
		require.Eventually(t, func() bool {
			return slices.Contains(keysFrom(col.channel("group:G")), last)
		}, 30*time.Second, 20*time.Millisecond, "%s gets %s; has %v", col.name, last, keysFrom(col.channel("group:G")))
		got := keysFrom(col.channel("group:G"))
		if wait {
			assert.Equal(t, all, got, "%s: every event once, in order", col.name)
			assert.Zero(t, col.resetCount(), "%s: nothing was lost", col.name)
			continue
		}
		assert.NotZero(t, col.resetCount(), "%s got events the new primary does not have: it must be told", col.name)
		assert.Equal(t, all[:10], got[:10], "%s: what it got before the failover", col.name)
	}
}

// other is the process of the two that is not p.
func other(p, a, b *hubtest.Process) *hubtest.Process {
	if p == a {
		return b
	}
	return a
}

func keysFrom(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.key)
	}
	return out
}

// dedupe keeps the first of each key, in order.
func dedupe(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func TestSentinelFailoverThatLosesWritesTellsClients(t *testing.T) {
	testLossyFailover(t, sentinelRig(t), false, true)
}

func TestSentinelFailoverWithWaitLosesNothing(t *testing.T) {
	testLossyFailover(t, sentinelRig(t), true, false)
}

func TestSentinelFailoverWithWaitAndMinReplicasLosesNothing(t *testing.T) {
	testLossyFailover(t, sentinelRig(t), true, true)
}

func TestClusterFailoverThatLosesWritesTellsClients(t *testing.T) {
	testLossyFailover(t, clusterRig(t), false, true)
}

func TestClusterFailoverWithWaitLosesNothing(t *testing.T) {
	testLossyFailover(t, clusterRig(t), true, false)
}
