package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// startIMNodes starts n hubs whose app imApp follows the IM at imURL, on
// Redis at redisURL (the in-process broker, one node, without).
func startIMNodes(t *testing.T, redisURL, imURL string, n int) []*hubtest.Process {
	t.Helper()
	var nodes []*hubtest.Process
	for i := range n {
		args := append(imArgs(imURL), "-node", fmt.Sprintf("hub-%c", 'a'+i))
		if redisURL != "" {
			args = append(args, "-redis", redisURL)
		}
		nodes = append(nodes, hubtest.Start(t, args))
	}
	for _, p := range nodes {
		p.WaitReady(200)
	}
	return nodes
}

// seen is what one session got of a channel until it was unsubscribed
// from it: the types and message keys of its events, and the unsubscribe's
// reason ("" while still subscribed).
type seen struct {
	events []string
	reason string
}

// drain reads c until it was unsubscribed from channel with a reason, or
// until it got the event named last, and returns what it got of channel.
func drain(t *testing.T, c *wstest.Conn, channel, last string) seen {
	t.Helper()
	var r seen
	for {
		f := c.Read()
		switch {
		case f.Op == "unsubscribed" && f.Channel == channel && f.Reason != "":
			r.reason = f.Reason
			return r
		case f.Op == "event" && f.Channel == channel:
			k := eventKey(f.Event)
			r.events = append(r.events, k)
			if k == last {
				return r
			}
		}
	}
}

// ofChannel reads c until it gets the event key on the channel until, and
// returns what it got of channel meanwhile: "event <key>" and
// "unsubscribed <reason>" lines. The event on until is sent after every
// one of channel the test waits for, through the same node: what channel
// would have had of those is in c's queue before it.
func ofChannel(t *testing.T, c *wstest.Conn, channel, until, key string) []string {
	t.Helper()
	var got []string
	for {
		f := c.Read()
		switch {
		case f.Op == "event" && f.Channel == until && eventKey(f.Event) == key:
			return got
		case f.Op == "event" && f.Channel == channel:
			got = append(got, "event "+eventKey(f.Event))
		case f.Op == "unsubscribed" && f.Channel == channel:
			got = append(got, "unsubscribed "+f.Reason)
		}
	}
}

// eventKey names an event by its type and, for a message, its seq.
func eventKey(ev []byte) string {
	var e struct {
		Type     string `json:"type"`
		Messages []struct {
			Seq int64 `json:"seq"`
		} `json:"messages"`
	}
	if json.Unmarshal(ev, &e) != nil {
		return "malformed"
	}
	if len(e.Messages) > 0 {
		return fmt.Sprintf("%s#%d", e.Type, e.Messages[0].Seq)
	}
	return e.Type
}

// A member kicked out by an exit callback on node A is sent the exit on
// node B, then unsubscribed, removed; the group's messages the IM sends a
// millisecond after the exit's answer never reach it, while the other
// members, on both nodes, get them all. Its next subscribe, on either
// node, is forbidden. A disbanding then ends every subscription. On one
// Redis, on a Redis Cluster, and with the in-process broker (one node).
func TestIMRemovalAcrossNodes(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testIMRemoval(t, redistest.Start(t).URL(), 2) })
	t.Run("redis cluster", func(t *testing.T) { testIMRemoval(t, redistest.StartCluster(t, 3).URL(), 2) })
	t.Run("in-process broker", func(t *testing.T) { testIMRemoval(t, "", 1) })
}

