package textclip

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"group:G1", 64, "group:G1"},
		{"abcdef", 6, "abcdef"},
		{"abcdefg", 6, "abcdef…"},
		{"ééé", 3, "é…"}, // not half of the second é
		{"ééé", 1, "…"},
		{"", 0, ""},
	} {
		got := Cut(tc.in, tc.n)
		assert.Equal(t, tc.want, got, "Cut(%q, %d)", tc.in, tc.n)
		assert.True(t, utf8.ValidString(got))
	}
}
