package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/web"
)

// The dashboard is served from the binary, with a policy that keeps any
// script but its own from running.
func TestServesEmbeddedDashboard(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/": "<title>imhub", "/app.js": "import", "/render.js": "export function esc", "/track.js": "export class ReadIndex", "/app.css": ":root"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, path)
		assert.Contains(t, string(b), want, path)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
	}
	resp, err := http.Get(srv.URL + "/missing.js")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
}

// The browser client is served for pages of any origin to import, each
// file with its own type; the example pages may keep their script inline.
func TestServesTheClient(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, c := range []struct{ path, contains, contentType, cors, csp string }{
		{"/sdk/imhub.js", "export class Hub", "text/javascript; charset=utf-8", "*", ""},
		{"/sdk/imhub.d.ts", "export class Hub", "application/typescript; charset=utf-8", "*", ""},
		{"/examples/chat-notify.html", "<!doctype html>", "text/html; charset=utf-8", "", "script-src 'self' 'unsafe-inline'"},
		{"/app.js", "import", "text/javascript; charset=utf-8", "", "script-src 'self';"},
	} {
		t.Run(c.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + c.path)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, string(b), c.contains)
			assert.Equal(t, c.contentType, resp.Header.Get("Content-Type"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, c.cors, resp.Header.Get("Access-Control-Allow-Origin"))
			if c.csp == "" {
				assert.Empty(t, resp.Header.Get("Content-Security-Policy"))
			} else {
				assert.Contains(t, resp.Header.Get("Content-Security-Policy"), c.csp)
			}
		})
	}
	for _, path := range []string{"/sdk/package.json", "/sdk/missing.js", "/examples/missing.html"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode, path)
	}
}
