// Package textclip bounds text that a server repeats from its input, in a
// log line, an error or a close reason, so that a client cannot have it
// repeat kilobytes of its choosing.
package textclip

import "unicode/utf8"

// Cut returns s if it is at most n bytes, else its first n bytes or fewer,
// cut at a character boundary (never inside one), followed by "…".
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
