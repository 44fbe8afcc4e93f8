package web_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

const secret = "dashboard-test-secret-dashboard-test"

// browser starts headless Chromium, the Debian package, for the test.
func browser(t *testing.T) context.Context { return browsertest.Start(t) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func post(t *testing.T, addr, cmd, body string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/im/callback?SdkAppid=1400000000&OptPlatform=iOS&CallbackCommand="+cmd, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "%s %s", cmd, body)
}

func groupSend(seq int, text string) string { return groupSendTo("@TGS#2J4SZEAEL", seq, text) }

func groupSendTo(group string, seq int, text string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":%q,"Type":"Public","From_Account":"jared","Operator_Account":"jared","Random":1,"MsgSeq":%d,"MsgTime":1700000000,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`, group, seq, text)
}

// dispatch fires an event on the filter form, as typing or choosing does.
func dispatch(event string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`document.getElementById('filters').dispatchEvent(new Event('`+event+`'))`)(ctx, t)
		return err
	})
}

// setFilter sets a filter field and fires the event the page listens to.
func setFilter(name, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const f = document.getElementById('filters'); f.elements[%q].value = %q; return f.dispatchEvent(new Event('change')); })()`, name, value))(ctx, t)
		return err
	})
}

func feedCount(t *testing.T, ctx context.Context, selector, text string) int {
	t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].filter(e => e.textContent.includes(%q)).length`, selector, text)
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	require.NoError(t, err)
	return n
}

func waitFeed(t *testing.T, ctx context.Context, selector, text string, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return feedCount(t, ctx, selector, text) == want }, 20*time.Second, 50*time.Millisecond,
		"want %d of %s containing %q, have %d", want, selector, text, feedCount(t, ctx, selector, text))
}

func waitStatus(t *testing.T, ctx context.Context, state string) string {
	t.Helper()
	var got []string
	require.Eventually(t, func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById('status').dataset.state, document.getElementById('status').textContent]`))
		return len(got) == 2 && got[0] == state
	}, 20*time.Second, 50*time.Millisecond, "status %v, want %q", got, state)
	return got[1]
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond) // the once-a-second chart and group list catch up
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(t.ArtifactDir(), name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot %s", path)
}

// The dashboard against real hubs, as a person sees it: it connects by
// itself in -dev mode, shows messages as they are sent, strikes a recall
// through, shows a one-to-one withdrawal with its unread count, filters,
// and after its hub is killed and restarted shows what was posted
// meanwhile, each event once.
func TestDashboard(t *testing.T) {
	srv := redistest.Start(t)
	addrA := freeAddr(t)
	argsA := []string{"-dev", "-addr", addrA, "-redis", srv.URL(), "-jwt-secret", secret, "-node", "hub-a"}
	a := hubtest.Start(t, argsA)
	b := hubtest.Start(t, []string{"-redis", srv.URL(), "-apps", "1400000000", "-jwt-secret", secret, "-node", "hub-b"})
	a.WaitReady(200)
	b.WaitReady(200)

	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+addrA+"/")))
	status := waitStatus(t, ctx, "live")
	require.Contains(t, status, "hub-a")
	screenshot(t, ctx, "1-connected")

	post(t, addrA, "Group.CallbackAfterSendMsg", groupSend(1, "hello from imhub"))
	waitFeed(t, ctx, "#feed li.group-message-sent", "hello from imhub", 1)
	post(t, addrA, "C2C.CallbackAfterSendMsg", `{"From_Account":"jared","To_Account":"Jonh","MsgKey":"48374_2837546_1557481126","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"psst"}}]}`)
	post(t, addrA, "C2C.CallbackAfterMsgWithDraw", `{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"jared","To_Account":"Jonh","MsgKey":"48374_2837546_1557481126","UnreadMsgNum":7}`)
	waitFeed(t, ctx, "#feed li.c2c-message-recalled", "unread 7", 1)
	waitFeed(t, ctx, "#feed li.c2c-message-sent.recalled", "psst", 1)
	post(t, addrA, "Group.CallbackAfterRecallMsg", `{"CallbackCommand":"Group.CallbackAfterRecallMsg","Operator_Account":"admin","Type":"Public","GroupId":"@TGS#2J4SZEAEL","MsgSeqList":[{"MsgSeq":1}]}`)
	waitFeed(t, ctx, "#feed li.group-message-sent.recalled", "recalled by admin", 1)
	decoration, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`getComputedStyle(document.querySelector('#feed li.group-message-sent.recalled .body')).textDecorationLine`))
	require.NoError(t, err)
	require.Equal(t, "line-through", decoration, "the recalled message is struck through")
	screenshot(t, ctx, "2-recalled")

	// Filters hide and show.
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(`#filters select[name=type]`, "c2c.message.recalled"), dispatch("change")))
	waitFeed(t, ctx, "#feed li", "hello from imhub", 0)
	waitFeed(t, ctx, "#feed li", "unread 7", 1)
	screenshot(t, ctx, "3-filtered")
	require.NoError(t, chromedp.Do(ctx, setFilter("type", ""), chromedp.SendKeys(`#filters input[name=text]`, "hello")))
	waitFeed(t, ctx, "#feed li", "hello from imhub", 1)
	waitFeed(t, ctx, "#feed li", "unread 7", 0)
	require.NoError(t, chromedp.Do(ctx, setFilter("text", "")))
	waitFeed(t, ctx, "#feed li", "unread 7", 1)

	// The page's hub dies; events arrive through the other hub; the hub
	// comes back on the same address and the page catches up.
	a.Signal(syscall.SIGKILL)
	a.Wait(10 * time.Second)
	waitStatus(t, ctx, "reconnecting")
	for i := 1; i <= 3; i++ {
		post(t, b.Addr, "Group.CallbackAfterSendMsg", groupSend(100+i, fmt.Sprintf("while away %d", i)))
	}
	a2 := hubtest.Start(t, append(argsA[:len(argsA)-1], "hub-a2"))
	a2.WaitReady(200)
	require.Contains(t, waitStatus(t, ctx, "live"), "hub-a2")
	for i := 1; i <= 3; i++ {
		waitFeed(t, ctx, "#feed li", fmt.Sprintf("while away %d", i), 1)
	}
	post(t, a2.Addr, "Group.CallbackAfterSendMsg", groupSend(200, "live again"))
	waitFeed(t, ctx, "#feed li", "live again", 1)
	for i := 1; i <= 3; i++ {
		require.Equal(t, 1, feedCount(t, ctx, "#feed li", fmt.Sprintf("while away %d", i)), "each once")
	}
	screenshot(t, ctx, "4-reconnected")
}

