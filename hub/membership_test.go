package hub_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/wstest"
)

// imEnv is a hub whose app sigApp follows the IM's membership, asked of a
// stand-in IM.
type imEnv struct {
	*env
	im      *imstub.Server
	checker *membership.Checker
	mreg    *prometheus.Registry // the membership's metrics
}

// mcounter is the membership's counter name with result.
func (e *imEnv) mcounter(name, result string) prometheus.Collector {
	mfs, err := e.mreg.Gather()
	require.NoError(e.t, err)
	v := 0.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == name && lp.GetName() == "result" && lp.GetValue() == result {
					v = m.GetCounter().GetValue()
				}
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
}

func newIMEnv(t *testing.T, cfg hub.Config, mc membership.Config) *imEnv {
	t.Helper()
	stub := imstub.New(map[string][]byte{sigApp: imKey}, "administrator")
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	// A deadline longer than any delay a test gives the stand-in.
	client, err := imapi.New(imapi.Config{BaseURL: srv.URL, Keys: map[string][]byte{sigApp: imKey}, Timeout: 20 * time.Second})
	require.NoError(t, err)
	mc.IM = client
	reg := prometheus.NewRegistry()
	mc.Registerer = reg
	c, err := membership.NewChecker(mc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	cfg.UserSigs = userSigs()
	cfg.Membership = membership.NewView(c, sigApp)
	return &imEnv{env: newEnv(t, cfg, sigApp), im: stub, checker: c, mreg: reg}
}

// subscribeErr subscribes and expects an error frame with code.
func subscribeErr(t *testing.T, c *wstest.Conn, channel, code string) wstest.Frame {
	t.Helper()
	c.Send(map[string]any{"op": "subscribe", "channel": channel, "id": 1})
	f := c.ReadOp("error")
	require.Equal(t, code, f.Code, f.Raw)
	require.Equal(t, channel, f.Channel)
	return f
}

// A UserSig session may subscribe to a group while the IM says it is a
// member: not otherwise, and not while the IM cannot be asked and nothing
// kept answers, when it may try again. Presence follows the same rule.
func TestMembershipOnSubscribe(t *testing.T) {
	e := newIMEnv(t, hub.Config{}, membership.Config{RetryAfter: time.Millisecond})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared")
	e.im.CreateGroup(sigApp, "G2", "Public", "leckie")
	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))

	subscribe(t, c, "group:G1", 1)
	e.publish(sigApp, "group:G1")
	assert.Equal(t, "group:G1", c.ReadOp("event").Channel)
	f := subscribeErr(t, c, "group:G2", hub.CodeForbidden)
	assert.Contains(t, f.Message, "not a member")
	subscribeErr(t, c, "group:NOSUCH", hub.CodeForbidden)
	c.Send(map[string]any{"op": "presence", "channel": "group:G2", "id": 2})
	assert.Equal(t, hub.CodeForbidden, c.ReadOp("error").Code, "no presence of a group the user is not in")
	c.Send(map[string]any{"op": "presence", "channel": "group:G1", "id": 3})
	assert.Equal(t, "presence", c.ReadOp("presence").Op)

	e.im.CreateGroup(sigApp, "G3", "Public", "leckie", "jared")
	e.im.SetFault(imstub.FaultError)
	f = subscribeErr(t, c, "group:G3", hub.CodeUnavailable)
	assert.Contains(t, f.Message, "subscribe again")
	e.im.SetFault(imstub.FaultNone)
	require.Eventually(t, func() bool {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:G3", "id": 4})
		return c.Read().Op == "subscribed"
	}, 10*time.Second, 20*time.Millisecond, "once the IM answers again, the subscribe goes through")
}

// A JWT of an app the IM's membership governs: its groups narrow what the
// IM allows and no longer grant alone; "*" is every group the IM says the
// holder is in; an admin token is never asked about.
func TestMembershipWithTokens(t *testing.T) {
	e := newIMEnv(t, hub.Config{}, membership.Config{})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared")
	e.im.CreateGroup(sigApp, "G2", "Public", "leckie", "jared")
	e.im.CreateGroup(sigApp, "G3", "Public", "leckie")

	listed := e.connect(e.token(groups("G1", "G3")))
	subscribe(t, listed, "group:G1", 1)
	f := subscribeErr(t, listed, "group:G2", hub.CodeForbidden)
	assert.Contains(t, f.Message, "the token does not grant", "the IM allows it, the token does not")
	f = subscribeErr(t, listed, "group:G3", hub.CodeForbidden)
	assert.Contains(t, f.Message, "not a member", "the token lists it, the IM does not allow it")

	all := e.connect(e.token(groups("*")))
	subscribe(t, all, "group:G2", 1)
	subscribeErr(t, all, "group:G3", hub.CodeForbidden)

	calls, _ := e.im.Calls(sigApp, "G3")
	dash := e.connect(e.token(admin, user("dashboard")))
	subscribe(t, dash, "group:G3", 1)
	subscribe(t, dash, "group:NOSUCH", 2)
	after, _ := e.im.Calls(sigApp, "G3")
	assert.Equal(t, calls, after, "an admin's subscribe asks the IM nothing")
	nosuch, _ := e.im.Calls(sigApp, "NOSUCH")
	assert.Zero(t, nosuch)
}

