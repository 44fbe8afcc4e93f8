package callback

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encodeReflect is what Encode must write: encoding/json's encoding of the
// event, HTML characters unescaped, without the trailing newline.
func encodeReflect(t *testing.T, e *Event) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(e))
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// Encode writes, byte for byte, what encoding/json writes for every event
// the golden bodies give and for events with every field set and text
// that needs escaping.
func TestEncodeMatchesJSON(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	events := map[string]*Event{}
	for _, name := range files {
		body, err := os.ReadFile(name)
		require.NoError(t, err)
		ev, _, err := Parse(goldenRequest(t, body), body)
		require.NoError(t, err)
		events[filepath.Base(name)] = ev
	}
	tricky := "a\"b\\c\x00\x01\x08\x0c\n\r\t\x1f\x7f <>& \u2028\u2029 é 😀 \xff\xc3("
	name, empty := tricky, ""
	unread := int64(0)
	events["every field"] = &Event{
		ID: tricky, Type: tricky, App: tricky, Time: -1, GroupID: tricky, GroupType: tricky, TopicID: tricky,
		From: tricky, To: tricky, Operator: tricky,
		Messages:        []MessageRef{{}, {Seq: 1}, {ID: tricky}, {Key: "k", Random: -5}, {Seq: 2, ID: "i", Key: "k", Random: 3}},
		Body:            json.RawMessage(" [ {\"MsgType\" : \"T\",\n\t\"MsgContent\":{\"Text\":\"a b\\n\\u2028<\"}} ] "),
		CloudCustomData: tricky, OnlineOnly: true, Unread: &unread, SendResult: 7, ErrorInfo: tricky,
		Status: tricky, Reason: tricky, KickedDevices: []Device{{Platform: tricky}, {}},
		Members: []string{tricky, "", "b"}, JoinType: tricky, ExitType: tricky, LastReadTime: 9,
		Receipts: []Receipt{{}, {Seq: 1, Read: 2, Unread: 3}},
		Changes: &GroupChanges{Name: &name, Introduction: &empty, Notification: &name, FaceURL: &empty,
			Custom: map[string]string{"z": tricky, tricky: "", "a": "1", "é": "2"}},
		Platform: tricky, ClientIP: tricky, Command: tricky, Received: 1 << 62,
	}
	events["empty"] = &Event{}
	events["empty changes"] = &Event{Changes: &GroupChanges{}, Messages: []MessageRef{}, Members: []string{}}
	events["custom only"] = &Event{Changes: &GroupChanges{Custom: map[string]string{"k": "v"}}}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			got, err := ev.Encode()
			require.NoError(t, err)
			assert.Equal(t, encodeReflect(t, ev), string(got))
		})
	}
}

// A Body that is not JSON is an error, as it is for encoding/json.
func TestEncodeInvalidBody(t *testing.T) {
	_, err := (&Event{Body: json.RawMessage(`[1,`)}).Encode()
	assert.Error(t, err)
}

// fill sets every field of v, down through pointers, slices and maps, to a
// value encoding/json does not omit, text to s. A kind it does not know
// fails the test, so a field of a new type cannot be left out unseen.
func fill(t *testing.T, v reflect.Value, s string) {
	t.Helper()
	if v.Type() == reflect.TypeFor[json.RawMessage]() {
		v.SetBytes([]byte(`{"MsgType":"TIMTextElem","n":[1,true,null]}`))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), s)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(t, v.Index(0), s)
		fill(t, v.Index(1), "second")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for _, key := range []string{s, "a"} {
			k := reflect.New(v.Type().Key()).Elem()
			fill(t, k, key)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, e, s)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), s)
			}
		}
	default:
		t.Fatalf("fill: no value for a %s (%s)", v.Kind(), v.Type())
	}
}

// Encode writes every field of Event as encoding/json does: the event is
// filled by reflection, so a field added to Event and not to Encode fails
// here.
func TestEncodeEveryField(t *testing.T) {
	for _, s := range []string{"x", "a\"b\\c\x00\x1f\x7f <>& \u2028 é 😀 \xff"} {
		var ev Event
		fill(t, reflect.ValueOf(&ev).Elem(), s)
		got, err := ev.Encode()
		require.NoError(t, err)
		assert.Equal(t, encodeReflect(t, &ev), string(got))
	}
}
