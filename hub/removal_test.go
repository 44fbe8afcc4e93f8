package hub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/wstest"
)

// The events of the tests below, as the callbacks make them.
func leftEvent(id, group string, users ...string) string {
	m, _ := json.Marshal(users)
	return fmt.Sprintf(`{"id":%q,"type":"group.member.left","app":"1400000000","group_id":%q,"members":%s,"exit_type":"Kicked"}`, id, group, m)
}

func destroyedEvent(id, group string) string {
	return fmt.Sprintf(`{"id":%q,"type":"group.destroyed","app":"1400000000","group_id":%q}`, id, group)
}

func messageEvent(id, group, text string) string {
	t, _ := json.Marshal(text)
	return fmt.Sprintf(`{"id":%q,"type":"group.message.sent","app":"1400000000","group_id":%q,"body":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%s}}]}`, id, group, t)
}

// eventID is the id of an event frame's event.
func eventID(t *testing.T, f wstest.Frame) string {
	t.Helper()
	require.Equal(t, "event", f.Op, f.Raw)
	var ev struct{ ID string }
	require.NoError(t, json.Unmarshal(f.Event, &ev))
	return ev.ID
}

// readUntil reads c's frames up to and including the first with op on
// channel, and returns them.
func readUntil(t *testing.T, c *wstest.Conn, op, channel string) []wstest.Frame {
	t.Helper()
	var got []wstest.Frame
	for {
		f := c.Read()
		got = append(got, f)
		if f.Op == op && f.Channel == channel {
			return got
		}
	}
}

// groupEnv is an IM-governed hub with group G1 of leckie, jared and tommy.
func groupEnv(t *testing.T) *imEnv {
	e := newIMEnv(t, hub.Config{}, membership.Config{})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared", "tommy")
	return e
}

func (e *imEnv) member(user string) *wstest.Conn {
	e.t.Helper()
	return e.connectSig(user, sign(e.t, imKey, sigApp, user, time.Hour))
}

// A member named by group.member.left is sent that event, then
// unsubscribed with reason removed, and nothing published after it; the
// other members go on. Its session lives on; a later subscribe is
// forbidden. A group.destroyed does the same to every subscriber, admins
// included, with reason destroyed.
func TestRemovalLive(t *testing.T) {
	e := groupEnv(t)
	jared, tommy := e.member("jared"), e.member("tommy")
	dash := e.connect(e.token(admin, user("dashboard"))) // an admin is not held to membership
	for _, c := range []*wstest.Conn{jared, tommy, dash} {
		subscribe(t, c, "group:G1", 1)
	}
	e.publishEvent(leftEvent("left", "G1", "jared", "dashboard"), "group:G1")
	e.publishEvent(messageEvent("after", "G1", "hello"), "group:G1")

	assert.Equal(t, "left", eventID(t, jared.Read()))
	u := jared.ReadOp("unsubscribed")
	assert.Equal(t, "group:G1", u.Channel)
	assert.Equal(t, hub.ReasonRemoved, u.Reason)
	assert.Empty(t, u.ID, "no id: the client did not ask")
	for _, c := range []*wstest.Conn{tommy, dash} {
		assert.Equal(t, "left", eventID(t, c.Read()))
		assert.Equal(t, "after", eventID(t, c.Read()))
	}
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	assert.Equal(t, "user:jared", jared.ReadOp("event").Channel, "nothing of group:G1 came before: the session lives on")
	subscribeErr(t, jared, "group:G1", hub.CodeForbidden)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_membership_removals_total", "reason", "removed")))

	e.publishEvent(destroyedEvent("gone", "G1"), "group:G1")
	e.publishEvent(messageEvent("later", "G1", "hello"), "group:G1")
	e.publishEvent(messageEvent("own2", "", "x"), "user:dashboard", "user:tommy")
	for _, c := range []*wstest.Conn{tommy, dash} {
		assert.Equal(t, "gone", eventID(t, c.Read()))
		u := c.ReadOp("unsubscribed")
		assert.Equal(t, hub.ReasonDestroyed, u.Reason)
		assert.Equal(t, "own2", eventID(t, c.Read()), "and nothing else of group:G1")
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_membership_removals_total", "reason", "destroyed")))
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_subscriptions")) == 3 },
		10*time.Second, 5*time.Millisecond, "the ended subscriptions are left: each of the three sessions keeps its own channel")
}

