package hub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refusalLines are the lines a refusalLog wrote to buf, decoded.
func refusalLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		lines = append(lines, m)
	}
	buf.Reset()
	return lines
}

// An address's first refusal is logged at once; the next ones within the
// minute are counted, and told with the first refusal after it.
func TestRefusalLogOncePerMinute(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRefusalLog(slog.New(slog.NewJSONHandler(&buf, nil)), 5, true)
	l.now = func() time.Time { return now }
	a := netip.MustParseAddr("198.51.100.7")

	l.refused(a)
	lines := refusalLines(t, &buf)
	require.Len(t, lines, 1)
	assert.Equal(t, "198.51.100.7", lines[0]["addr"])
	assert.EqualValues(t, 1, lines[0]["refused"])
	assert.EqualValues(t, 5, lines[0]["limit"])
	assert.NotContains(t, lines[0], "hint", "the proxies are trusted")

	for range 9 {
		now = now.Add(time.Second)
		l.refused(a)
	}
	l.refused(netip.MustParseAddr("198.51.100.8"))
	lines = refusalLines(t, &buf)
	require.Len(t, lines, 1, "within the minute only another address is logged")
	assert.Equal(t, "198.51.100.8", lines[0]["addr"])

	now = now.Add(time.Minute)
	l.refused(a)
	lines = refusalLines(t, &buf)
	require.Len(t, lines, 1)
	assert.EqualValues(t, 10, lines[0]["refused"], "the nine held back and this one")
}

// Without trusted proxies, a private address (or loopback) is likely a
// load balancer's, and its line says which flag to set; a public one's
// does not.
func TestRefusalLogHint(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		proxied bool
		hint    bool
	}{
		{"10.1.2.3", false, true},
		{"192.168.0.9", false, true},
		{"127.0.0.1", false, true},
		{"fd00::", false, true},
		{"203.0.113.5", false, false},
		{"10.1.2.3", true, false},
	} {
		var buf bytes.Buffer
		l := newRefusalLog(slog.New(slog.NewJSONHandler(&buf, nil)), 1, tc.proxied)
		l.refused(netip.MustParseAddr(tc.addr))
		lines := refusalLines(t, &buf)
		require.Len(t, lines, 1)
		hint, ok := lines[0]["hint"].(string)
		assert.Equal(t, tc.hint, ok, "%s, proxied %v", tc.addr, tc.proxied)
		if tc.hint {
			assert.Contains(t, hint, "-trusted-proxies")
		}
	}
}

// The table of addresses is bounded: past it, addresses whose minute has
// passed are forgotten, and while none has, the rest are told together.
func TestRefusalLogBounded(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRefusalLog(slog.New(slog.NewJSONHandler(&buf, nil)), 1, true)
	l.now = func() time.Time { return now }
	addr := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	for i := range maxRefusalAddrs {
		l.refused(addr(i))
	}
	require.Len(t, refusalLines(t, &buf), maxRefusalAddrs)
	l.refused(addr(maxRefusalAddrs))
	l.refused(addr(maxRefusalAddrs + 1))
	lines := refusalLines(t, &buf)
	require.Len(t, lines, 1, "the others are one line a minute")
	assert.NotContains(t, lines[0], "addr")
	assert.Len(t, l.byAddr, maxRefusalAddrs)

	now = now.Add(time.Minute)
	l.refused(addr(maxRefusalAddrs + 2))
	lines = refusalLines(t, &buf)
	require.Len(t, lines, 1)
	assert.Equal(t, addr(maxRefusalAddrs+2).String(), lines[0]["addr"], "told by itself once room is made")
	assert.Len(t, l.byAddr, 1)
}
