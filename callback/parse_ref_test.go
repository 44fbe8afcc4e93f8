package callback

// The reference for the one step of Parse that does not use encoding/json:
// how the body's objects become fields. FuzzParseMatchesReference runs
// Parse as it is and with jsonSplit as its splitHook and holds the two to
// the same outcome, and Encode to refEncode.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// jsonSplit decodes each object with encoding/json into a map of raw
// values, which keeps the last of a key given twice.
var jsonSplit = splitter{
	object: jsonObject,
	objects: func(raw []byte) []fields {
		var entries []json.RawMessage
		mustUnmarshal(raw, &entries)
		list := make([]fields, 0, len(entries))
		for _, e := range entries {
			if e[0] == '{' {
				list = append(list, jsonObject(e))
			}
		}
		return list
	},
	objectList: func(raw []byte) ([]fields, bool) {
		var maps []map[string]json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &maps) != nil {
			return nil, false
		}
		list := make([]fields, len(maps))
		for i, m := range maps {
			list[i] = appendMap(nil, m)
		}
		return list, true
	},
}

func jsonObject(raw []byte) fields {
	var m map[string]json.RawMessage
	mustUnmarshal(raw, &m)
	return appendMap(nil, m)
}

// appendMap appends m's members to f, in key order so that a run repeats.
func appendMap(f fields, m map[string]json.RawMessage) fields {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f = append(f, field{key: []byte(k), raw: m[k]})
	}
	return f
}

// mustUnmarshal decodes what Parse has already found to be valid JSON of
// the right kind: failing is a defect in Parse, not in the input.
func mustUnmarshal(raw []byte, v any) {
	if err := json.Unmarshal(raw, v); err != nil {
		panic(fmt.Sprintf("split was given %.80q: %v", raw, err))
	}
}

// refEncode is Event.Encode done by encoding/json: HTML characters not
// escaped, no trailing newline.
func refEncode(e *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
