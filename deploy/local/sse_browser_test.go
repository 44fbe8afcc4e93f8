package local

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
)

// ssePage runs in a page of the hub's own origin: a plain EventSource on
// two group channels, no library. EventSource reconnects by itself with
// Last-Event-ID after a stream that broke; a stream it cannot reopen (the
// load balancer answered 503 while it still sent to a dead hub) it gives
// up on, and the page opens a new one from the last id, by since.
const ssePage = `(() => {
  window.sse = { got: {'group:E0': [], 'group:E1': []}, opens: 0, errors: 0, recovered: [], lastId: '' };
  const s = window.sse;
  fetch('/dev/token?sub=ssepage&groups=E0,E1').then((r) => r.json()).then(({ token }) => {
    const open = () => {
      let url = '/sse?channel=group:E0&channel=group:E1&token=' + encodeURIComponent(token);
      if (s.lastId) url += '&since=' + encodeURIComponent(s.lastId);
      const es = new EventSource(url);
      es.onopen = () => s.opens++;
      es.addEventListener('subscribed', (m) => {
        const f = JSON.parse(m.data);
        if (f.recovered !== undefined) s.recovered.push(f.recovered);
        if (m.lastEventId) s.lastId = m.lastEventId;
      });
      es.addEventListener('event', (m) => {
        const f = JSON.parse(m.data);
        s.got[f.channel].push(f.event.messages[0].seq);
        s.lastId = m.lastEventId;
      });
      es.onerror = () => {
        s.errors++;
        if (es.readyState === EventSource.CLOSED) setTimeout(open, 500);
      };
    };
    open();
  });
  return true;
})()`

// A page reads two channels through HAProxy in front of three hubs with a
// plain EventSource while callbacks flow; the hub its stream is on is
// killed with SIGKILL and started again. Every acknowledged event is on
// the page once, in order, each resume recovered from history.
func TestBrowserEventSourceThroughAKill(t *testing.T) {
	s := up(t, "HUB_HISTORY_SIZE=5000")
	dir := strings.TrimPrefix(s.env[0], "CLUSTER_DIR=")
	ctx := browsertest.Start(t)
	// A page of the hub's origin that opens nothing of its own (the
	// dashboard would open a WebSocket).
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+s.lb+"/healthz")))
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](ssePage))
	require.NoError(t, err)
	eval := func(js string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		require.NoError(t, err)
		return n
	}
	require.Eventually(t, func() bool { return eval(`window.sse.opens`) >= 1 }, 20*time.Second, 50*time.Millisecond, "the stream opens")

	// The hub the stream is on: the one session of the cluster.
	streamHub := func() int {
		for i, addr := range s.hub {
			if connections(t, addr) == 1 {
				return i
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return streamHub() >= 0 }, 10*time.Second, 50*time.Millisecond, "one hub holds the stream")
	victim := streamHub()

	posts := startPosting(s.lb, "", groupNames("E", 2)...)
	defer posts.Stop()
	time.Sleep(time.Second)

	b, err := os.ReadFile(fmt.Sprintf("%s/hub%d.pid", dir, victim+1))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	p, err := os.FindProcess(pid)
	require.NoError(t, err)
	require.NoError(t, p.Kill())
	t.Logf("killed hub%d, the stream's", victim+1)
	require.Eventually(t, func() bool {
		at := streamHub()
		return at >= 0 && at != victim
	}, 20*time.Second, 50*time.Millisecond, "the page's stream is on another hub")
	time.Sleep(time.Second)
	s.run("up") // starts the killed hub again
	time.Sleep(time.Second)
	posts.Stop()

	read := func() map[string][]int64 {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.sse.got)`))
		require.NoError(t, err)
		var got map[string][]int64
		require.NoError(t, json.Unmarshal([]byte(raw), &got))
		return got
	}
	require.Eventually(t, func() bool { return posts.missing(read()) == 0 }, 30*time.Second, 100*time.Millisecond,
		"every acknowledged event reaches the page")
	total := posts.checkOnceInOrder(t, read())
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.sse.recovered)`))
	require.NoError(t, err)
	var recovered []bool
	require.NoError(t, json.Unmarshal([]byte(raw), &recovered))
	assert.NotEmpty(t, recovered, "the stream was resumed")
	for _, r := range recovered {
		assert.True(t, r, "history covered the outage: %v", recovered)
	}
	t.Logf("%d events acknowledged; the page opened %d streams, saw %d errors, resumed %v",
		total, eval(`window.sse.opens`), eval(`window.sse.errors`), recovered)
	browsertest.Screenshot(t, ctx, "sse-after-kill")
}
