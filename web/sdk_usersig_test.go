package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/browsertest"
	"github.com/imhub/imhub/web"
)

// In Chromium, the client reads a UserSig with the browser's own
// DecompressionStream: signed an hour ago by the signer's clock and living
// 4 s, it is refreshed in band half its life after it came, not at once and
// not never. The page's WebSocket is a stand-in that answers for the hub;
// the wire side is tested in web/jstest/sdkusersig.test.mjs.
func TestSDKUserSigInTheBrowser(t *testing.T) {
	sdk := httptest.NewServer(web.Handler())
	defer sdk.Close()
	sigs := make([]string, 2)
	for i := range sigs {
		s, err := auth.SignUserSig([]byte("a key of the test"), "1400000000", "jared", time.Now().Add(-time.Hour), 4*time.Second)
		require.NoError(t, err)
		sigs[i] = s
	}
	quoted, _ := json.Marshal(sigs)
	page := fmt.Sprintf(`<!doctype html><meta charset=utf-8><title>usersig</title><pre id=out></pre>
<script type="module">
import { Hub } from %q;
const sigs = %s;
let calls = 0;
const start = Date.now();
const out = { sent: [] };
class Stand {
  constructor(url) {
    out.url = url;
    this.readyState = 1;
    setTimeout(() => this.onmessage({ data: JSON.stringify({ op: 'connected', user: 'jared', app: '1400000000', node: 'n1', channels: ['user:jared'] }) }), 0);
  }
  send(s) {
    const f = JSON.parse(s);
    out.sent.push({ ...f, after: Date.now() - start });
    document.getElementById('out').textContent = JSON.stringify(out);
  }
  close() {}
}
const hub = new Hub('ws://hub.test/ws', { WebSocket: Stand, userSig: async () => ({ sdkAppID: 1400000000, userID: 'jared', userSig: sigs[Math.min(calls++, 1)] }) });
hub.on('error', (e) => { out.error = String(e); document.getElementById('out').textContent = JSON.stringify(out); });
hub.connect();
</script>`, sdk.URL+"/sdk/imhub.js", quoted)
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
	defer pages.Close()

	ctx := browsertest.Start(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(pages.URL+"/page.html")))
	type frame struct {
		Op, Usersig string
		After       int
	}
	var got struct {
		URL   string
		Sent  []frame
		Error string
	}
	require.Eventually(t, func() bool {
		s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('out').textContent`))
		if s == "" || json.Unmarshal([]byte(s), &got) != nil {
			return false
		}
		for _, f := range got.Sent {
			if f.Op == "refresh" {
				return true
			}
		}
		return got.Error != ""
	}, 20*time.Second, 50*time.Millisecond, "a refresh from the page")
	require.Empty(t, got.Error)
	u, err := url.Parse(got.URL)
	require.NoError(t, err)
	assert.Equal(t, url.Values{"sdkappid": {"1400000000"}, "userid": {"jared"}, "usersig": {sigs[0]}}, u.Query())
	var refresh frame
	for _, f := range got.Sent {
		if f.Op == "refresh" {
			refresh = f
		}
	}
	assert.Equal(t, sigs[1], refresh.Usersig)
	assert.GreaterOrEqual(t, refresh.After, 1900, "due half its 4 s life after it came, not at once")
}
