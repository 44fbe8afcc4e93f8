package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// The server API panel: with an API key typed in, it shows who is connected
// to the channel being watched and publishes a custom event that the feed
// then shows; a wrong key is answered with the hub's error; the key is
// never stored by the page.
func TestDashboardServerAPI(t *testing.T) {
	const key = "dashboard-api-key-0123456789"
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret, "-api-keys", "1400000000:" + key})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")
	text := func(id string) string { return evalString(t, ctx, `document.getElementById('`+id+`').textContent`) }
	require.Contains(t, text("api-presence-note"), "enter an API key")

	// No form to submit and a new-password field: nothing a browser
	// offers to save.
	require.Equal(t, "new-password null", evalString(t, ctx, `document.getElementById('api-key').autocomplete + ' ' + document.getElementById('api-key').closest('form')`))
	useKey := func(k string) {
		require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(`#api-key`, k), chromedp.Click(`#api-key-use`)))
	}
	useKey("not-the-key-0123456789")
	require.Eventually(t, func() bool { return strings.Contains(text("api-presence-note"), "API key is not valid") },
		10*time.Second, 50*time.Millisecond, "the hub's answer is shown: %q", text("api-presence-note"))

	// Enter in the field uses the key as the button does.
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(`#api-key`, key+"\r")))
	// The page watches "app" (its admin token's default): itself.
	require.Eventually(t, func() bool { return strings.Contains(text("api-presence"), "dashboard") },
		10*time.Second, 50*time.Millisecond, "presence of app: %q", text("api-presence"))
	require.Equal(t, "app", text("api-channel"))
	// Subscribing to a channel watches it: nobody but the page is there.
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(`#channel`, "group:G7"), chromedp.Click(`#channels button[type=submit]`)))
	require.Eventually(t, func() bool {
		return text("api-channel") == "group:G7" && strings.Contains(text("api-presence"), "dashboard")
	},
		10*time.Second, 50*time.Millisecond, "presence of group:G7: %q %q", text("api-channel"), text("api-presence"))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(`#api-publish input[name=channel]`, "group:G7"),
		chromedp.SetValue(`#api-publish textarea[name=data]`, `{"text":"from the panel"}`),
		chromedp.Click(`#api-publish button`)))
	require.Eventually(t, func() bool {
		return strings.HasPrefix(text("api-publish-result"), "published, offset 1:") && strings.Contains(text("api-publish-result"), "sent ")
	},
		10*time.Second, 50*time.Millisecond, "publish answer: %q", text("api-publish-result"))
	waitFeed(t, ctx, "#feed li", "from the panel", 1)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(`#api-publish input[name=channel]`, "app"),
		chromedp.Click(`#api-publish button`)))
	require.Eventually(t, func() bool { return strings.Contains(text("api-publish-result"), "firehose") },
		10*time.Second, 50*time.Millisecond, "the refusal is shown: %q", text("api-publish-result"))

	stored := evalString(t, ctx, `JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + document.getElementById('api-key').value`)
	require.NotContains(t, stored, key, "the key is kept nowhere but in memory")
	screenshot(t, ctx, "server-api")
}