// A JWT session of the app is held to the same rule as a UserSig one: the
// user a group.member.left names is removed from the group, whether its
// token lists the group or grants every group, and is refused it after;
// a token of another user goes on.
func TestRemovalOfTokenHolders(t *testing.T) {
	e := groupEnv(t)
	listed, all := e.connect(e.token(groups("G1"))), e.connect(e.token(groups("*")))
	tommy := e.connect(e.token(groups("*"), user("tommy")))
	for _, c := range []*wstest.Conn{listed, all, tommy} {
		subscribe(t, c, "group:G1", 1)
	}
	e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
	e.publishEvent(messageEvent("after", "G1", "hello"), "group:G1")
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	for name, c := range map[string]*wstest.Conn{"groups G1": listed, "groups *": all} {
		assert.Equal(t, "left", eventID(t, c.Read()), name)
		u := c.ReadOp("unsubscribed")
		assert.Equal(t, "group:G1", u.Channel, name)
		assert.Equal(t, hub.ReasonRemoved, u.Reason, name)
		assert.Equal(t, "own", eventID(t, c.Read()), "%s: nothing more of group:G1", name)
		subscribeErr(t, c, "group:G1", hub.CodeForbidden)
	}
	assert.Equal(t, "left", eventID(t, tommy.Read()))
	assert.Equal(t, "after", eventID(t, tommy.Read()))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.metric("imhub_membership_removals_total", "reason", "removed")))
}

// Only an event's own type and members remove anyone: a message whose
// text reads like an exit, an exit of another group sent to this one's
// channel, or a custom event holding one, remove nobody.
func TestRemovalNotFooledByText(t *testing.T) {
	e := groupEnv(t)
	jared := e.member("jared")
	subscribe(t, jared, "group:G1", 1)
	e.publishEvent(messageEvent("text", "G1", leftEvent("x", "G1", "jared")), "group:G1")
	e.publishEvent(`{"id":"custom","type":"custom","data":`+leftEvent("y", "G1", "jared")+`}`, "group:G1")
	e.publishEvent(leftEvent("other", "G2", "jared"), "group:G1")
	e.publishEvent(messageEvent("still", "G1", "here"), "group:G1")
	for _, want := range []string{"text", "custom", "other", "still"} {
		assert.Equal(t, want, eventID(t, jared.Read()))
	}
	subscribe(t, jared, "group:G1", 2)
}

// A replay with since that meets the user's exit stops right after it and
// ends the subscription the same way: what history holds after the exit
// is not sent.
func TestRemovalInReplay(t *testing.T) {
	e := groupEnv(t)
	jared := e.member("jared")
	at := subscribe(t, jared, "group:G1", 1).Offset // jared is kept a member
	jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	jared.ReadOp("unsubscribed")
	// While no session of the node has the group: the node does not see
	// them, and the membership is not told.
	e.publishEvent(messageEvent("before", "G1", "a"), "group:G1")
	e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
	e.publishEvent(messageEvent("after", "G1", "b"), "group:G1")

	jared.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "since": at, "id": 2})
	frames := readUntil(t, jared, "unsubscribed", "group:G1")
	require.Len(t, frames, 4, "%v", frames)
	assert.Equal(t, "subscribed", frames[0].Op)
	assert.Equal(t, "before", eventID(t, frames[1]))
	assert.Equal(t, "left", eventID(t, frames[2]))
	assert.Equal(t, hub.ReasonRemoved, frames[3].Reason)
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	assert.Equal(t, "user:jared", jared.ReadOp("event").Channel)
}

// A session that is joining (its subscribe reads history) when the exit
// comes holds the live events back; they are sent up to the exit, then
// the subscription ends; none after it reaches the session, with since
// or without.
func TestRemovalWhileJoining(t *testing.T) {
	for _, withSince := range []bool{true, false} {
		t.Run(fmt.Sprint("since ", withSince), func(t *testing.T) {
			e := groupEnv(t)
			jared := e.member("jared")
			at := subscribe(t, jared, "group:G1", 1).Offset
			jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
			jared.ReadOp("unsubscribed")
			subs, _ := e.broker.counts(sigApp + "/group:G1")
			kept := testutil.ToFloat64(e.mcounter("imhub_membership_checks_total", "kept"))

			e.broker.historyDelay.Store(int64(time.Second))
			f := map[string]any{"op": "subscribe", "channel": "group:G1", "id": 2}
			if withSince {
				f["since"] = at
			}
			jared.Send(f)
			// The node subscribes again for the session, which is found
			// a member and then reads history, slowly: the events come
			// meanwhile.
			require.Eventually(t, func() bool {
				n, _ := e.broker.counts(sigApp + "/group:G1")
				return n > subs && testutil.ToFloat64(e.mcounter("imhub_membership_checks_total", "kept")) > kept
			}, 10*time.Second, time.Millisecond)
			e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
			e.publishEvent(messageEvent("after", "G1", "b"), "group:G1")

			frames := readUntil(t, jared, "unsubscribed", "group:G1")
			var ids []string
			for _, f := range frames {
				if f.Op == "event" {
					ids = append(ids, eventID(t, f))
				}
			}
			if withSince {
				assert.Equal(t, []string{"left"}, ids, "%v", frames)
			} else {
				assert.Empty(t, ids, "subscribed at the top, past the exit: %v", frames)
			}
			assert.Equal(t, hub.ReasonRemoved, frames[len(frames)-1].Reason)
			e.broker.historyDelay.Store(0)
			e.publishEvent(messageEvent("own", "", "x"), "user:jared")
			assert.Equal(t, "user:jared", jared.ReadOp("event").Channel, "nothing after the exit")
		})
	}
}

