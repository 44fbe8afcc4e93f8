package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// The dashboard's first load shows the app's recent history, oldest at the
// bottom, from what the hub keeps (here the last 20 events of 30), then live
// events above it; a recall names the message it takes back by its text,
// or by its sequence when the page does not have it; and the side panel
// stays in view when the page scrolls down the feed.
func TestDashboardFirstLoadShowsHistory(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret, "-history-size", "20"})
	for i := 1; i <= 30; i++ {
		post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(i, fmt.Sprintf("before the page %d.", i)))
	}
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	waitFeed(t, ctx, "#feed li.group-message-sent", "before the page", 20)
	require.Equal(t, 0, feedCount(t, ctx, "#feed li", "before the page 10."), "the trimmed ones are not kept")
	order := evalString(t, ctx, `[...document.querySelectorAll('#feed li .el.text')].map(e => e.textContent).join('|')`)
	require.True(t, strings.HasPrefix(order, "before the page 30.|before the page 29."), "newest first: %s", order)
	require.True(t, strings.HasSuffix(order, "before the page 11."), "the oldest kept last: %s", order)
	require.True(t, evalBool(t, ctx, `document.getElementById('empty').hidden`), "no empty state with history")

	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(31, "live after them"))
	waitFeed(t, ctx, "#feed li:first-child", "live after them", 1)

	post(t, p.Addr, "Group.CallbackAfterRecallMsg", `{"CallbackCommand":"Group.CallbackAfterRecallMsg","Operator_Account":"admin","Type":"Public","GroupId":"@TGS#2J4SZEAEL","MsgSeqList":[{"MsgSeq":25},{"MsgSeq":3}]}`)
	waitFeed(t, ctx, "#feed li.group-message-recalled", "admin recalled “before the page 25.”, message #3", 1)
	waitFeed(t, ctx, "#feed li.group-message-sent.recalled", "before the page 25.", 1)
	screenshot(t, ctx, "first-load-history")

	// Scrolled down the feed, the side panel is still on screen.
	require.True(t, evalBool(t, ctx, `getComputedStyle(document.querySelector('.side')).position === 'sticky'`))
	require.True(t, evalBool(t, ctx, `(() => { scrollTo(0, document.body.scrollHeight); return scrollY > 200; })()`), "the feed is longer than the window")
	require.Eventually(t, func() bool {
		return evalBool(t, ctx, `(() => { const r = document.querySelector('.side').getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight / 2; })()`)
	}, 5*time.Second, 50*time.Millisecond, "the side panel stays in view")
	screenshot(t, ctx, "first-load-scrolled")
}

// A hub that has had no traffic: the feed says how to get some, with the
// sample callback for this hub; the first event replaces that.
func TestDashboardEmptyState(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	waitFeed(t, ctx, "#empty:not([hidden])", "make demo", 1)
	empty := evalString(t, ctx, `document.getElementById('empty').textContent`)
	require.Contains(t, empty, "No events yet")
	require.Contains(t, empty, "curl -sS -X POST 'http://"+p.Addr+"/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterSendMsg")
	screenshot(t, ctx, "empty-state")

	// The sample, as the page shows it, is a callback the hub takes.
	sample := evalString(t, ctx, `document.querySelector('#empty pre').textContent.match(/-d '(.*)'$/s)[1]`)
	post(t, p.Addr, "Group.CallbackAfterSendMsg", sample)
	waitFeed(t, ctx, "#feed li.group-message-sent", "red packet", 1)
	require.True(t, evalBool(t, ctx, `document.getElementById('empty').hidden`), "gone with the first event")
}

func evalBool(t *testing.T, ctx context.Context, js string) bool {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
	require.NoError(t, err)
	return b
}
