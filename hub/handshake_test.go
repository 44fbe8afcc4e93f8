package hub_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
)

// A request that is no WebSocket handshake the hub speaks is answered
// with an HTTP error, and no session starts.
func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, hub.Config{AllowedOrigins: []string{"dash.example.com"}})
	const good = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, tc := range []struct {
		name, method, headers string
		status                int
		header, value         string // a header the answer must carry
		proto                 string // HTTP/1.1 unless given
	}{
		// Every 426 names what to upgrade to (RFC 9110, section 15.5.22).
		{"HTTP/1.0", "GET", good, http.StatusUpgradeRequired, "Upgrade", "websocket", "HTTP/1.0"},
		{"keep-alive, no Upgrade token", "GET", strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive", 1), http.StatusUpgradeRequired, "Upgrade", "websocket", ""},
		{"no websocket token", "GET", strings.Replace(good, "Upgrade: websocket", "Upgrade: h2c", 1), http.StatusUpgradeRequired, "Upgrade", "websocket", ""},
		{"no upgrade", "GET", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusUpgradeRequired, "Upgrade", "websocket", ""},
		{"other version", "GET", strings.Replace(good, "Version: 13", "Version: 8", 1), http.StatusUpgradeRequired, "Sec-WebSocket-Version", "13", ""},
		{"no version", "GET", strings.Replace(good, "Sec-WebSocket-Version: 13\r\n", "", 1), http.StatusUpgradeRequired, "Sec-WebSocket-Version", "13", ""},
		{"other version, the key of an older draft", "GET", strings.Replace(strings.Replace(good, "Version: 13", "Version: 8", 1), "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n", 1),
			http.StatusUpgradeRequired, "Sec-WebSocket-Version", "13", ""},
		{"two versions", "GET", good + "Sec-WebSocket-Version: 13\r\n", http.StatusBadRequest, "", "", ""},
		{"POST", "POST", good, http.StatusMethodNotAllowed, "Allow", "GET", ""},
		{"POST, no upgrade", "POST", "", http.StatusMethodNotAllowed, "Allow", "GET", ""},
		{"no key", "GET", strings.Replace(good, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1), http.StatusBadRequest, "", "", ""},
		{"short key", "GET", strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1), http.StatusBadRequest, "", "", ""},
		{"key of 17 bytes", "GET", strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZXg=", 1), http.StatusBadRequest, "", "", ""},
		{"key of 18 bytes", "GET", strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZXh4", 1), http.StatusBadRequest, "", "", ""},
		{"key not base64", "GET", strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!==", 1), http.StatusBadRequest, "", "", ""},
		{"two keys", "GET", good + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusBadRequest, "", "", ""},
		{"foreign origin", "GET", good + "Origin: https://evil.example\r\n", http.StatusForbidden, "", "", ""},
		{"origin without a host", "GET", good + "Origin: null\r\n", http.StatusForbidden, "", "", ""},
		{"origin with a path", "GET", good + "Origin: https://dash.example.com/page\r\n", http.StatusForbidden, "", "", ""},
		{"two origins", "GET", good + "Origin: https://dash.example.com\r\nOrigin: https://evil.example\r\n", http.StatusForbidden, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			proto := tc.proto
			if proto == "" {
				proto = "HTTP/1.1"
			}
			_, err = c.Write([]byte(tc.method + " /ws?token=" + e.token() + " " + proto + "\r\nHost: x\r\n" + tc.headers + "\r\n"))
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			if tc.header != "" {
				assert.Equal(t, tc.value, resp.Header.Get(tc.header))
			}
			assert.Zero(t, e.hub.Sessions())
		})
	}
}

// The answer to a good handshake carries the key's proof (RFC 6455,
// section 1.3) and no extension unless one was agreed.
func TestHandshakeAccept(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("GET /ws?token=" + e.token() + " HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", resp.Header.Get("Sec-WebSocket-Accept"), "the example of RFC 6455")
	assert.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"), "compression is off")
}
