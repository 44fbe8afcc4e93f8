package callback

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// received is the fixed receive time of the golden tests.
var received = time.UnixMilli(1700000000123)

func goldenRequest(t testing.TB, body []byte) Request {
	var cmd struct{ CallbackCommand string }
	require.NoError(t, json.Unmarshal(body, &cmd))
	return Request{App: "1400000000", Command: cmd.CallbackCommand, ClientIP: "127.0.0.1", Platform: "Web", Received: received}
}

// The IM documents' examples, and the other schema versions they describe,
// each normalized to the exact event and channels in its .golden file.
func TestParseGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/golden/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, inputs)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			require.NoError(t, err)
			ev, channels, err := Parse(goldenRequest(t, body), body)
			require.NoError(t, err)
			data, err := ev.Encode()
			require.NoError(t, err)
			var got bytes.Buffer
			enc := json.NewEncoder(&got)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			require.NoError(t, enc.Encode(struct {
				Channels []string        `json:"channels"`
				Event    json.RawMessage `json:"event"`
			}{channels, data}))
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, got.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test ./callback -run TestParseGolden -update and review it")
			assert.Equal(t, string(want), got.String())
		})
	}
}

func TestParseTime(t *testing.T) {
	req := Request{App: "1", Command: CommandGroupSend, Received: received}
	base := `"GroupId":"G","MsgSeq":1,"MsgBody":[]`
	for _, tc := range []struct {
		name, fields string
		want         int64
	}{
		{"EventTime number wins", `,"EventTime":1670574414123,"MsgTime":1490686222`, 1670574414123},
		{"EventTime string wins", `,"EventTime":"1670574414123","MsgTime":1490686222`, 1670574414123},
		{"MsgTime in seconds", `,"MsgTime":1490686222`, 1490686222000},
		{"receive time last", ``, received.UnixMilli()},
		{"zero EventTime is absent", `,"EventTime":0,"MsgTime":5`, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, _, err := Parse(req, []byte(`{`+base+tc.fields+`}`))
			require.NoError(t, err)
			assert.Equal(t, tc.want, ev.Time)
		})
	}
}

func TestParseIdentity(t *testing.T) {
	req := Request{App: "1", Command: CommandGroupRecall, Received: received}
	id := func(app, body string) string {
		r := req
		r.App = app
		ev, _, err := Parse(r, []byte(body))
		require.NoError(t, err)
		return ev.ID
	}
	a := id("1", `{"GroupId":"G","MsgSeqList":[{"MsgSeq":1},{"MsgSeq":2}]}`)
	assert.Equal(t, a, id("1", `{"GroupId":"G","MsgSeqList":[{"MsgSeq":2},{"MsgSeq":1}],"EventTime":5}`),
		"a retry is the same event, whatever the order and time")
	assert.NotEqual(t, a, id("2", `{"GroupId":"G","MsgSeqList":[{"MsgSeq":1},{"MsgSeq":2}]}`), "another app")
	assert.NotEqual(t, a, id("1", `{"GroupId":"H","MsgSeqList":[{"MsgSeq":1},{"MsgSeq":2}]}`), "another group")
	assert.NotEqual(t, a, id("1", `{"GroupId":"G","MsgSeqList":[{"MsgSeq":1}]}`), "other messages")

	send, _, err := Parse(Request{App: "1", Command: CommandGroupSend}, []byte(`{"GroupId":"G","MsgSeq":1,"MsgBody":[]}`))
	require.NoError(t, err)
	recall, _, err := Parse(Request{App: "1", Command: CommandGroupRecall}, []byte(`{"GroupId":"G","MsgSeqList":[{"MsgSeq":1}]}`))
	require.NoError(t, err)
	assert.NotEqual(t, send.ID, recall.ID, "sending and recalling a message are two events")
}

