package callback

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

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

// Bounds on the text a log line or an answer takes from a request. Anyone
// can send a callback with a megabyte in its query or in a field, and it
// must not reach the log, or the answer, whole.
const (
	// maxQuoted bounds one value quoted from a request.
	maxQuoted = 96
	// maxReason bounds a whole rejection reason, which may quote two
	// values.
	maxReason = 320
	// maxLoggedEvent bounds the event a debug line shows: enough for a
	// person to see what was published.
	maxLoggedEvent = 4096
	// maxLoggedChannels bounds the channels (and positions) that line
	// shows.
	maxLoggedChannels = 512
)

// clip returns s as a log line or an answer may quote it: at most maxQuoted
// bytes of it, then "…(+N bytes)" saying how much was left off.
func clip(s string) string { return clipTo(s, maxQuoted) }

// clipTo returns at most limit bytes of s, then "…(+N bytes)" when some was
// left off. The result is valid UTF-8 and is cut between characters; a byte
// that is not UTF-8 and a control character become U+FFFD (line breaks and
// tabs a space), so that a log line stays one line a person can read.
func clipTo(s string, limit int) string {
	if len(s) <= limit && plain(s) {
		return s
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		out := s[i : i+size]
		switch {
		case r == utf8.RuneError && size == 1:
			out = replacement
		case r == '\t' || r == '\n' || r == '\r':
			out = " "
		case r < 0x20 || 0x7f <= r && r < 0xa0:
			out = replacement
		}
		if b.Len()+len(out) > limit {
			break
		}
		b.WriteString(out)
		i += size
	}
	if i < len(s) {
		b.WriteString("…(+" + strconv.Itoa(len(s)-i) + " bytes)")
	}
	return b.String()
}

// plain says whether s is valid UTF-8 without control characters, the
// common case, which clipTo returns as it is.
func plain(s string) bool {
	for i, r := range s {
		if r < 0x20 || 0x7f <= r && r < 0xa0 {
			return false
		}
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], replacement) {
			return false
		}
	}
	return true
}
