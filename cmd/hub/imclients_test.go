package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/client"
	"github.com/imhub/imhub/internal/browsertest"
	"github.com/imhub/imhub/internal/hubtest"
)

// The Go client, logged in with a UserSig, follows a group it is a member
// of on a real hub, and is told it was removed when the IM's exit
// callback names it: OnRemoved with the reason, no event of the group
// after the exit, and no subscribe again on its own.
func TestGoClientWithUserSigRemovedLive(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	p := startIMNodes(t, "", imURL, 1)[0]

	events := make(chan string, 64)
	removed := make(chan string, 4)
	c := client.New(client.Config{
		URLs: []string{wsURL(p)},
		UserSig: &client.UserSig{SDKAppID: imApp, UserID: "jared", Sig: func(context.Context) (string, error) {
			return userSig(t, "jared"), nil
		}},
		Channels:  []string{"group:G1"},
		OnRemoved: func(channel, reason string) { removed <- channel + " " + reason },
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx, func(e client.Event) { events <- e.Channel + " " + eventKey(e.Data) }) }()
	t.Cleanup(func() { cancel(); <-ran })

	// Messages posted until the client has joined the group: it gets the
	// group's from then on.
	seq := 0
	require.Eventually(t, func() bool {
		seq++
		require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", seq)))
		select {
		case e := <-events:
			return strings.HasPrefix(e, "group:G1 group.message.sent#")
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 20*time.Second, time.Millisecond, "a member's client gets the group's messages")
	for len(events) > 0 {
		<-events // the messages posted while the first was on its way
	}

	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", 1000)))
	require.Equal(t, 200, postCommand(t, p, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", 3)))
	var got []string
	for e := range events {
		got = append(got, e)
		if e == "user:jared c2c.message.sent#3" {
			break
		}
	}
	assert.Equal(t, []string{"group:G1 group.member.left", "user:jared group.member.left", "user:jared c2c.message.sent#3"}, got,
		"the exit is the group's last event the client gets; its user channel has the exit too")
	select {
	case r := <-removed:
		assert.Equal(t, "group:G1 removed", r)
	case <-time.After(10 * time.Second):
		t.Fatal("OnRemoved was not called")
	}
	_, metrics := p.Get("/metrics")
	assert.Contains(t, metrics, `imhub_membership_removals_total{reason="removed"} 1`)
	assert.NotContains(t, c.Offsets(), "group:G1", "a removed channel is not resubscribed")
}

// The browser client from the hub's own /sdk/imhub.js, in Chromium, logs
// in with a UserSig, follows a group it is a member of, and emits removed
// when the IM's exit callback names its user: the group's messages after
// the exit never reach the page.
func TestBrowserClientWithUserSigRemovedLive(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	sig := userSig(t, "jared")
	var page string
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
	t.Cleanup(pages.Close)
	p := hubtest.Start(t, append(imArgs(imURL), "-allowed-origins", pages.URL))
	p.WaitReady(200)
	page = fmt.Sprintf(`<!doctype html><meta charset=utf-8><title>usersig</title><pre id=out></pre>
<script type="module">
import { Hub } from "http://%s/sdk/imhub.js";
const out = { events: [], removed: [] };
const show = () => { document.getElementById('out').textContent = JSON.stringify(out); };
const hub = new Hub("ws://%s/ws", { userSig: async () => ({ sdkAppID: %s, userID: "jared", userSig: %q }) });
hub.on('error', (e) => { out.error = String(e); show(); });
const g = hub.subscribe("group:G1");
g.on('subscribed', () => { out.subscribed = true; show(); });
g.on('event', (ev) => { out.events.push(ev.type + '#' + ((ev.messages && ev.messages[0] && ev.messages[0].seq) || '')); show(); });
g.on('removed', (info) => { out.removed.push(info.reason); show(); });
hub.subscribe("user:jared").on('event', (ev) => { out.last = ev.type; show(); });
hub.connect();
</script>`, p.Addr, p.Addr, imApp, sig)

	ctx := browsertest.Start(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(pages.URL+"/page.html")))
	var got struct {
		Subscribed bool
		Events     []string
		Removed    []string
		Last       string
		Error      string
	}
	read := func() {
		s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('out').textContent`))
		if s != "" {
			require.NoError(t, json.Unmarshal([]byte(s), &got))
		}
	}
	require.Eventually(t, func() bool { read(); return got.Subscribed || got.Error != "" }, 20*time.Second, 20*time.Millisecond)
	require.Empty(t, got.Error)
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", 1)))
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterSendMsg", groupMsg("G1", 2)))
	require.Equal(t, 200, postCommand(t, p, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", 3)))
	require.Eventually(t, func() bool { read(); return got.Last == "c2c.message.sent" }, 20*time.Second, 20*time.Millisecond,
		"the page gets its own channel's message posted last")
	browsertest.Screenshot(t, ctx, "usersig-removed")
	assert.Equal(t, []string{"group.message.sent#1", "group.member.left#"}, got.Events, "no message of the group after the exit")
	assert.Equal(t, []string{"removed"}, got.Removed)
}
