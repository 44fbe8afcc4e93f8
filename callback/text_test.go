package callback

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repairUTF8 replaces bad bytes exactly as encoding/json does when it
// decodes a string, so a field decoded from the repaired body is what it
// would have been from the original, and MsgBody, passed on undecoded,
// reads as the decoded fields do. Every sequence of up to two bytes is
// checked, after an ASCII letter and before the start of a longer sequence.
func TestRepairUTF8MatchesJSON(t *testing.T) {
	jsonString := func(raw string) string {
		var s string
		require.NoError(t, json.Unmarshal([]byte(`"`+raw+`"`), &s), "%q", raw)
		return s
	}
	usable := func(c int) bool { return c >= 0x20 && c != '"' && c != '\\' }
	for a := range 256 {
		for b := range 256 {
			if !usable(a) || !usable(b) {
				continue
			}
			raw := "x" + string([]byte{byte(a), byte(b)}) + "\xe2\x82"
			got, repaired := repairUTF8([]byte(raw))
			want := jsonString(raw)
			if string(got) != want {
				t.Fatalf("%q: repaired to %q, encoding/json decodes %q", raw, got, want)
			}
			assert.Equal(t, !utf8.ValidString(raw), repaired, "%q", raw)
		}
	}
	for _, raw := range []string{"\xf0\x9f\xa7\xa7", "\xf0\x9f\xa7", "\xf4\x90\x80\x80", "\xed\xa0\x80", "\xef\xbf\xbd", "\xc0\xaf", "\xff\xfe\xfd"} {
		got, _ := repairUTF8([]byte(raw))
		assert.Equal(t, jsonString(raw), string(got), "%q", raw)
	}
}

func TestRepairUTF8ValidIsUnchanged(t *testing.T) {
	in := []byte(`{"Text":"紅包 🧧 \uFFFD ` + "\uFFFD" + `"}`)
	got, repaired := repairUTF8(in)
	assert.False(t, repaired)
	assert.Same(t, &in[0], &got[0], "valid input is returned as it is, not copied")
	s, repaired := repairString("jared")
	assert.Equal(t, "jared", s)
	assert.False(t, repaired)
	s, repaired = repairString("ja\xffred")
	assert.Equal(t, "ja\uFFFDred", s)
	assert.True(t, repaired)
}

func TestClip(t *testing.T) {
	const bad = "\uFFFD"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "Group.CallbackAfterSendMsg", "Group.CallbackAfterSendMsg"},
		{"empty", "", ""},
		{"exactly the limit", strings.Repeat("a", maxQuoted), strings.Repeat("a", maxQuoted)},
		{"one over", strings.Repeat("a", maxQuoted+1), strings.Repeat("a", maxQuoted) + "…(+1 bytes)"},
		{"a megabyte", strings.Repeat("7", 1<<20), strings.Repeat("7", maxQuoted) + "…(+1048480 bytes)"},
		{"cut between characters", strings.Repeat("a", maxQuoted-1) + "紅包", strings.Repeat("a", maxQuoted-1) + "…(+6 bytes)"},
		{"bad bytes", "ja\xffred\xc3", "ja" + bad + "red" + bad},
		{"bad bytes count as what they become", strings.Repeat("\xff", maxQuoted), strings.Repeat(bad, maxQuoted/3) + "…(+64 bytes)"},
		{"line breaks and tabs", "a\nb\r\nc\td", "a b  c d"},
		{"control characters", "a\x00b\x1b[31mc\x7fd\u0085e", "a" + bad + "b" + bad + "[31mc" + bad + "d" + bad + "e"},
		{"U+FFFD itself", "a" + bad, "a" + bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := clip(tc.in)
			assert.Equal(t, tc.want, got)
			assert.True(t, utf8.ValidString(got))
			assert.LessOrEqual(t, len(got), maxQuoted+len("…(+1048576 bytes)"))
		})
	}
}

// BenchmarkRepairUTF8 is what the repair adds to each callback: one scan
// of a valid body, and a copy for one that is not.
func BenchmarkRepairUTF8(b *testing.B) {
	valid, err := os.ReadFile("testdata/golden/group_send.json")
	require.NoError(b, err)
	invalid := bytes.Replace(valid, []byte("red packet"), []byte("red \xe7\xba packet"), 1)
	for _, bc := range []struct {
		name string
		body []byte
	}{{"valid", valid}, {"invalid", invalid}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				repairUTF8(bc.body)
			}
		})
	}
}