// At phone width the page still works: one column, nothing cut off.
func TestDashboardNarrow(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(1, "small screens too"))
	waitFeed(t, ctx, "#feed li", "small screens too", 1)
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	require.NoError(t, err)
	require.False(t, overflow, "no sideways scrolling at phone width")
	screenshot(t, ctx, "narrow")
}

// Thousands of events: the page keeps every one it counts, but shows at
// most 500 and keeps at most 5000, so it never grows without bound.
func TestDashboardCapsTheFeed(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	const n = 1500
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(i+1, fmt.Sprintf("bulk %d", i+1)))
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.imhub.state.counts['group.message.sent']`))
		return got == n
	}, 30*time.Second, 100*time.Millisecond, "every event counted")
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#feed li').length`))
	require.NoError(t, err)
	require.Equal(t, 500, shown)
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.imhub.state.items.length`))
	require.NoError(t, err)
	require.Equal(t, n, kept)
	screenshot(t, ctx, "bulk")
}

// takeSocket wraps the page's WebSocket constructor and reconnects the
// page with its demo-token button, so that the test holds the socket the
// page reads and can hand it frames as though the hub had sent them
// (window.__inject). The connection to the hub stays real.
func takeSocket(t *testing.T, ctx context.Context) {
	t.Helper()
	const wrap = `(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Real {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
  let n = 0;
  window.__inject = (events) => {
    const ws = window.__sockets[window.__sockets.length - 1];
    for (const event of events) {
      n++;
      ws.onmessage({ data: JSON.stringify({ op: 'event', channel: 'user:dashboard', offset: n + ':t', event }) });
    }
    return n;
  };
  document.getElementById('demo-token').click();
  return true;
})()`
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](wrap))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__sockets.filter(s => s.readyState === WebSocket.OPEN).length`))
		return n == 1
	}, 20*time.Second, 50*time.Millisecond, "the page reconnects through the wrapped constructor")
	waitStatus(t, ctx, "live")
}