func TestParseSelfMessage(t *testing.T) {
	_, channels, err := Parse(Request{App: "1", Command: CommandC2CWithdraw},
		[]byte(`{"From_Account":"me","To_Account":"me","MsgKey":"k"}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"user:me", "app"}, channels, "one channel, not the same one twice")
}

// Every way a body can be wrong gets a 400 that says what is wrong.
func TestParseRejects(t *testing.T) {
	long := strings.Repeat("g", maxIDLen+1)
	for _, tc := range []struct {
		name, cmd, body, want string
	}{
		{"empty", CommandGroupSend, ``, "not a JSON object"},
		{"array", CommandGroupSend, `[]`, "not a JSON object"},
		{"null", CommandGroupSend, `null`, "not a JSON object"},
		{"string", CommandGroupSend, `"x"`, "not a JSON object"},
		{"truncated", CommandGroupSend, `{"GroupId":"G"`, "not valid JSON"},
		{"trailing garbage", CommandGroupSend, `{"GroupId":"G","MsgSeq":1,"MsgBody":[]} x`, "not valid JSON"},
		{"command mismatch", CommandGroupSend, `{"CallbackCommand":"Group.CallbackAfterRecallMsg"}`, "differs"},
		{"command wrong type", CommandGroupSend, `{"CallbackCommand":1}`, "CallbackCommand 1 in the body differs"},
		{"keys are case-sensitive", CommandGroupSend, `{"groupid":"G","MsgSeq":1,"MsgBody":[]}`, "GroupId: required"},
		{"group send GroupId null", CommandGroupSend, `{"GroupId":null,"MsgSeq":1,"MsgBody":[]}`, "GroupId: required"},
		{"group send no GroupId", CommandGroupSend, `{"MsgSeq":1,"MsgBody":[]}`, "GroupId: required"},
		{"group send empty GroupId", CommandGroupSend, `{"GroupId":"","MsgSeq":1,"MsgBody":[]}`, "GroupId: must not be empty"},
		{"group send long GroupId", CommandGroupSend, `{"GroupId":"` + long + `","MsgSeq":1,"MsgBody":[]}`, "GroupId: longer than"},
		{"group send GroupId number", CommandGroupSend, `{"GroupId":5,"MsgSeq":1,"MsgBody":[]}`, "GroupId: want string, got number"},
		{"group send no MsgSeq", CommandGroupSend, `{"GroupId":"G","MsgBody":[]}`, "MsgSeq: required"},
		{"group send MsgSeq string", CommandGroupSend, `{"GroupId":"G","MsgSeq":"1","MsgBody":[]}`, "MsgSeq: want integer, got string"},
		{"group send MsgSeq fraction", CommandGroupSend, `{"GroupId":"G","MsgSeq":1.5,"MsgBody":[]}`, "MsgSeq: want integer"},
		{"group send no MsgBody", CommandGroupSend, `{"GroupId":"G","MsgSeq":1}`, "MsgBody: required"},
		{"group send MsgBody object", CommandGroupSend, `{"GroupId":"G","MsgSeq":1,"MsgBody":{}}`, "MsgBody: want array"},
		{"recall no GroupId", CommandGroupRecall, `{"MsgSeqList":[{"MsgSeq":1}]}`, "GroupId: required"},
		{"recall no list", CommandGroupRecall, `{"GroupId":"G"}`, "MsgSeqList: required"},
		{"recall empty list", CommandGroupRecall, `{"GroupId":"G","MsgSeqList":[]}`, "MsgSeqList: required"},
		{"recall list object", CommandGroupRecall, `{"GroupId":"G","MsgSeqList":{"MsgSeq":1}}`, "MsgSeqList: want array"},
		{"recall list of numbers", CommandGroupRecall, `{"GroupId":"G","MsgSeqList":[130]}`, "MsgSeqList: want array of objects"},
		{"recall entry without seq", CommandGroupRecall, `{"GroupId":"G","MsgSeqList":[{"MsgId":"x"}]}`, "MsgSeqList[0].MsgSeq: required"},
		{"recall seq string", CommandGroupRecall, `{"GroupId":"G","MsgSeqList":[{"MsgSeq":"1"}]}`, "MsgSeqList[0].MsgSeq: want integer, got string"},
		{"withdraw no From", CommandC2CWithdraw, `{"To_Account":"b","MsgKey":"k"}`, "From_Account: required"},
		{"withdraw no To", CommandC2CWithdraw, `{"From_Account":"a","MsgKey":"k"}`, "To_Account: required"},
		{"withdraw no MsgKey", CommandC2CWithdraw, `{"From_Account":"a","To_Account":"b"}`, "MsgKey: required"},
		{"c2c send no key", CommandC2CSend, `{"From_Account":"a","To_Account":"b","MsgBody":[]}`, "MsgKey: required"},
		{"c2c send no body", CommandC2CSend, `{"From_Account":"a","To_Account":"b","MsgKey":"k"}`, "MsgBody: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, channels, err := Parse(Request{App: "1", Command: tc.cmd}, []byte(tc.body))
			var bad *BadRequestError
			require.True(t, errors.As(err, &bad), "want a *BadRequestError, got %v", err)
			assert.Contains(t, bad.Reason, tc.want)
			assert.Nil(t, ev)
			assert.Nil(t, channels)
		})
	}
}

// An optional field of an unexpected type is left out; the event is kept.
func TestParseLenientOptionalFields(t *testing.T) {
	ev, _, err := Parse(Request{App: "1", Command: CommandC2CSend, Received: received}, []byte(`{
		"From_Account":"a","To_Account":"b","MsgKey":"k","MsgBody":[],
		"MsgRandom":"x","UnreadMsgNum":"7","SendMsgResult":"1","EventTime":true,"MsgTime":"soon",
		"CloudCustomData":{"a":1},"MsgId":5,"OnlineOnlyFlag":"1"}`))
	require.NoError(t, err)
	data, err := ev.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+ev.ID+`","type":"c2c.message.sent","app":"1","time":`+strconv.FormatInt(received.UnixMilli(), 10)+`,
		"from":"a","to":"b","messages":[{"key":"k"}],"body":[],"command":"C2C.CallbackAfterSendMsg","received":`+strconv.FormatInt(received.UnixMilli(), 10)+`}`, string(data))
}

func TestParseUnknownCommand(t *testing.T) {
	_, _, err := Parse(Request{App: "1", Command: "State.StateChange"}, []byte(`{"Info":{}}`))
	assert.ErrorIs(t, err, ErrUnknownCommand)
	// Fields named like ours, of other types, are no concern of ours.
	_, _, err = Parse(Request{App: "1", Command: "Some.Cmd"}, []byte(`{"CallbackCommand":"Some.Cmd","Random":"abc","MsgBody":{},"GroupId":7}`))
	assert.ErrorIs(t, err, ErrUnknownCommand)
	_, _, err = Parse(Request{App: "1", Command: "State.StateChange"}, []byte(`[1]`))
	var bad *BadRequestError
	assert.ErrorAs(t, err, &bad, "an unknown command must still send a JSON object")
}
