package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
)

// harness runs in the example page, beside the page's own client: a second
// client of imhub.js, on 50 group channels, that records each event's
// MsgSeq per channel and shows the counts on the page.
const harness = `(() => {
  window.harness = { got: {}, states: [], subscribed: 0, gaps: 0, node: '' };
  import('/sdk/imhub.js').then(({ Hub }) => {
    const h = window.harness;
    const getToken = async () => (await (await fetch('/dev/token?sub=harness&admin=false&groups=*')).json()).token;
    const hub = new Hub('ws://' + location.host + '/ws', { getToken, minDelay: 200, maxDelay: 2000, pingInterval: 2000, timeout: 3000 });
    const panel = document.createElement('section');
    panel.id = 'harness';
    panel.style.gridColumn = '1 / -1';
    panel.innerHTML = '<h2>50 subscriptions</h2><p id="harness-state"></p><ol id="harness-counts" style="columns:5;font:12px monospace"></ol>';
    document.querySelector('main').append(panel);
    for (let i = 0; i < 50; i++) {
      const ch = 'group:S' + i;
      const list = h.got[ch] = [];
      const sub = hub.subscribe(ch);
      sub.on('event', (ev) => list.push(ev.messages[0].seq));
      sub.on('subscribed', () => h.subscribed++);
      sub.on('gap', () => h.gaps++);
    }
    hub.on('state', (s) => h.states.push(s + (s === 'connected' ? ' ' + hub.node : '')));
    hub.on('connected', ({ node }) => (h.node = node));
    setInterval(() => {
      document.getElementById('harness-state').textContent = hub.state + ' · ' + (hub.node || '') + ' · ' + h.states.length + ' state changes · gaps ' + h.gaps;
      document.getElementById('harness-counts').innerHTML = Object.entries(h.got).map(([c, l]) => '<li>' + c.slice(6) + ': ' + l.length + '</li>').join('');
    }, 250);
    hub.connect();
  });
  return true;
})()`

// emulateNetwork is DevTools' Network.emulateNetworkConditions, which takes
// the page off the network and back (and fires offline and online).
var emulateNetwork = cdp.Command[networkConditions, cdp.Empty]{Method: "Network.emulateNetworkConditions"}

type networkConditions struct {
	Offline            bool    `json:"offline"`
	Latency            float64 `json:"latency"`
	DownloadThroughput float64 `json:"downloadThroughput"`
	UploadThroughput   float64 `json:"uploadThroughput"`
}

