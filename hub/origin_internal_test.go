package hub

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pages a hub on hub.example.com lets connect, for the patterns of
// Config.AllowedOrigins and those of a -dev hub.
func TestOriginPolicy(t *testing.T) {
	var logs bytes.Buffer
	p := newOriginPolicy([]string{
		"Dash.Example.com", "*.apps.example.org", "https://secure.example.net",
		"http://localhost:*", `http://\[::1\]:*`,
		"[bad", // not path.Match syntax: logged, allows nothing
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	assert.Contains(t, logs.String(), "pattern=[bad", "the malformed pattern is logged at start")
	for _, tc := range []struct {
		origin []string
		ok     bool
	}{
		{nil, true}, // not a page: a program sends what it likes
		{[]string{"https://hub.example.com"}, true},
		{[]string{"http://HUB.example.com"}, true}, // the hub's own host, in any scheme and case
		{[]string{"https://hub.example.com:8443"}, false},
		{[]string{"https://dash.example.com"}, true},
		{[]string{"http://dash.example.com"}, true}, // a host pattern takes any scheme
		{[]string{"https://DASH.EXAMPLE.COM"}, true},
		{[]string{"https://dash.example.com:8443"}, false},
		{[]string{"https://a.apps.example.org"}, true},
		{[]string{"https://apps.example.org"}, false},
		{[]string{"https://secure.example.net"}, true},
		{[]string{"http://secure.example.net"}, false}, // a pattern with a scheme holds to it
		{[]string{"http://localhost:3000"}, true},
		{[]string{"http://localhost"}, false},
		{[]string{"http://[::1]:8000"}, true},
		{[]string{"https://evil.example"}, false},
		{[]string{"https://[bad"}, false},
		{[]string{"null"}, false}, // an opaque origin: any page at all
		{[]string{"file://"}, false},
		{[]string{"dash.example.com"}, false},
		{[]string{"https://dash.example.com/"}, false},
		{[]string{"https://user@dash.example.com"}, false},
		{[]string{"1http://dash.example.com"}, false},
		{[]string{"https://dash.example.com", "https://evil.example"}, false}, // which is the page's?
	} {
		r := httptest.NewRequest(http.MethodGet, "http://hub.example.com/ws", nil)
		r.Header["Origin"] = tc.origin
		err := p.check(r)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.origin)
			continue
		}
		var he *handshakeError
		if assert.True(t, errors.As(err, &he), "%q refused: %v", tc.origin, err) {
			assert.Equal(t, http.StatusForbidden, he.status)
		}
	}
}

// A client's nonce is 16 bytes in base64, nothing else.
func TestValidKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"dGhlIHNhbXBsZSBub25jZQ==":   true,
		"AAAAAAAAAAAAAAAAAAAAAA==":   true,
		"dGhlIHNhbXBsZSBub25jZQ=":    false,
		"dGhlIHNhbXBsZSBub25jZQ":     false,
		"dGhlIHNhbXBsZSBub25jZXg=":   false, // 17 bytes
		"dGhlIHNhbXBsZSBub25jZXh4":   false, // 18
		"dGhlIHNhbXBsZSBub25jZR==":   true,  // stray bits before the padding: still 16 bytes
		"dGhlIHNhbXBsZSBub25j ZQ=":   false,
		"dGhlIHNhbXBsZSBub25jZQ==\n": false,
		"":                           false,
	} {
		require.Equal(t, ok, validKey(key), "%q", key)
	}
}
