// Package browsertest runs headless Chromium for tests, through chromedp:
// the Debian package's browser, one per test, stopped when the test ends.
package browsertest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Start starts headless Chromium for the test and returns its context.
// A machine without Chromium fails the test, saying how to install it.
func Start(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("Chromium is not installed, so the browser cannot be tested: run `make test`, which installs it, or `apt-get install -y chromium`")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	return ctx
}

// Screenshot saves the whole page as name.png among the test's artifacts
// (go test -artifacts; make test puts them in test-output/).
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(t.ArtifactDir(), name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot %s", path)
}

// SnippetPage serves the README's browser snippet (between the
// readme-snippet markers of the README.md at readme) as a page of an
// origin of its own, with the hub of `make run` replaced by hubAddr, and
// returns the page's URL. The server stops when the test ends.
func SnippetPage(t *testing.T, readme, hubAddr string) string {
	t.Helper()
	b, err := os.ReadFile(readme)
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(b), "<!-- readme-snippet -->\n```html\n")
	require.True(t, ok, "%s has no readme-snippet block", readme)
	snippet, _, ok := strings.Cut(rest, "```\n<!-- /readme-snippet -->")
	require.True(t, ok, "%s: the readme-snippet block does not end", readme)
	page := "<!doctype html><meta charset=utf-8><title>snippet</title>\n" + strings.ReplaceAll(snippet, "127.0.0.1:8080", hubAddr)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/page.html"
}