// A session whose stream has a gap holds its live events back while
// history fills it: the repair's replay meets the exit and ends the
// subscription there; what was held after it is never sent.
func TestRemovalWhileRepairing(t *testing.T) {
	e := groupEnv(t)
	jared, tommy := e.member("jared"), e.member("tommy")
	subscribe(t, jared, "group:G1", 1)
	subscribe(t, tommy, "group:G1", 1)
	e.gate.closed.Store(true) // the node misses these
	e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
	e.publishEvent(messageEvent("missed", "G1", "a"), "group:G1")
	e.gate.closed.Store(false)
	e.publishEvent(messageEvent("gap", "G1", "b"), "group:G1") // shows the gap

	frames := readUntil(t, jared, "unsubscribed", "group:G1")
	require.Len(t, frames, 2, "%v", frames)
	assert.Equal(t, "left", eventID(t, frames[0]))
	assert.Equal(t, hub.ReasonRemoved, frames[1].Reason)
	for _, want := range []string{"left", "missed", "gap"} {
		assert.Equal(t, want, eventID(t, tommy.Read()))
	}
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	assert.Equal(t, "user:jared", jared.ReadOp("event").Channel, "nothing after the exit")
}

// An exit that comes after a joining session's history was read is held
// back with what follows it, and flushed up to it: the session gets it,
// then the subscription ends, and what followed is dropped.
func TestRemovalHeldBack(t *testing.T) {
	e := groupEnv(t)
	jared := e.member("jared")
	subscribe(t, jared, "group:G1", 1)
	jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	jared.ReadOp("unsubscribed")
	reads := e.broker.historyRead.Load()
	e.broker.answerDelay.Store(int64(time.Second))
	jared.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "id": 2})
	require.Eventually(t, func() bool { return e.broker.historyRead.Load() > reads }, 10*time.Second, time.Millisecond,
		"history read, its answer held back")
	e.publishEvent(leftEvent("left", "G1", "jared"), "group:G1")
	e.publishEvent(messageEvent("after", "G1", "b"), "group:G1")
	frames := readUntil(t, jared, "unsubscribed", "group:G1")
	require.Len(t, frames, 3, "%v", frames)
	assert.Equal(t, "subscribed", frames[0].Op)
	assert.Equal(t, "left", eventID(t, frames[1]))
	assert.Equal(t, hub.ReasonRemoved, frames[2].Reason)
	e.broker.answerDelay.Store(0)
	e.publishEvent(messageEvent("own", "", "x"), "user:jared")
	assert.Equal(t, "user:jared", jared.ReadOp("event").Channel, "nothing after the exit")
}

// A member removed and let in again subscribes anew at once, its old
// subscription perhaps not yet left: the counts of subscriptions come out
// right either way.
func TestRemovalThenBackAgain(t *testing.T) {
	e := groupEnv(t)
	jared, tommy := e.member("jared"), e.member("tommy")
	subscribe(t, tommy, "group:G1", 1)
	for i := range 20 {
		subscribe(t, jared, "group:G1", 1)
		e.publishEvent(leftEvent(fmt.Sprint("left", i), "G1", "jared"), "group:G1")
		e.publishEvent(`{"id":"back`+fmt.Sprint(i)+`","type":"group.member.joined","app":"1400000000","group_id":"G1","members":["jared"]}`, "group:G1")
		readUntil(t, jared, "unsubscribed", "group:G1")
		tommy.Read()
		tommy.Read()
	}
	subscribe(t, jared, "group:G1", 2)
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_subscriptions")) == 4 },
		10*time.Second, 5*time.Millisecond, "two own channels, two of the group")
	jared.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1"})
	jared.ReadOp("unsubscribed")
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metric("imhub_ws_subscriptions")) == 3 },
		10*time.Second, 5*time.Millisecond)
}