func inject(t *testing.T, ctx context.Context, events ...string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__inject([`+strings.Join(events, ",")+`])`))
	require.NoError(t, err)
}

// publishes reports whether the hub published the callbacks of cmd it was
// given, from its callback counter.
func publishes(t *testing.T, addr, cmd string) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return strings.Contains(string(b), fmt.Sprintf(`imhub_callbacks_total{command=%q,result="published"}`, cmd))
}

func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	require.NoError(t, err)
	return s
}

// The IM's other events, as a person sees them: status changes as a line
// and a dot beside the user, joins and leaves and group changes as lines,
// and read receipts as ticks on the messages they are about, or as a line
// when those are not on the page; the filters find each of them.
//
// The messages come from the hub; the new events are handed to the page's
// socket, so the rendering is tested whatever the hub publishes. The
// subtests post the same events' callbacks to the hub, and each says
// SKIP, and why, while the hub does not publish its command.
func TestDashboardIMEvents(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	takeSocket(t, ctx)

	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(1, "hello group"))
	post(t, p.Addr, "C2C.CallbackAfterSendMsg", `{"From_Account":"jared","To_Account":"Jonh","MsgKey":"k1","MsgTime":1700000000,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"psst"}}]}`)
	post(t, p.Addr, "C2C.CallbackAfterSendMsg", `{"From_Account":"jared","To_Account":"Jonh","MsgKey":"k2","MsgTime":1700000100,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"said later"}}]}`)
	waitFeed(t, ctx, "#feed li.c2c-message-sent", "said later", 1)
	waitFeed(t, ctx, "#feed li.group-message-sent", "hello group", 1)

	const g = `"group_id":"@TGS#2J4SZEAEL","group_type":"Public"`
	inject(t, ctx,
		`{"id":"s1","type":"user.status","time":1700000001000,"to":"carol","status":"login","reason":"Register","platform":"Web","kicked_devices":["Android"]}`,
		`{"id":"s2","type":"user.status","time":1700000002000,"to":"alice","status":"login","platform":"iOS"}`,
		`{"id":"s3","type":"user.status","time":1700000003000,"to":"carol","status":"disconnect","reason":"LinkClose"}`,
		`{"id":"j1","type":"group.member.joined","time":1700000004000,`+g+`,"members":["alice","bob"],"join_type":"Invited","operator":"admin"}`,
		`{"id":"j2","type":"group.member.joined","time":1700000004500,`+g+`,"members":[{"Member_Account":"dave"}],"join_type":"Apply","operator":"dave"}`,
		`{"id":"l1","type":"group.member.left","time":1700000005000,`+g+`,"members":["carol"],"exit_type":"Kicked","operator":"admin"}`,
		`{"id":"r1","type":"group.message.read","time":1700000006000,`+g+`,"receipts":[{"seq":1,"read":3,"unread":2}]}`,
		`{"id":"r2","type":"group.message.read","time":1700000006500,`+g+`,"receipts":[{"seq":99,"read":1,"unread":4}]}`,
		`{"id":"c1","type":"c2c.message.read","time":1700000007000,"from":"Jonh","to":"jared","last_read_time":1700000050,"unread":0}`,
		`{"id":"c2","type":"c2c.message.read","time":1700000007500,"from":"zoe","to":"jared","last_read_time":1700000050,"unread":3}`,
		`{"id":"i1","type":"group.info.changed","time":1700000008000,`+g+`,"operator":"admin","changes":{"notification":"be kind"}}`,
		`{"id":"d1","type":"group.destroyed","time":1700000009000,"group_id":"@TGS#GONE","operator":"admin"}`,
	)

	// Status: a line per change, and the latest beside each user.
	waitFeed(t, ctx, "#feed li.user-status.online", "carol is online on Web · Register · signed out Android", 1)
	waitFeed(t, ctx, "#feed li.user-status.offline", "carol disconnected · LinkClose", 1)
	waitFeed(t, ctx, "#users li.offline", "carol", 1)
	waitFeed(t, ctx, "#users li.online", "alice", 1)
	require.Equal(t, "alice,carol", evalString(t, ctx, `[...document.querySelectorAll('#users button')].map(b => b.textContent).sort().join()`), "one entry per user")
	require.Equal(t, "rgb(46, 157, 46)", evalString(t, ctx, `getComputedStyle(document.querySelector('#users li.online .dot')).backgroundColor`), "a green dot for online")
	require.Equal(t, "rgb(154, 154, 154)", evalString(t, ctx, `getComputedStyle(document.querySelector('#users li.offline .dot')).backgroundColor`), "a grey dot for offline")

	// Members and group changes: lines.
	waitFeed(t, ctx, "#feed li.group-member-joined", "alice, bob joined @TGS#2J4SZEAEL (invited by admin)", 1)
	waitFeed(t, ctx, "#feed li.group-member-joined", "dave joined @TGS#2J4SZEAEL (asked to)", 1)
	waitFeed(t, ctx, "#feed li.group-member-left", "carol was kicked from @TGS#2J4SZEAEL by admin", 1)
	waitFeed(t, ctx, "#feed li.group-info-changed", "admin changed the info of @TGS#2J4SZEAEL: notification “be kind”", 1)
	waitFeed(t, ctx, "#feed li.group-destroyed", "@TGS#GONE was destroyed by admin", 1)

	// Receipts: ticks on the messages on the page, a line for the rest.
	waitFeed(t, ctx, "#feed li.group-message-sent.read .ticks", "✓✓ 3 read · 2 unread", 1)
	waitFeed(t, ctx, "#feed li.group-message-read", "#1 3 read", 0)
	waitFeed(t, ctx, "#feed li.group-message-read", "#99 1 read · 4 unread", 1)
	waitFeed(t, ctx, "#feed li.c2c-message-sent.read", "psst", 1)
	waitFeed(t, ctx, "#feed li.c2c-message-sent.read .ticks", "read by Jonh", 1)
	waitFeed(t, ctx, "#feed li.c2c-message-sent:not(.read)", "said later", 1)
	waitFeed(t, ctx, "#feed li.c2c-message-read", "Jonh read", 0)
	waitFeed(t, ctx, "#feed li.c2c-message-read", "zoe read the messages from jared", 1)
	screenshot(t, ctx, "5-im-events")

	// Filters: by type (receipts shown as ticks come back as lines), by
	// user (a member named in a list, a user of a status), by group, by text.
	all := `#feed li`
	require.NoError(t, chromedp.Do(ctx, setFilter("type", "group.member.left")))
	waitFeed(t, ctx, all, "", 1)
	waitFeed(t, ctx, all, "carol was kicked", 1)
	require.NoError(t, chromedp.Do(ctx, setFilter("type", "group.message.read")))
	waitFeed(t, ctx, all, "", 2)
	waitFeed(t, ctx, all, "#1 3 read · 2 unread", 1)
	require.NoError(t, chromedp.Do(ctx, setFilter("type", "user.status")))
	waitFeed(t, ctx, all, "", 3)
	require.NoError(t, chromedp.Do(ctx, setFilter("type", ""), setFilter("user", "bob")))
	waitFeed(t, ctx, all, "", 1)
	waitFeed(t, ctx, all, "alice, bob joined", 1)
	// A user's name in the status list filters to that user.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('#users button[data-user="carol"]').click(), true)`))
	require.NoError(t, err)
	waitFeed(t, ctx, all, "", 3)
	require.Equal(t, 3, feedCount(t, ctx, all, "carol"))
	screenshot(t, ctx, "6-im-events-one-user")
	require.NoError(t, chromedp.Do(ctx, setFilter("user", ""), setFilter("group", "@TGS#GONE")))
	waitFeed(t, ctx, all, "", 1)
	require.NoError(t, chromedp.Do(ctx, setFilter("group", ""), setFilter("text", "kicked")))
	waitFeed(t, ctx, all, "", 1)
	waitFeed(t, ctx, all, "carol was kicked", 1)
	require.NoError(t, chromedp.Do(ctx, setFilter("text", "")))
	require.Equal(t, 13, feedCount(t, ctx, all, ""), "3 messages, 12 events, 2 of them shown as ticks")

	// At phone width the lines wrap and nothing is cut off.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)))
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	require.NoError(t, err)
	require.False(t, overflow, "no sideways scrolling at phone width")
	screenshot(t, ctx, "7-im-events-narrow")
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))

	// The same events as IM callbacks through the hub.
	const hg = "@TGS#HUBSIDE"
	for _, c := range []struct {
		cmd, before, body, selector, want string
	}{
		{cmd: "State.StateChange",
			body:     `{"CallbackCommand":"State.StateChange","EventTime":1700000200000,"Info":{"Action":"Login","To_Account":"frank","Reason":"Register"},"KickedDevice":[{"Platform":"Android"}]}`,
			selector: "#users li.online", want: "frank"},
		{cmd: "Group.CallbackAfterNewMemberJoin",
			body:     `{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"` + hg + `","Type":"Public","JoinType":"Invited","Operator_Account":"admin","NewMemberList":[{"Member_Account":"frank"},{"Member_Account":"gina"}],"EventTime":1700000201000}`,
			selector: "#feed li.group-member-joined", want: "frank, gina joined " + hg + " (invited by admin)"},
		{cmd: "Group.CallbackAfterMemberExit",
			body:     `{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"` + hg + `","Type":"Public","ExitType":"Kicked","Operator_Account":"admin","ExitMemberList":[{"Member_Account":"gina"}],"EventTime":1700000202000}`,
			selector: "#feed li.group-member-left", want: "gina was kicked from " + hg + " by admin"},
		{cmd: "C2C.CallbackAfterMsgReport",
			before:   `{"From_Account":"frank","To_Account":"hana","MsgKey":"hub_k1","MsgTime":1700000300,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hub side psst"}}]}`,
			body:     `{"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"hana","Peer_Account":"frank","LastReadTime":1700000300,"UnreadMsgNum":0}`,
			selector: "#feed li.c2c-message-sent.read", want: "read by hana"},
		{cmd: "Group.CallbackAfterReadReceipt",
			before:   groupSendTo(hg, 5, "hub side hello"),
			body:     `{"CallbackCommand":"Group.CallbackAfterReadReceipt","GroupId":"` + hg + `","Type":"Public","GroupMsgReceiptList":[{"MsgSeq":5,"ReadNum":4,"UnreadNum":1}],"EventTime":1700000400000}`,
			selector: "#feed li.group-message-sent.read", want: "4 read · 1 unread"},
		{cmd: "Group.CallbackAfterGroupInfoChanged",
			body:     `{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"` + hg + `","Type":"Public","Operator_Account":"admin","Notification":"new rules","EventTime":1700000500000}`,
			selector: "#feed li.group-info-changed", want: "admin changed the info of " + hg},
		{cmd: "Group.CallbackAfterGroupDestroyed",
			body:     `{"CallbackCommand":"Group.CallbackAfterGroupDestroyed","GroupId":"` + hg + `","Type":"Public","Owner_Account":"admin","EventTime":1700000600000}`,
			selector: "#feed li.group-destroyed", want: hg + " was destroyed"},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			if c.before != "" {
				cmd := "C2C.CallbackAfterSendMsg"
				if strings.Contains(c.before, "GroupId") {
					cmd = "Group.CallbackAfterSendMsg"
				}
				post(t, p.Addr, cmd, c.before)
			}
			post(t, p.Addr, c.cmd, c.body)
			if !publishes(t, p.Addr, c.cmd) {
				t.Fatalf("the hub answered %s but did not publish it (docs/protocol.md#callbacks says it should)", c.cmd)
			}
			waitFeed(t, ctx, c.selector, c.want, 1)
		})
	}
}