// A subscribe that finds the user no longer a member of a group it has
// ends that subscription: it is unsubscribed, removed, and the subscribe
// answered forbidden.
func TestMembershipResubscribeOfAGroupLeft(t *testing.T) {
	e := newIMEnv(t, hub.Config{}, membership.Config{})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared")
	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))
	subscribe(t, c, "group:G1", 1)
	require.NoError(t, e.checker.Left(context.Background(), sigApp, "G1", "jared"))
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "id": 2})
	u := c.ReadOp("unsubscribed")
	assert.Equal(t, "group:G1", u.Channel)
	assert.Equal(t, hub.ReasonRemoved, u.Reason)
	assert.Equal(t, hub.CodeForbidden, c.ReadOp("error").Code)
	e.publish(sigApp, "group:G1")
	e.publish(sigApp, "user:jared")
	assert.Equal(t, "user:jared", c.ReadOp("event").Channel, "nothing more of group:G1")
}

// While the IM is slow to answer one session's subscribe, that session's
// pings are answered, the hub's own pings are taken for a live client,
// its other channels keep flowing, and the frames it sends after the
// subscribe are carried out in order after it; other sessions do not
// wait at all.
func TestMembershipSlowIMStarvesNothing(t *testing.T) {
	e := newIMEnv(t, hub.Config{PingInterval: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}, membership.Config{AskTimeout: 20 * time.Second})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared", "tommy")
	e.im.CreateGroup(sigApp, "G2", "Public", "leckie", "tommy")
	// Both clients read all along, as a real one does: its pongs are
	// written as it reads.
	tommy := e.connectSig("tommy", sign(t, imKey, sigApp, "tommy", time.Hour))
	tommyFrames := reading(tommy)
	tommy.Send(map[string]any{"op": "subscribe", "channel": "group:G2", "id": 1}) // asked and kept before the IM slows
	require.Equal(t, "subscribed", (<-tommyFrames).Op)

	c := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))
	frames := reading(c)
	e.im.SetDelay(4 * time.Second)
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "id": 1})
	c.Send(map[string]any{"op": "unsubscribe", "channel": "group:G1", "id": 2})
	c.Send(map[string]any{"op": "ping", "id": 3})

	// Pings both ways, a second's worth, while the IM has not answered.
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		require.NoError(t, c.C.Ping(ctx), "the hub answers a ping while a subscribe waits for the IM")
		cancel()
		time.Sleep(150 * time.Millisecond)
	}
	e.publish(sigApp, "user:jared")
	assert.Equal(t, "user:jared", (<-frames).Channel, "the session's other channels flow meanwhile")
	tommy.Send(map[string]any{"op": "subscribe", "channel": "group:G2", "id": 9})
	assert.Equal(t, "subscribed", (<-tommyFrames).Op, "another session is not held up")
	select {
	case f := <-frames:
		t.Fatalf("the IM answered before the checks above were done (raise the delay): %s", f.Raw)
	default:
	}

	for _, want := range []string{"subscribed", "unsubscribed", "pong"} {
		f, ok := <-frames
		require.True(t, ok, "the connection lives: want %s", want)
		assert.Equal(t, want, f.Op, f.Raw)
	}
	e.publish(sigApp, "group:G1")
	e.publish(sigApp, "user:jared")
	f := <-frames
	assert.Equal(t, "user:jared", f.Channel, "the unsubscribe came after the subscribe: %s", f.Raw)
}

// reading reads c's frames into a channel until the connection ends.
func reading(c *wstest.Conn) <-chan wstest.Frame {
	frames := make(chan wstest.Frame, 64)
	go func() {
		defer close(frames)
		for {
			f, err := c.TryRead(30 * time.Second)
			if err != nil {
				return
			}
			frames <- f
		}
	}()
	return frames
}

// publishEvent publishes data, an event as the callbacks make it, to
// channels of sigApp, straight to the broker: no membership is told.
func (e *env) publishEvent(data string, channels ...string) {
	e.t.Helper()
	e.seq++
	_, err := e.broker.Publish(context.Background(), broker.Message{App: sigApp, ID: fmt.Sprint("m", e.seq), Channels: channels, Data: []byte(data)})
	require.NoError(e.t, err)
}

// An exit reaching a node as an event is applied there even when the
// store shared by the nodes was never told of it: the user's next
// subscribe on that node is refused, though the shared answer still says
// "a member". A join reaching it later lets the user in again.
func TestMembershipEventAppliedOnArrival(t *testing.T) {
	e := newIMEnv(t, hub.Config{}, membership.Config{})
	e.im.CreateGroup(sigApp, "G1", "Public", "leckie", "jared", "tommy")
	tommy := e.connectSig("tommy", sign(t, imKey, sigApp, "tommy", time.Hour))
	subscribe(t, tommy, "group:G1", 1) // the node receives group:G1
	first := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))
	subscribe(t, first, "group:G1", 1) // jared is asked about and kept a member

	e.publishEvent(`{"id":"x1","type":"group.member.left","app":"1400000000","group_id":"G1","members":["jared"],"exit_type":"Kicked"}`, "group:G1")
	tommy.ReadOp("event")
	v, _ := e.checker.Check(context.Background(), sigApp, "G1", "jared")
	require.Equal(t, membership.Member, v, "the shared answer was not told")
	again := e.connectSig("jared", sign(t, imKey, sigApp, "jared", time.Hour))
	subscribeErr(t, again, "group:G1", hub.CodeForbidden)

	e.publishEvent(`{"id":"x2","type":"group.member.joined","app":"1400000000","group_id":"G1","members":["jared"],"join_type":"Invited"}`, "group:G1")
	tommy.ReadOp("event")
	subscribe(t, again, "group:G1", 2)
}
