package callback

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The body is read in one pass: json.Valid checks the whole of it once,
// then objects are split into their members without decoding anything, each
// value kept as the slice of the body it is. A value is decoded only when a
// parser asks for it, and the common ones (strings without escapes,
// integers) without encoding/json: decoding into a map of raw values and
// then each value again cost a callback several times what the body's size
// does.
//
// Everything here assumes valid JSON: callers check with json.Valid first.

// field is one member of a JSON object: its key, decoded, and its value as
// it is in the body.
type field struct {
	key []byte
	raw json.RawMessage
}

// fields is a JSON object's members, in body order. Keys match exactly, as
// the IM sends them; of a key given twice the last counts, as encoding/json
// decodes into a map.
type fields []field

// splitter turns the objects of valid JSON into fields: an object, the
// entries of an array that are objects, and an array of objects or nulls.
type splitter struct {
	object     func(raw []byte) fields
	objects    func(raw []byte) []fields
	objectList func(raw []byte) ([]fields, bool)
}

// splitHook, when set, splits every object of a body in place of
// splitObject, arrayObjects and objectList: FuzzParseMatchesReference sets
// it to encoding/json's decoding and holds Parse with the one to Parse
// with the other. It is nil in the service, where a direct call keeps the
// body's top-level fields on the stack.
var splitHook *splitter

// objectOf appends the members of the object raw to f.
func objectOf(f fields, raw []byte) fields {
	if splitHook != nil {
		return append(f, splitHook.object(raw)...)
	}
	return splitObject(f, raw)
}

// objectsOf is the entries of the array raw that are objects.
func objectsOf(raw []byte) []fields {
	if splitHook != nil {
		return splitHook.objects(raw)
	}
	return arrayObjects(raw)
}

// objectListOf is objectList.
func objectListOf(raw []byte) ([]fields, bool) {
	if splitHook != nil {
		return splitHook.objectList(raw)
	}
	return objectList(raw)
}

// splitObject appends the members of the object raw, which must start with
// '{', to f.
func splitObject(f fields, raw []byte) fields {
	i := skipSpace(raw, 1)
	if raw[i] == '}' {
		return f
	}
	for {
		end, escaped := skipString(raw, i)
		key := raw[i+1 : end-1]
		if escaped {
			var s string
			_ = json.Unmarshal(raw[i:end], &s)
			key = []byte(s)
		}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // past ':'
		end = skipValue(raw, i)
		f = append(f, field{key: key, raw: raw[i:end]})
		i = skipSpace(raw, end)
		if raw[i] == '}' {
			return f
		}
		i = skipSpace(raw, i+1) // past ','
	}
}

// splitArray returns the elements of the array raw, which must start with
// '['.
func splitArray(raw []byte) []json.RawMessage {
	var out []json.RawMessage
	i := skipSpace(raw, 1)
	if raw[i] == ']' {
		return out
	}
	for {
		end := skipValue(raw, i)
		out = append(out, raw[i:end])
		i = skipSpace(raw, end)
		if raw[i] == ']' {
			return out
		}
		i = skipSpace(raw, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at b[i], past its
// closing quote, and whether it has escapes.
func skipString(b []byte, i int) (end int, escaped bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return i, escaped
}

// skipValue returns the end of the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _ := skipString(b, i)
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// str decodes raw as a JSON string, as encoding/json would; false if it is
// not a string.
func str(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		// Valid UTF-8 (the body is repaired first) and no escapes: the
		// text is the bytes between the quotes.
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// parseInt decodes raw as a JSON integer that fits an int64, as
// encoding/json decodes a number into an int64.
func parseInt(raw json.RawMessage) (int64, error) {
	return strconv.ParseInt(string(raw), 10, 64)
}

// appendCompact appends the valid JSON src to dst without the spaces
// between its tokens, as json.Compact does.
func appendCompact(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			end, _ := skipString(src, i)
			i = end - 1
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
