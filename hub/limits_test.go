package hub_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
)

// A text frame that is not valid UTF-8 closes the connection with 1007,
// even when it parses as JSON (encoding/json would quietly turn the bad
// bytes into U+FFFD). The WebSocket library does not check it.
func TestInvalidUTF8Closes(t *testing.T) {
	e := newEnv(t, hub.Config{})
	for _, payload := range []string{
		"{\"op\":\"ping\",\"id\":\"\xff\"}",
		"{\"op\":\"subscribe\",\"channel\":\"group:\xc3\x28\"}",
		"{\"op\":\"ping\",\"id\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate
	} {
		r := rawUpgrade(t, e, "", clientFrame([]byte(payload)))
		for range 2 { // connected, subscribed user:jared
			first, _ := rawFrame(t, r)
			require.Equal(t, byte(0x81), first, "a text frame")
		}
		first, p := rawFrame(t, r)
		require.Equal(t, byte(0x88), first, "a close frame, not an answer: %q", p)
		require.GreaterOrEqual(t, len(p), 2)
		assert.EqualValues(t, hub.CloseInvalidUTF8, binary.BigEndian.Uint16(p), "payload %q", payload)
	}
	assert.Equal(t, 3.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "1007")))
}

// What a client sends is echoed in error frames only clipped: a long op
// name, a group or a channel no channel can be; an id too long to echo is
// refused rather than clipped into another id.
func TestEchoesAreClipped(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	long := strings.Repeat("é", 5000) // 10000 bytes, two per character
	for _, tc := range []struct {
		name  string
		frame map[string]any
		code  string
	}{
		{"op", map[string]any{"op": long, "id": 1}, hub.CodeBadRequest},
		{"group", map[string]any{"op": "subscribe", "channel": "group:" + long[:200], "id": 2}, hub.CodeForbidden},
		{"channel", map[string]any{"op": "subscribe", "channel": "group:" + long, "id": 3}, hub.CodeUnknownChannel},
		{"id", map[string]any{"op": "ping", "id": long}, hub.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(tc.frame)
			f := c.ReadOp("error")
			assert.Equal(t, tc.code, f.Code)
			assert.Less(t, len(f.Raw), 600, "the answer is short: %s", f.Raw)
			assert.True(t, utf8.ValidString(f.Raw), "clipped at a character boundary")
			if tc.name == "id" {
				assert.Empty(t, f.ID, "an id too long is not echoed")
			} else {
				assert.JSONEq(t, fmt.Sprint(tc.frame["id"]), string(f.ID))
			}
		})
	}
	c.Send(map[string]any{"op": "ping", "id": strings.Repeat("x", 62)}) // 64 bytes as JSON
	assert.Equal(t, `"`+strings.Repeat("x", 62)+`"`, string(c.ReadOp("pong").ID), "an id of the longest kind is echoed whole")
}
