package callback

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// jsonDepth is how deep encoding/json lets arrays and objects nest.
const jsonDepth = 10000

// jsonCases are texts on either side of every rule of JSON's grammar.
var jsonCases = []string{
	``, ` `, `{}`, ` { } `, `[]`, `[ ]`, `{`, `}`, `[`, `]`, `{]`, `[}`, `{"a":1}`, `{"a" : 1 , "b":[1,2]}`,
	`{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{1:2}`, `[1 2]`,
	`"x"`, `"`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\x"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u12"`, `"\u"`,
	"\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\t\"", `"a"b`, `"a" "b"`,
	`0`, `-0`, `01`, `-`, `-a`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e+5`, `1E-5`, `1.5e3`, `-1.0e-0`, `00`, `1x`, `+1`,
	`true`, `false`, `null`, `tru`, `truex`, `nul`, `nulll`, `True`, `[true,false,null]`, `{"a":null}`,
	`"\u00e9\ud800"`, `"a\"b"`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `1.0`, `1e2`,
	`1 `, ` 1`, `1 1`, "\n[\r\t1\n]\n", `[[[]]]`, `[[[]]`, `[{"a":[{"b":{}}]}]`, `{"a":{"b":[1,{"c":"}"}]}}`,
	`{"a":"]"}`, `["{"]`, `{"\"":1}`, `{"a":1}x`, `{"a":1}}`, `[1]]`,
	strings.Repeat("[", jsonDepth) + strings.Repeat("]", jsonDepth),
	strings.Repeat("[", jsonDepth+1) + strings.Repeat("]", jsonDepth+1),
	strings.Repeat(`{"a":`, jsonDepth) + "1" + strings.Repeat("}", jsonDepth),
	strings.Repeat(`{"a":`, jsonDepth+1) + "1" + strings.Repeat("}", jsonDepth+1),
}

// On every text json.Valid takes, appendCompact agrees with json.Compact,
// and str and parseInt with json.Unmarshal.
func TestScanMatchesJSON(t *testing.T) {
	for _, c := range jsonCases {
		checkValid(t, []byte(c))
	}
}

func FuzzScan(f *testing.F) {
	for _, c := range jsonCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkValid(t, b) })
}

func checkValid(t *testing.T, b []byte) {
	t.Helper()
	if !json.Valid(b) {
		return
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, b)
	assert.Equal(t, compact.String(), string(appendCompact([]byte("x"), b))[1:], "compact %.80q", b)

	// A value as the splitter gives it: no space around it.
	raw := json.RawMessage(bytes.Trim(b, " \t\r\n"))
	switch c := raw[0]; {
	case c == '"' && utf8.Valid(raw): // Parse repairs text first
		var want string
		err := json.Unmarshal(raw, &want)
		got, ok := str(raw)
		assert.Equal(t, err == nil, ok, "str(%.80q)", b)
		assert.Equal(t, want, got, "str(%.80q)", b)
	case c == '-' || c >= '0' && c <= '9':
		_, ok := str(raw)
		assert.False(t, ok, "str(%.80q)", b)
		var want int64
		err := json.Unmarshal(raw, &want)
		got, gotErr := parseInt(raw)
		assert.Equal(t, err == nil, gotErr == nil, "parseInt(%.80q): %v; encoding/json: %v", b, gotErr, err)
		if err == nil {
			assert.Equal(t, want, got, "parseInt(%.80q)", b)
		}
	case c != 'n' && c != '"':
		_, ok := str(raw)
		assert.False(t, ok, "str(%.80q)", b)
	}
}