// forwardPanel is what the Forwarding panel shows: whether it is shown,
// whether it warns, and its backlog and dead letters as printed.
type forwardPanel struct {
	Shown   bool   `json:"shown"`
	Warn    bool   `json:"warn"`
	Backlog string `json:"backlog"`
	Dead    string `json:"dead"`
	Text    string `json:"text"`
}

func readPanel(t *testing.T, ctx context.Context) forwardPanel {
	t.Helper()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[forwardPanel](`(() => {
		const el = document.getElementById('forwarding');
		const dd = (k) => { const e = el.querySelector('[data-key="' + k + '"] dd'); return e ? e.textContent : ''; };
		return { shown: !el.hidden && el.offsetHeight > 0, warn: el.classList.contains('warn'), backlog: dd('backlog'), dead: dd('dead'), text: el.textContent };
	})()`))
	require.NoError(t, err)
	return p
}

func waitPanel(t *testing.T, ctx context.Context, what string, ok func(forwardPanel) bool) forwardPanel {
	t.Helper()
	var p forwardPanel
	require.Eventually(t, func() bool { p = readPanel(t, ctx); return ok(p) }, 30*time.Second, 100*time.Millisecond,
		"want the Forwarding panel %s, have %+v", what, p)
	return p
}

// With -forward for the page's app, the Forwarding panel shows the
// backlog: growing, with a warning, while the app's backend fails, and
// empty again once it answers.
func TestDashboardForwarding(t *testing.T) {
	var healthy atomic.Bool
	var delivered atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	}))
	t.Cleanup(backend.Close)
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret, "-forward", "1400000000=" + backend.URL})

	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	for i := 1; i <= 3; i++ {
		post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(i, fmt.Sprintf("forward me %d", i)))
	}
	waitFeed(t, ctx, "#feed li", "forward me", 3)
	got := waitPanel(t, ctx, "to show a backlog", func(p forwardPanel) bool { return p.Shown && p.Backlog != "" && p.Backlog != "0" })
	require.Contains(t, got.Text, "1400000000")
	require.Equal(t, "0", got.Dead)
	waitPanel(t, ctx, "to warn of the stuck backlog", func(p forwardPanel) bool { return p.Shown && p.Warn && p.Backlog != "0" })
	require.Zero(t, delivered.Load(), "nothing reached the failing backend")
	screenshot(t, ctx, "forwarding-backlog")

	healthy.Store(true)
	waitPanel(t, ctx, "empty and calm again", func(p forwardPanel) bool { return p.Shown && p.Backlog == "0" && !p.Warn })
	require.GreaterOrEqual(t, delivered.Load(), int64(3), "each callback reached the backend")
	screenshot(t, ctx, "forwarding-recovered")

	// A page no one sees does not read /metrics; shown again, it reads at once.
	polls := func() int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.imhub.fwd.polls`))
		require.NoError(t, err)
		return n
	}
	visibility := func(state string) {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
			Object.defineProperty(document, 'visibilityState', { value: '`+state+`', configurable: true });
			return document.dispatchEvent(new Event('visibilitychange'));
		})()`))
		require.NoError(t, err)
	}
	visibility("hidden")
	time.Sleep(500 * time.Millisecond) // a read in flight ends
	hidden := polls()
	time.Sleep(4 * time.Second) // more than one read's interval
	require.Equal(t, hidden, polls(), "no reads while hidden")
	visibility("visible")
	require.Eventually(t, func() bool { return polls() > hidden }, 2*time.Second, 50*time.Millisecond, "a read when shown again")
}

