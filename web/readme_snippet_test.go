package web_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
	"github.com/imhub/imhub/internal/hubtest"
)

// The README's browser snippet, pasted into a page of a local web server,
// works against the hub of `make run` (-dev): it shows events, and goes on
// showing them, each once, after its hub is killed and started again.
func TestReadmeSnippet(t *testing.T) {
	addr := freeAddr(t)
	args := []string{"-dev", "-addr", addr, "-jwt-secret", secret}
	p := hubtest.Start(t, args)
	ctx := browsertest.Start(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(browsertest.SnippetPage(t, "../README.md", addr))))
	log := func() string {
		s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('log').textContent`))
		return s
	}
	// The page subscribes to the app channel once connected: post until
	// an event shows (each post another message: a repeat is dropped).
	seq := 0
	require.Eventually(t, func() bool {
		seq++
		post(t, addr, "Group.CallbackAfterSendMsg", groupSend(seq, "first"))
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(log(), "group.message.sent jared")
	}, 20*time.Second, 10*time.Millisecond, "the snippet shows an event")
	before := strings.Count(log(), "\n")

	p.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
	p2 := hubtest.Start(t, args)
	p2.WaitReady(200)
	// The in-process broker began again: the page's offset is of a
	// stream that is gone, and the hub says so.
	require.Eventually(t, func() bool {
		seq++
		post(t, addr, "Group.CallbackAfterSendMsg", groupSend(seq, "second"))
		time.Sleep(300 * time.Millisecond)
		return strings.Contains(log(), "(some events were missed while away)") && strings.Count(log(), "group.message.sent") > before
	}, 30*time.Second, 10*time.Millisecond, "the snippet shows events again")
	lines := strings.Split(strings.TrimSpace(log()), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		off, _, _ := strings.Cut(l, " ")
		require.False(t, seen[off], "offset %s shown twice:\n%s", off, log())
		seen[off] = true
	}
	browsertest.Screenshot(t, ctx, "readme-snippet")
	t.Logf("the page shows:\n%s", log())
}
