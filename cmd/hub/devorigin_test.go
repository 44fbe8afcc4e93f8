package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// A -dev hub serves the pages of a developer's local web server (http on a
// loopback name): they may read /dev/token and open a WebSocket, so that a
// page of their own tries the browser client against `make run`. Pages of
// any other origin may not, nor may local pages talk to a hub without -dev.
func TestBinaryDevOrigins(t *testing.T) {
	dev := hubtest.Start(t, []string{"-dev"})
	prod := hubtest.Start(t, []string{"-jwt-secret", "dev-origin-test-secret-dev-origin-test", "-apps", "1400000000"})
	tok := devToken(t, dev, "?sub=page")
	for _, tc := range []struct {
		origin string
		allow  bool
	}{
		{"http://localhost:3000", true},
		{"http://localhost", true},
		{"http://127.0.0.1:5173", true},
		{"http://[::1]:8000", true},
		{"https://localhost:3000", false},
		{"http://evil.example", false},
		{"http://localhost.evil.example:3000", false},
		{"http://127.0.0.1.nip.io", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			req, err := http.NewRequest("GET", dev.URL("/dev/token?sub=page"), nil)
			require.NoError(t, err)
			req.Header.Set("Origin", tc.origin)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode)
			if tc.allow {
				assert.Equal(t, tc.origin, resp.Header.Get("Access-Control-Allow-Origin"), "the page may read its token")
			} else {
				assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
			}

			h := http.Header{"Origin": {tc.origin}}
			c, err := wstest.TryDial(t, "ws://"+dev.Addr+"/ws", tok, h)
			if tc.allow {
				require.NoError(t, err)
				assert.Equal(t, "connected", c.ReadOp("connected").Op)
			} else {
				assert.Error(t, err, "a WebSocket from %s", tc.origin)
			}
			_, err = wstest.TryDial(t, "ws://"+prod.Addr+"/ws", tok, h)
			assert.Error(t, err, "a hub without -dev takes no WebSocket from %s", tc.origin)
		})
	}
}
