package callback

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
