package callback

import "unicode/utf8"

// replacement is U+FFFD as UTF-8, what each byte that is not part of a valid
// UTF-8 sequence becomes.
const replacement = "\uFFFD"

// repairUTF8 returns b with each byte that is not part of a valid UTF-8
// sequence replaced by U+FFFD, and whether there was any. It is the
// replacement encoding/json makes when it decodes a string (one U+FFFD per
// bad byte, not per run of them), applied to the whole body, so that keys
// and the values passed on undecoded (MsgBody) are repaired alike.
//
// In a body that is valid JSON a byte of 0x80 or above can only be inside a
// string, so the repaired body is valid JSON exactly when the body was.
// Valid input costs one scan and is returned as it is.
func repairUTF8(b []byte) ([]byte, bool) {
	if utf8.Valid(b) {
		return b, false
	}
	out := make([]byte, 0, len(b)+len(b)/4)
	for len(b) > 0 {
		ascii := 0
		for ascii < len(b) && b[ascii] < utf8.RuneSelf {
			ascii++
		}
		out, b = append(out, b[:ascii]...), b[ascii:]
		if len(b) == 0 {
			break
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = append(out, replacement...)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out, true
}

// repairString is repairUTF8 for a string.
func repairString(s string) (string, bool) {
	if utf8.ValidString(s) {
		return s, false
	}
	b, _ := repairUTF8([]byte(s))
	return string(b), true
}
