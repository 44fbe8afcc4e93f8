package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// What make run and make demo show end to end: against a hub with -dev
// -dev-im, the page user signs in with a UserSig of /dev/usersig, sees
// the groups the demo made it a member of, follows them all, and when the
// demo's admin kicks it from one, its session is sent the exit and then
// unsubscribed from that group, removed; it keeps the others.
func TestDemoKicksThePageUserLive(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-dev-im"})
	p.WaitReady(200)
	demo := func(count int) string {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, run(ctx, demoConfig{Base: "http://" + p.Addr, App: "1400000000", Rate: 400, Count: count, PageUser: "jared"}, &out))
		return out.String()
	}
	demo(len(groups)) // the demo's groups, made first

	code, body := p.Get("/dev/usersig?userid=jared")
	require.Equal(t, 200, code, body)
	var login struct {
		WS     string
		Groups []string
	}
	require.NoError(t, json.Unmarshal([]byte(body), &login))
	require.NotEmpty(t, login.Groups, "jared is in the demo's groups")
	c := wstest.Dial(t, login.WS, "")
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	for _, g := range login.Groups {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:" + g})
		require.Equal(t, "subscribed", c.ReadOp("subscribed").Op, g)
	}

	// The demo again: its groups made anew, then its admin's kick.
	said := demo(len(groups) + kickEvery + 5)
	_, kicked, ok := strings.Cut(said, "admin removed jared from ")
	require.True(t, ok, "the demo kicked jared:\n%s", said)
	kicked, _, _ = strings.Cut(kicked, ":")

	// A message to jared after the demo is over comes after all of it.
	resp, err := http.Post(p.URL("/im/callback?SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg"), "application/json",
		strings.NewReader(`{"From_Account":"leah","To_Account":"jared","MsgKey":"end","MsgSeq":1,"MsgBody":[]}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	removed := map[string]string{} // channel -> the type of the event before it was removed
	last := map[string]string{}
	for {
		f := c.Read()
		var ev struct{ Type, MsgKey string }
		if f.Op == "event" {
			require.NoError(t, json.Unmarshal(f.Event, &ev))
		}
		if f.Op == "event" && f.Channel == "user:jared" && ev.Type == "c2c.message.sent" && strings.Contains(string(f.Event), `"end"`) {
			break
		}
		switch {
		case f.Op == "event":
			require.NotContains(t, removed, f.Channel, "an event of %s after jared was removed from it: %s", f.Channel, f.Raw)
			last[f.Channel] = ev.Type
		case f.Op == "unsubscribed":
			assert.Equal(t, "removed", f.Reason, f.Raw)
			removed[f.Channel] = last[f.Channel]
		}
	}
	require.Contains(t, removed, "group:"+kicked, "removed from the group the demo kicked jared from")
	for ch, before := range removed {
		assert.Equal(t, "group.member.left", before, "%s: the exit came right before the removal", ch)
	}
	t.Logf("kicked from %s; removed from %v", kicked, removed)
	assert.Less(t, len(removed), len(login.Groups), "jared keeps the groups it was not removed from")
}