func setOffline(offline bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, emulateNetwork, networkConditions{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
}

// A page on the browser client with 50 subscriptions, through HAProxy in
// front of three hubs, while signed callbacks flow at 50 a second: the
// page's hub and another are killed with SIGKILL and started again, then
// the page goes offline and online. At the end every acknowledged event
// is on the page exactly once, in order. In another tab, the README's
// snippet shows the app channel through the same outages: every event
// once, in order (consecutive offsets), no gap.
func TestBrowserClientThroughOutages(t *testing.T) {
	const token = "sdk-browser-callback-token"
	const channels = 50
	// History for the whole test on the app channel, which takes every
	// callback.
	s := up(t, "CALLBACK_TOKEN="+token, "HUB_PING_INTERVAL=2s", "HUB_HISTORY_SIZE=5000")
	dir := strings.TrimPrefix(s.env[0], "CLUSTER_DIR=")

	ctx := browsertest.Start(t)
	snippet, closeSnippet := chromedp.NewContext(ctx)
	defer closeSnippet()
	require.NoError(t, chromedp.Do(snippet, chromedp.Navigate(browsertest.SnippetPage(t, "../../README.md", s.lb))))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+s.lb+"/examples/chat-notify.html?user=sdkpage&group=S0")))
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](harness))
	require.NoError(t, err)
	eval := func(js string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		require.NoError(t, err)
		return n
	}
	require.Eventually(t, func() bool { return eval(`window.harness.subscribed`) >= channels }, 20*time.Second, 50*time.Millisecond,
		"the page subscribes to %d channels", channels)

	// Signed callbacks through the load balancer, 50 a second, each to
	// the next channel; those answered OK are acknowledged.
	began := time.Now()
	posts := startPosting(s.lb, token, groupNames("S", channels)...)
	defer posts.Stop()
	time.Sleep(1500 * time.Millisecond)
	browsertest.Screenshot(t, ctx, "sdk-1-flowing")

	// The page's hub and one other die at once, then come back.
	node, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.harness.node`))
	require.NoError(t, err)
	victims := []string{strings.TrimPrefix(node, "hub-")}
	for _, n := range []string{"1", "2", "3"} {
		if len(victims) < 2 && n != victims[0] {
			victims = append(victims, n)
		}
	}
	for _, n := range victims {
		b, err := os.ReadFile(dir + "/hub" + n + ".pid")
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		p, err := os.FindProcess(pid)
		require.NoError(t, err)
		require.NoError(t, p.Kill())
	}
	t.Logf("killed hubs %v (the page was on %s)", victims, node)
	require.Eventually(t, func() bool {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`window.harness.states.join()`))
		return strings.Contains(st, "disconnected")
	}, 10*time.Second, 50*time.Millisecond, "the page notices its hub died")
	time.Sleep(time.Second)
	s.run("up") // starts the hubs that are not running
	browsertest.Screenshot(t, ctx, "sdk-2-after-kills")

	// Off the network and back. Whether Chromium also cuts an open
	// WebSocket varies; the client then finds it silent, or reconnects
	// at once on the online event.
	require.Eventually(t, func() bool {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`window.harness.states.at(-1)`))
		return strings.HasPrefix(st, "connected")
	}, 15*time.Second, 50*time.Millisecond, "the page is connected again after the kills")
	before := eval(`window.harness.states.length`)
	require.NoError(t, chromedp.Do(ctx, setOffline(true)))
	require.Eventually(t, func() bool { return eval(`navigator.onLine ? 1 : 0`) == 0 }, 5*time.Second, 50*time.Millisecond, "the page is offline")
	time.Sleep(5 * time.Second) // beyond the client's ping interval and timeout
	browsertest.Screenshot(t, ctx, "sdk-3-offline")
	require.NoError(t, chromedp.Do(ctx, setOffline(false)))
	require.Eventually(t, func() bool {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`window.harness.states.at(-1)`))
		return strings.HasPrefix(st, "connected")
	}, 15*time.Second, 50*time.Millisecond, "the page is connected again")
	offline, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`window.harness.states.slice(%d).join(' → ')`, before)))
	require.NoError(t, err)
	t.Logf("offline and back, the client went: %q", offline)
	time.Sleep(1500 * time.Millisecond)
	posts.Stop()
	took := time.Since(began)

	read := func() map[string][]int64 {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.harness.got)`))
		require.NoError(t, err)
		var got map[string][]int64
		require.NoError(t, json.Unmarshal([]byte(raw), &got))
		return got
	}
	require.Eventually(t, func() bool { return posts.missing(read()) == 0 }, 30*time.Second, 100*time.Millisecond,
		"every acknowledged event reaches the page")
	total := posts.checkOnceInOrder(t, read())
	states, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.harness.states.join(' → ')`))
	require.NoError(t, err)
	gaps := eval(`window.harness.gaps`)
	assert.Zero(t, gaps, "history covered every outage")
	t.Logf("%d callbacks acknowledged in %v; the page's client went %s", total, took.Round(time.Second), states)
	browsertest.Screenshot(t, ctx, "sdk-4-done")

	// The snippet's page: newest first, "offset type from" a line.
	var lines []string
	require.Eventually(t, func() bool {
		text, err := chromedp.Run(snippet, chromedp.Evaluate[string](`document.getElementById('log').textContent`))
		require.NoError(t, err)
		lines = strings.Split(strings.TrimSpace(text), "\n")
		return strings.Count(text, "group.message.sent") >= total
	}, 30*time.Second, 100*time.Millisecond, "the snippet shows every acknowledged event")
	var prev int64
	for i := len(lines) - 1; i >= 0; i-- {
		off, _, ok := strings.Cut(lines[i], ":")
		require.True(t, ok, "a line without an offset: %q", lines[i])
		n, err := strconv.ParseInt(off, 10, 64)
		require.NoError(t, err, "line %q", lines[i])
		if prev > 0 {
			require.Equal(t, prev+1, n, "the snippet shows each event of the app channel once, in order")
		}
		prev = n
	}
	browsertest.Screenshot(t, snippet, "sdk-5-readme-snippet")
}
