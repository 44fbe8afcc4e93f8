package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// keySet is the keys a request may name, each exactly and once.
//
// encoding/json matches an object's keys to fields regardless of case and
// lets the last of two equal keys win, so {"channel":"user:bob",
// "Channel":"user:eve"} would publish to user:eve while a proxy in front
// that reads channel saw user:bob. The API reads what every reader of the
// body reads: one value per key, under its exact name.
type keySet []string

// keysOf is the JSON names of the fields of the struct v points to.
func keysOf(v any) keySet {
	t := reflect.TypeOf(v).Elem()
	var ks keySet
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			ks = append(ks, name)
		}
	}
	return ks
}

// check says what is wrong with name, the n-th time it is seen ("" when
// nothing). what is "key" or "query parameter".
func (ks keySet) check(what, name string, n int) string {
	switch {
	case n > 1:
		return fmt.Sprintf("%s %s is given more than once: give each once", what, strconv.Quote(clip(name)))
	case slices.Contains(ks, name):
		return ""
	}
	for _, k := range ks {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf("unknown %s %s: names match exactly; did you mean %q?", what, strconv.Quote(clip(name)), k)
		}
	}
	return fmt.Sprintf("unknown %s %s: this call takes %s", what, strconv.Quote(clip(name)), strings.Join(ks, ", "))
}

// checkObject reads body, which must be one JSON object and nothing after
// it, and says what is wrong with it or its keys ("" when nothing). Only
// the object's own keys are checked: values, such as a publish's data, are
// the caller's to shape.
func (ks keySet) checkObject(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "body is not the JSON object expected: " + notObject(tok, err)
	}
	seen := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "body is not the JSON object expected: " + clip(err.Error())
		}
		name, ok := tok.(string)
		if !ok { // the decoder allows nothing else here; checked all the same
			return "body is not the JSON object expected: a key is not a string"
		}
		seen[name]++
		if msg := ks.check("key", name, seen[name]); msg != "" {
			return msg
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return "body is not the JSON object expected: " + clip(err.Error())
		}
	}
	if _, err := dec.Token(); err != nil {
		return "body is not the JSON object expected: " + clip(err.Error())
	}
	// Whatever follows, even a lone } or ], which the decoder's More
	// would not report.
	if len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return "body has more after its JSON object"
	}
	return ""
}

// notObject says what a body starts with instead of an object.
func notObject(tok json.Token, err error) string {
	if err != nil {
		return clip(err.Error())
	}
	return fmt.Sprintf("it starts with %v, not {", tok)
}

// checkQuery says what is wrong with a query's parameters ("" when
// nothing): each must be one of ks, exactly, and given once, for the same
// reason as a body's keys.
func (ks keySet) checkQuery(q url.Values) string {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same answer to the same query
	for _, name := range names {
		if msg := ks.check("query parameter", name, len(q[name])); msg != "" {
			return msg
		}
	}
	return ""
}