// Behind a proxy that hides /metrics, the page works and the panel stays
// hidden: first a proxy that answers /metrics with a page of its own, then
// one that refuses it, after which the page stops asking.
func TestDashboardForwardingMetricsHidden(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(backend.Close)
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret, "-forward", "1400000000=" + backend.URL})
	target, err := url.Parse("http://" + p.Addr)
	require.NoError(t, err)
	var refuse atomic.Bool
	var asked atomic.Int64
	hub := httputil.NewSingleHostReverseProxy(target)
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			asked.Add(1)
			if refuse.Load() {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<!doctype html><title>Welcome</title><p>imhub_forward_backlog{app=\"1400000000\"} is not here</p>")
			return
		}
		hub.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	addr := freeAddr(t)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	go func() { _ = proxy.Serve(ln) }()
	t.Cleanup(func() { _ = proxy.Close() })

	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")))
	waitStatus(t, ctx, "live")
	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSend(1, "behind a proxy"))
	waitFeed(t, ctx, "#feed li", "behind a proxy", 1)
	polls := func() int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.imhub.fwd.polls`))
		require.NoError(t, err)
		return n
	}
	// Reads after the page knew its app: the panel had all it needed.
	from := polls()
	require.Eventually(t, func() bool { return polls() >= from+2 }, 20*time.Second, 100*time.Millisecond, "the page reads /metrics")
	require.False(t, readPanel(t, ctx).Shown, "no panel from a page that is not metrics")

	refuse.Store(true)
	require.Eventually(t, func() bool {
		off, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.imhub.fwd.off`))
		return off
	}, 20*time.Second, 100*time.Millisecond, "the page gives up on a refused /metrics")
	n := asked.Load()
	time.Sleep(4 * time.Second) // more than one read's interval
	require.Equal(t, n, asked.Load(), "no more reads once refused")
	require.False(t, readPanel(t, ctx).Shown)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('status').dataset.state`))
	require.NoError(t, err)
	require.Equal(t, "live", status, "the rest of the page goes on")
}