func testIMRemoval(t *testing.T, redisURL string, n int) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared", "tommy")
	nodes := startIMNodes(t, redisURL, imURL, n)
	a, b := nodes[0], nodes[len(nodes)-1]

	jared, tommyB, leckieA := dialSig(t, b, "jared"), dialSig(t, b, "tommy"), dialSig(t, a, "leckie")
	for _, c := range []*wstest.Conn{jared, tommyB, leckieA} {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
		require.Equal(t, "subscribed", c.ReadOp("subscribed").Op)
	}

	for round := range 3 {
		// jared is let in again for each round: by the IM, and by a join.
		if round > 0 {
			require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterNewMemberJoin",
				fmt.Sprintf(`{"GroupId":"G1","Type":"Public","JoinType":"Invited","Operator_Account":"leckie","NewMemberList":[{"Member_Account":"jared"}],"EventTime":%d}`, time.Now().UnixMilli())))
			want := "group.member.joined"
			drain(t, tommyB, "group:G1", want)
			drain(t, leckieA, "group:G1", want)
			jared = dialSig(t, b, "jared")
			jared.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
			require.Equal(t, "subscribed", jared.Read().Op, "jared back in, round %d", round)
		}
		require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
		time.Sleep(time.Millisecond) // the IM's next callbacks, a millisecond later
		first := round*10 + 1
		for seq := first; seq < first+5; seq++ {
			require.Equal(t, 200, postCommand(t, nodes[seq%n], imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", seq)))
		}
		last := fmt.Sprintf("group.message.sent#%d", first+4)

		for name, c := range map[string]*wstest.Conn{"tommy on B": tommyB, "leckie on A": leckieA} {
			got := drain(t, c, "group:G1", last)
			assert.Empty(t, got.reason, name)
			assert.Equal(t, "group.member.left", got.events[0], name)
			assert.Len(t, got.events, 6, "%s: %v", name, got.events)
		}
		// Node B has fanned every one out: jared's queue holds what it
		// would get of them before this.
		require.Equal(t, 200, postCommand(t, a, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", first+100)))
		got := ofChannel(t, jared, "group:G1", "user:jared", fmt.Sprintf("c2c.message.sent#%d", first+100))
		assert.Equal(t, []string{"event group.member.left", "unsubscribed removed"}, got, "round %d", round)
		for _, p := range nodes {
			again := dialSig(t, p, "jared")
			again.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
			f := again.Read()
			assert.Equal(t, "forbidden", f.Code, "round %d, %s: %s", round, p.Addr, f.Raw)
		}
	}

	require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterGroupDestroyed", `{"GroupId":"G1","Type":"Public","Owner_Account":"leckie","Name":"n"}`))
	require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", 99)))
	require.Equal(t, 200, postCommand(t, a, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("tommy", "leckie", 100)))
	for name, c := range map[string]*wstest.Conn{"tommy on B": tommyB, "leckie on A": leckieA} {
		got := ofChannel(t, c, "group:G1", "user:"+name[:strings.Index(name, " ")], "c2c.message.sent#100")
		assert.Equal(t, []string{"event group.destroyed", "unsubscribed destroyed"}, got, name)
	}
	_, metrics := b.Get("/metrics")
	assert.Contains(t, metrics, `imhub_membership_removals_total{reason="removed"} 3`)
	assert.Contains(t, metrics, `imhub_membership_removals_total{reason="destroyed"} `)
}

// A member subscribing with since on node B at the moment its exit is
// taken on node A: whichever comes first, nothing the group publishes
// after the exit reaches it. It is either refused, or subscribed and sent
// the group's events up to the exit, then unsubscribed, removed.
func TestIMRemovalWhileSubscribing(t *testing.T) {
	stub, imURL := startIM(t)
	srv := redistest.Start(t)
	nodes := startIMNodes(t, srv.URL(), imURL, 2)
	a, b := nodes[0], nodes[1]
	outcomes := map[string]int{}
	for round := range 20 {
		group := fmt.Sprintf("R%d", round)
		stub.CreateGroup(imApp, group, "Public", "leckie", "jared")
		watch := dialSig(t, b, "leckie") // keeps the node on the group
		watch.Send(map[string]any{"op": "subscribe", "channel": "group:" + group})
		since := watch.ReadOp("subscribed").Offset
		require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterSendMsg", groupMsg(group, 1)))

		jared := dialSig(t, b, "jared")
		// Asked about once, so that the subscribe below is answered from
		// Redis, as fast as the exit is taken.
		jared.Send(map[string]any{"op": "subscribe", "channel": "group:" + group})
		jared.ReadOp("subscribed")
		jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:" + group})
		jared.ReadOp("unsubscribed")
		exited := make(chan int, 1)
		go func() {
			exited <- postCommand(t, a, imApp, "Group.CallbackAfterMemberExit", exitBody(group, "jared"))
		}()
		time.Sleep(time.Duration(round%5) * 300 * time.Microsecond) // now one, now the other first
		jared.Send(map[string]any{"op": "subscribe", "channel": "group:" + group, "since": since})
		require.Equal(t, 200, <-exited)
		require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterSendMsg", groupMsg(group, 2)))
		last := "group.message.sent#2"

		drain(t, watch, "group:"+group, last)
		var answer wstest.Frame
		var got []string
		for answer.Op == "" {
			f := jared.Read()
			switch {
			case (f.Op == "error" || f.Op == "subscribed") && f.Channel == "group:"+group:
				answer = f
			case f.Op == "event" && f.Channel == "group:"+group:
				got = append(got, "event "+eventKey(f.Event))
			}
		}
		// Node B has fanned out every event of the group, and answered:
		// what jared would get of them is queued before this.
		require.Equal(t, 200, postCommand(t, a, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", round+1)))
		got = append(got, ofChannel(t, jared, "group:"+group, "user:jared", fmt.Sprintf("c2c.message.sent#%d", round+1))...)
		switch answer.Op {
		case "error":
			assert.Equal(t, "forbidden", answer.Code)
			assert.Empty(t, got)
			outcomes["refused"]++
		case "subscribed":
			require.NotEmpty(t, got, "round %d", round)
			assert.Equal(t, "unsubscribed removed", got[len(got)-1], "round %d: %v", round, got)
			assert.NotContains(t, got, "event "+last, "round %d", round)
			if len(got) > 1 {
				assert.Equal(t, "event group.member.left", got[len(got)-2], "round %d: the exit is the last event it got: %v", round, got)
			}
			outcomes["removed"]++
		}
	}
	t.Logf("outcomes over 20 rounds: %v", outcomes)
}

// An exit taken while Redis is down is spooled, its change of membership
// with it: once Redis is back, the spool tells the membership before it
// publishes the event, so that a node the event never reaches (no session
// of it has the group) refuses the user too, though Redis kept it a
// member from before.
func TestIMExitSpooledWhileRedisDown(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	srv := redistest.StartWith(t, redistest.Options{Persist: true})
	b := startIMNodes(t, srv.URL(), imURL, 1)[0]
	a := hubtest.Start(t, append(imArgs(imURL), "-node", "hub-a", "-redis", srv.URL(), "-spool-dir", t.TempDir()))
	a.WaitReady(200)

	jared := dialSig(t, b, "jared")
	jared.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
	jared.ReadOp("subscribed") // kept a member, in Redis
	jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	jared.ReadOp("unsubscribed") // node B has the group no more

	srv.Stop()
	a.WaitLog(20*time.Second, "redis is down", func(l map[string]any) bool { return l["msg"] == "redis is down" })
	require.Equal(t, 200, postCommand(t, a, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")), "spooled")
	srv.Restart()
	require.Eventually(t, func() bool {
		_, m := a.Get("/metrics")
		return strings.Contains(m, "imhub_spool_published_total 1\n")
	}, 30*time.Second, 20*time.Millisecond, "the spool publishes the exit once Redis is back")
	again := dialSig(t, b, "jared")
	again.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
	f := again.Read()
	assert.Equal(t, "forbidden", f.Code, f.Raw)
}

// The callbacks of a group no session of any node subscribes to are
// taken, and the membership learns from them all the same: on the other
// node, the user an exit names is refused though it was kept a member,
// the one a join names let in, and a disbanded group's member refused,
// each without asking the IM, which was never told.
func TestIMCallbacksOfAGroupNoOneFollows(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	stub.CreateGroup(imApp, "G2", "Public", "leckie", "tommy")
	nodes := startIMNodes(t, redistest.Start(t).URL(), imURL, 2)
	a, b := nodes[0], nodes[1]

	// jared and tommy are asked about and kept members on A; then no
	// session has the groups.
	for user, group := range map[string]string{"jared": "group:G1", "tommy": "group:G2"} {
		c := dialSig(t, a, user)
		c.Send(map[string]any{"op": "subscribe", "channel": group})
		require.Equal(t, "subscribed", c.ReadOp("subscribed").Op)
		c.Send(map[string]any{"op": "unsubscribe", "channel": group})
		c.ReadOp("unsubscribed")
	}
	asked := func() (n int) {
		for _, g := range []string{"G1", "G2"} {
			c, _ := stub.Calls(imApp, g)
			n += c
		}
		return n
	}
	before := asked()

	require.Equal(t, 200, postCommand(t, b, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
	require.Equal(t, 200, postCommand(t, b, imApp, "Group.CallbackAfterNewMemberJoin",
		fmt.Sprintf(`{"GroupId":"G1","Type":"Public","JoinType":"Invited","Operator_Account":"leckie","NewMemberList":[{"Member_Account":"peter"}],"EventTime":%d}`, time.Now().UnixMilli())))
	require.Equal(t, 200, postCommand(t, b, imApp, "Group.CallbackAfterGroupDestroyed", `{"GroupId":"G2","Type":"Public","Owner_Account":"leckie","Name":"n"}`))

	for user, want := range map[string][2]string{
		"jared": {"group:G1", "forbidden"},
		"peter": {"group:G1", ""},
		"tommy": {"group:G2", "forbidden"},
	} {
		c := dialSig(t, a, user)
		c.Send(map[string]any{"op": "subscribe", "channel": want[0]})
		f := c.Read()
		if want[1] == "" {
			assert.Equal(t, "subscribed", f.Op, "%s: %s", user, f.Raw)
		} else {
			assert.Equal(t, want[1], f.Code, "%s: %s", user, f.Raw)
		}
	}
	assert.Equal(t, before, asked(), "the IM was asked nothing more: the callbacks said it all")
}

// The same exit taken by two nodes at once (the IM's retry of a callback
// whose answer it did not get, through a load balancer): the group has
// the exit once, each of the member's sessions, one on either node, is
// sent it and removed once, the other members go on, and the member is
// refused on both nodes.
func TestIMSameExitOnTwoNodesAtOnce(t *testing.T) {
	stub, imURL := startIM(t)
	nodes := startIMNodes(t, redistest.Start(t).URL(), imURL, 2)
	for round := range 5 {
		group := fmt.Sprintf("X%d", round)
		channel := "group:" + group
		stub.CreateGroup(imApp, group, "Public", "leckie", "jared", "tommy")
		sessions := map[string]*wstest.Conn{}
		for i, p := range nodes {
			for _, user := range []string{"jared", "tommy"} {
				c := dialSig(t, p, user)
				c.Send(map[string]any{"op": "subscribe", "channel": channel})
				require.Equal(t, "subscribed", c.ReadOp("subscribed").Op)
				sessions[fmt.Sprintf("%s on %c", user, 'A'+i)] = c
			}
		}
		exit := exitBody(group, "jared")
		answers := make(chan int, len(nodes))
		for _, p := range nodes {
			go func() { answers <- postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exit) }()
		}
		for range nodes {
			require.Equal(t, 200, <-answers)
		}
		require.Equal(t, 200, postCommand(t, nodes[0], imApp, "Group.CallbackAfterSendMsg", groupMsg(group, 1)))
		for _, user := range []string{"jared", "tommy"} {
			require.Equal(t, 200, postCommand(t, nodes[0], imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", user, round+1)))
		}
		for name, c := range sessions {
			user := name[:strings.Index(name, " ")]
			got := ofChannel(t, c, channel, "user:"+user, fmt.Sprintf("c2c.message.sent#%d", round+1))
			want := []string{"event group.member.left", "event group.message.sent#1"}
			if user == "jared" {
				want = []string{"event group.member.left", "unsubscribed removed"}
			}
			assert.Equal(t, want, got, "round %d, %s", round, name)
		}
		for _, p := range nodes {
			again := dialSig(t, p, "jared")
			again.Send(map[string]any{"op": "subscribe", "channel": channel})
			f := again.Read()
			assert.Equal(t, "forbidden", f.Code, "round %d, %s: %s", round, p.Addr, f.Raw)
		}
	}
	for _, p := range nodes {
		_, metrics := p.Get("/metrics")
		assert.Contains(t, metrics, `imhub_membership_removals_total{reason="removed"} 5`, p.Addr)
	}
}
