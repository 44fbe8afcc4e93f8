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

// goldenSources says where each golden input comes from: the IM's webhook
// page whose request example it is, with what differs from the example.
// The examples' // comments are left out (they are not JSON).
var goldenSources = map[string]string{
	// https://www.tencentcloud.com/document/product/1047/34375
	"group_send": "After a Group Message Is Sent",
	// https://www.tencentcloud.com/document/product/1047/34375, with the
	// TopicId, MsgId and EventTime of the topic schema version.
	"group_send_topic": "After a Group Message Is Sent, topic version",
	// https://www.tencentcloud.com/document/product/1047/46979, the three
	// versions: without MsgId, with MsgId, with TopicId and EventTime.
	"group_recall":       "Callback After Recalling Group Messages",
	"group_recall_msgid": "Callback After Recalling Group Messages, MsgId version",
	"group_recall_topic": "Callback After Recalling Group Messages, topic version",
	// https://www.tencentcloud.com/document/product/1047/34365; the failed
	// one with a non-zero SendMsgResult.
	"c2c_send":        "After a One-to-One Message Is Sent",
	"c2c_send_failed": "After a One-to-One Message Is Sent, not delivered",
	// https://www.tencentcloud.com/document/product/1047/43466
	"c2c_withdraw": "After A One-to-One Message Is Recalled",
	// https://www.tencentcloud.com/document/product/1047/34357
	"state_change": "Status Change Webhooks",
	// https://www.tencentcloud.com/document/product/1047/34372: the
	// example without EventTime, and the current one with EventTime as a
	// decimal string (https://cloud.tencent.com/document/product/269/1667
	// gives it as a number).
	"group_member_join":           "After a User Joins a Group",
	"group_member_join_eventtime": "After a User Joins a Group, EventTime version",
	// https://www.tencentcloud.com/document/product/1047/34373, likewise.
	"group_member_exit":           "After a Member Quits a Group",
	"group_member_exit_eventtime": "After a Member Quits a Group, EventTime version",
	// https://www.tencentcloud.com/document/product/1047/43465; the EventTime
	// version is https://cloud.tencent.com/document/product/269/61696, whose
	// example has EventTime (a number) and no UnreadMsgNum.
	"c2c_msg_report":           "After a One-to-One message Is Marked as Read",
	"c2c_msg_report_eventtime": "After a One-to-One message Is Marked as Read, EventTime version",
	// https://www.tencentcloud.com/document/product/1047/60395, with the
	// comma the example lacks after the first "UnreadNum": 6.
	"group_read_receipt": "Callback After Read Receipt",
	// https://www.tencentcloud.com/document/product/1047/34377
	"group_destroyed": "After a Group Is Disbanded",
	// https://www.tencentcloud.com/document/product/1047/34378: the current
	// example, and the one that changes every basic field and custom
	// fields.
	"group_info_changed":        "After Group Profile Is Modified",
	"group_info_changed_custom": "After Group Profile Is Modified, custom fields",
	// https://www.tencentcloud.com/document/product/1047/34369
	"group_created": "After a Group Is Created",
	// https://www.tencentcloud.com/document/product/1047/60393 names the
	// member Member_Account; its Chinese page,
	// https://cloud.tencent.com/document/product/269/105353,
	// Modified_Account.
	"group_member_changed":          "Callback After Group Member Profile Changed",
	"group_member_changed_modified": "Callback After Group Member Profile Changed, Chinese page",
	// https://www.tencentcloud.com/document/product/1047/60396
	"group_owner_changed": "Callback After the Group Owner Changed",
	// https://www.tencentcloud.com/document/product/1047/60394
	"group_attr_changed": "Callback After Group Attribute Changed",
	// https://www.tencentcloud.com/document/product/1047/48734, with the
	// EventCause its Chinese version adds
	// (https://cloud.tencent.com/document/product/269/76156).
	"group_member_state": "Webhook for Online and Offline Status of Audio-Video Group Members",
	// https://www.tencentcloud.com/document/product/1047/49464
	"topic_created": "After a Topic Is Created",
	// https://www.tencentcloud.com/document/product/1047/49465
	"topic_destroyed": "After a Topic Is Deleted",
	// https://www.tencentcloud.com/document/product/1047/49466, whose
	// example names no TopicId.
	"topic_info_changed": "Topic Profile Change Webhook",
	// https://cloud.tencent.com/document/product/269/129193
	"group_msg_modified": "Callback After a Group Message Is Edited",
	// https://cloud.tencent.com/document/product/269/128224
	"c2c_msg_modified": "Callback After a One-to-One Message Is Edited",
	// https://www.tencentcloud.com/document/product/1047/76007, its three
	// examples: set, delete, clear.
	"group_msg_extension_set":    "After a Group Message Extension Is Configured, set",
	"group_msg_extension_delete": "After a Group Message Extension Is Configured, delete",
	"group_msg_extension_clear":  "After a Group Message Extension Is Configured, clear",
	// https://www.tencentcloud.com/document/product/1047/76006, its set
	// and delete examples.
	"c2c_msg_extension_set":    "After a One-to-One Message Extension Is Configured, set",
	"c2c_msg_extension_delete": "After a One-to-One Message Extension Is Configured, delete",
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
			require.Contains(t, goldenSources, name, "say in goldenSources which IM page the example is from")
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
		{"state no Info", CommandStateChange, `{"EventTime":1}`, "Info: required object"},
		{"state Info null", CommandStateChange, `{"Info":null}`, "Info: required object"},
		{"state Info array", CommandStateChange, `{"Info":[{"To_Account":"u","Action":"Login"}]}`, "Info: want object, got array"},
		{"state Info string", CommandStateChange, `{"Info":"u"}`, "Info: want object, got string"},
		{"state no To_Account", CommandStateChange, `{"Info":{"Action":"Login"}}`, "Info.To_Account: required"},
		{"state To_Account number", CommandStateChange, `{"Info":{"To_Account":7,"Action":"Login"}}`, "Info.To_Account: want string, got number"},
		{"state To_Account empty", CommandStateChange, `{"Info":{"To_Account":"","Action":"Login"}}`, "Info.To_Account: must not be empty"},
		{"state To_Account long", CommandStateChange, `{"Info":{"To_Account":"` + long + `","Action":"Login"}}`, "Info.To_Account: longer than"},
		{"state no Action", CommandStateChange, `{"Info":{"To_Account":"u"}}`, "Info.Action: required"},
		{"state Action number", CommandStateChange, `{"Info":{"To_Account":"u","Action":1}}`, "Info.Action: want string, got number"},
		{"join no GroupId", CommandGroupMemberJoin, `{"NewMemberList":[{"Member_Account":"a"}]}`, "GroupId: required"},
		{"join GroupId object", CommandGroupMemberJoin, `{"GroupId":{},"NewMemberList":[{"Member_Account":"a"}]}`, "GroupId: want string, got object"},
		{"join no list", CommandGroupMemberJoin, `{"GroupId":"G"}`, "NewMemberList: required non-empty array"},
		{"join empty list", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":[]}`, "NewMemberList: required non-empty array"},
		{"join list object", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":{"Member_Account":"a"}}`, "NewMemberList: want array of objects, got object"},
		{"join list of strings", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":["a"]}`, "NewMemberList: want array of objects"},
		{"join member without account", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":[{"Member_Account":"a"},{}]}`, "NewMemberList[1].Member_Account: required"},
		{"join member account number", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":[{"Member_Account":1}]}`, "NewMemberList[0].Member_Account: want string, got number"},
		{"join member account empty", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":[{"Member_Account":""}]}`, "NewMemberList[0].Member_Account: must not be empty"},
		{"join too many members", CommandGroupMemberJoin, `{"GroupId":"G","NewMemberList":[` + strings.Repeat(`{"Member_Account":"a"},`, maxMembers) + `{"Member_Account":"b"}]}`, "NewMemberList: more than 1000 members"},
		{"exit no GroupId", CommandGroupMemberExit, `{"ExitMemberList":[{"Member_Account":"a"}]}`, "GroupId: required"},
		{"exit no list", CommandGroupMemberExit, `{"GroupId":"G","ExitType":"Quit"}`, "ExitMemberList: required non-empty array"},
		{"exit list string", CommandGroupMemberExit, `{"GroupId":"G","ExitMemberList":"a"}`, "ExitMemberList: want array of objects, got string"},
		{"exit member account null", CommandGroupMemberExit, `{"GroupId":"G","ExitMemberList":[{"Member_Account":null}]}`, "ExitMemberList[0].Member_Account: required"},
		{"report no Report_Account", CommandC2CReport, `{"Peer_Account":"b","LastReadTime":1}`, "Report_Account: required"},
		{"report Report_Account number", CommandC2CReport, `{"Report_Account":1,"Peer_Account":"b","LastReadTime":1}`, "Report_Account: want string, got number"},
		{"report no Peer_Account", CommandC2CReport, `{"Report_Account":"a","LastReadTime":1}`, "Peer_Account: required"},
		{"report no LastReadTime", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b"}`, "LastReadTime: required integer"},
		{"report LastReadTime string", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":"1614754606"}`, "LastReadTime: want integer, got string"},
		{"report LastReadTime fraction", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":1.5}`, "LastReadTime: want integer"},
		{"report LastReadTime negative", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":-1}`, "LastReadTime: -1 is not a time in seconds"},
		{"report LastReadTime overflows as ms", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":9223372036854776}`, "is not a time in seconds"},
		{"receipt no GroupId", CommandGroupReadReceipt, `{"GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":1,"UnreadNum":0}]}`, "GroupId: required"},
		{"receipt no list", CommandGroupReadReceipt, `{"GroupId":"G"}`, "GroupMsgReceiptList: required non-empty array"},
		{"receipt empty list", CommandGroupReadReceipt, `{"GroupId":"G","GroupMsgReceiptList":[]}`, "GroupMsgReceiptList: required non-empty array"},
		{"receipt list number", CommandGroupReadReceipt, `{"GroupId":"G","GroupMsgReceiptList":1}`, "GroupMsgReceiptList: want array of objects, got number"},
		{"receipt no MsgSeq", CommandGroupReadReceipt, `{"GroupId":"G","GroupMsgReceiptList":[{"ReadNum":1,"UnreadNum":0}]}`, "GroupMsgReceiptList[0].MsgSeq: required"},
		{"receipt no ReadNum", CommandGroupReadReceipt, `{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":1,"UnreadNum":0}]}`, "GroupMsgReceiptList[0].ReadNum: required"},
		{"receipt UnreadNum string", CommandGroupReadReceipt, `{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":1,"UnreadNum":0},{"MsgSeq":2,"ReadNum":1,"UnreadNum":"6"}]}`, "GroupMsgReceiptList[1].UnreadNum: want integer, got string"},
		{"destroyed no GroupId", CommandGroupDestroyed, `{"Owner_Account":"o"}`, "GroupId: required"},
		{"destroyed GroupId array", CommandGroupDestroyed, `{"GroupId":["G"]}`, "GroupId: want string, got array"},
		{"info no GroupId", CommandGroupInfoChanged, `{"Name":"n"}`, "GroupId: required"},
		{"info GroupId boolean", CommandGroupInfoChanged, `{"GroupId":true,"Name":"n"}`, "GroupId: want string, got boolean"},
		{"modify no GroupId", CommandGroupModify, `{"MsgSeq":1,"MsgBody":[]}`, "GroupId: required"},
		{"modify no MsgSeq", CommandGroupModify, `{"GroupId":"G","MsgBody":[]}`, "MsgSeq: required"},
		{"modify MsgSeq string", CommandGroupModify, `{"GroupId":"G","MsgSeq":"53","MsgBody":[]}`, "MsgSeq: want integer, got string"},
		{"modify no MsgBody", CommandGroupModify, `{"GroupId":"G","MsgSeq":1}`, "MsgBody: required"},
		{"modify MsgBody string", CommandGroupModify, `{"GroupId":"G","MsgSeq":1,"MsgBody":"x"}`, "MsgBody: want array, got string"},
		{"c2c modify no From", CommandC2CModify, `{"To_Account":"b","MsgKey":"k","MsgBody":[]}`, "From_Account: required"},
		{"c2c modify no To", CommandC2CModify, `{"From_Account":"a","MsgKey":"k","MsgBody":[]}`, "To_Account: required"},
		{"c2c modify no key", CommandC2CModify, `{"From_Account":"a","To_Account":"b","MsgBody":[]}`, "MsgKey: required"},
		{"c2c modify no MsgBody", CommandC2CModify, `{"From_Account":"a","To_Account":"b","MsgKey":"k"}`, "MsgBody: required"},
		{"extension no GroupId", CommandGroupExtension, `{"MsgSeq":10,"OperateType":1,"Seq":1}`, "GroupId: required"},
		{"extension no MsgSeq", CommandGroupExtension, `{"GroupId":"G","OperateType":1,"Seq":1}`, "MsgSeq: required"},
		{"extension no OperateType", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"Seq":1}`, "OperateType: required integer"},
		{"extension OperateType string", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":"1","Seq":1}`, "OperateType: want integer, got string"},
		{"extension no Seq", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1}`, "Seq: required integer"},
		{"extension Seq fraction", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1,"Seq":1.5}`, "Seq: want integer"},
		{"extension list object", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1,"Seq":1,"ExtensionList":{}}`, "ExtensionList: want array of objects, got object"},
		{"extension entry without Key", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1,"Seq":1,"ExtensionList":[{"Value":"v"}]}`, "ExtensionList[0].Key: required"},
		{"extension Key number", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1,"Seq":1,"ExtensionList":[{"Key":"a"},{"Key":2}]}`, "ExtensionList[1].Key: want string, got number"},
		{"extension too many keys", CommandGroupExtension, `{"GroupId":"G","MsgSeq":10,"OperateType":1,"Seq":1,"ExtensionList":[` + strings.Repeat(`{"Key":"a"},`, maxMembers) + `{"Key":"b"}]}`, "ExtensionList: more than 1000 keys"},
		{"c2c extension no key", CommandC2CExtension, `{"From_Account":"a","To_Account":"b","OperateType":1,"Seq":1}`, "MsgKey: required"},
		{"c2c extension no Seq", CommandC2CExtension, `{"From_Account":"a","To_Account":"b","MsgKey":"k","OperateType":3}`, "Seq: required integer"},
		{"create no GroupId", CommandGroupCreate, `{"Owner_Account":"o"}`, "GroupId: required"},
		{"create GroupId number", CommandGroupCreate, `{"GroupId":7}`, "GroupId: want string, got number"},
		{"create Owner number", CommandGroupCreate, `{"GroupId":"G","Owner_Account":1}`, "Owner_Account: want string, got number"},
		{"create Owner long", CommandGroupCreate, `{"GroupId":"G","Owner_Account":"` + long + `"}`, "Owner_Account: longer than"},
		{"create MemberList object", CommandGroupCreate, `{"GroupId":"G","MemberList":{"Member_Account":"a"}}`, "MemberList: want array of objects, got object"},
		{"create member without account", CommandGroupCreate, `{"GroupId":"G","MemberList":[{}]}`, "MemberList[0].Member_Account: required"},
		{"create too many members", CommandGroupCreate, `{"GroupId":"G","MemberList":[` + strings.Repeat(`{"Member_Account":"a"},`, maxMembers) + `{"Member_Account":"b"}]}`, "MemberList: more than 1000 members"},
		{"member field no GroupId", CommandGroupMemberChanged, `{"Member_Account":"m","Role":"Admin"}`, "GroupId: required"},
		{"member field no member", CommandGroupMemberChanged, `{"GroupId":"G","Role":"Admin"}`, "Member_Account: required"},
		{"member field member number", CommandGroupMemberChanged, `{"GroupId":"G","Member_Account":1}`, "Member_Account: want string, got number"},
		{"member field Modified_Account empty", CommandGroupMemberChanged, `{"GroupId":"G","Modified_Account":""}`, "Modified_Account: must not be empty"},
		{"owner no GroupId", CommandGroupOwnerChanged, `{"NewOwner_Account":"n"}`, "GroupId: required"},
		{"owner no new owner", CommandGroupOwnerChanged, `{"GroupId":"G","OldOwner_Account":"o"}`, "NewOwner_Account: required"},
		{"owner old owner array", CommandGroupOwnerChanged, `{"GroupId":"G","NewOwner_Account":"n","OldOwner_Account":["o"]}`, "OldOwner_Account: want string, got array"},
		{"topic create no GroupId", CommandTopicCreate, `{"TopicId":"T"}`, "GroupId: required"},
		{"topic create no TopicId", CommandTopicCreate, `{"GroupId":"G","Name":"n"}`, "TopicId: required"},
		{"topic create TopicId empty", CommandTopicCreate, `{"GroupId":"G","TopicId":""}`, "TopicId: must not be empty"},
		{"topic destroyed no GroupId", CommandTopicDestroyed, `{"TopicIdList":["T"]}`, "GroupId: required"},
		{"topic destroyed no list", CommandTopicDestroyed, `{"GroupId":"G"}`, "TopicIdList: required non-empty array"},
		{"topic destroyed empty list", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":[]}`, "TopicIdList: required non-empty array"},
		{"topic destroyed list string", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":"T"}`, "TopicIdList: want array of strings, got string"},
		{"topic destroyed entry number", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":["T",1]}`, "TopicIdList[1]: want string, got number"},
		{"topic destroyed entry empty", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":[""]}`, "TopicIdList[0]: must not be empty"},
		{"topic destroyed entry long", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":["` + long + `"]}`, "TopicIdList[0]: longer than"},
		{"topic destroyed too many topics", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":[` + strings.Repeat(`"T",`, maxMembers) + `"U"]}`, "TopicIdList: more than 1000 topics"},
		{"topic changed no GroupId", CommandTopicInfoChanged, `{"Name":"n"}`, "GroupId: required"},
		{"topic changed TopicId object", CommandTopicInfoChanged, `{"GroupId":"G","TopicId":{}}`, "TopicId: want string, got object"},
		{"attrs no GroupId", CommandGroupAttrChanged, `{"OptionType":"set"}`, "GroupId: required"},
		{"attrs no OptionType", CommandGroupAttrChanged, `{"GroupId":"G","GroupAttr":[]}`, "OptionType: required"},
		{"attrs OptionType number", CommandGroupAttrChanged, `{"GroupId":"G","OptionType":1}`, "OptionType: want string, got number"},
		{"attrs too many", CommandGroupAttrChanged, `{"GroupId":"G","OptionType":"set","GroupAttr":[` + strings.Repeat(`{"key":"k","value":"v"},`, maxMembers) + `{"key":"l"}]}`, "GroupAttr: more than 1000 attributes"},
		{"member state no GroupId", CommandMemberStateChange, `{"EventType":"Online","MemberList":[{"Member_Account":"a"}]}`, "GroupId: required"},
		{"member state no EventType", CommandMemberStateChange, `{"GroupId":"G","MemberList":[{"Member_Account":"a"}]}`, "EventType: required"},
		{"member state EventType number", CommandMemberStateChange, `{"GroupId":"G","EventType":1,"MemberList":[{"Member_Account":"a"}]}`, "EventType: want string, got number"},
		{"member state no MemberList", CommandMemberStateChange, `{"GroupId":"G","EventType":"Online"}`, "MemberList: required non-empty array"},
		{"member state empty MemberList", CommandMemberStateChange, `{"GroupId":"G","EventType":"Offline","MemberList":[]}`, "MemberList: required non-empty array"},
		{"member state member empty", CommandMemberStateChange, `{"GroupId":"G","EventType":"Offline","MemberList":[{"Member_Account":""}]}`, "MemberList[0].Member_Account: must not be empty"},
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

// A kind of change the IM may add later (an OperateType or EventType no
// page names) is not published, and not refused either.
func TestParseUnknownKindOfChange(t *testing.T) {
	for _, tc := range []struct{ cmd, body string }{
		{CommandGroupExtension, `{"GroupId":"G","MsgSeq":1,"OperateType":4,"Seq":1}`},
		{CommandC2CExtension, `{"From_Account":"a","To_Account":"b","MsgKey":"k","OperateType":0,"Seq":1}`},
		{CommandMemberStateChange, `{"GroupId":"G","EventType":"Away","MemberList":[{"Member_Account":"a"}]}`},
	} {
		_, _, err := Parse(Request{App: "1", Command: tc.cmd}, []byte(tc.body))
		assert.ErrorIs(t, err, ErrUnknownCommand, tc.body)
	}
}

func TestParseUnknownCommand(t *testing.T) {
	_, _, err := Parse(Request{App: "1", Command: "Group.CallbackAfterGroupFull"}, []byte(`{"GroupId":"G"}`))
	assert.ErrorIs(t, err, ErrUnknownCommand)
	// Fields named like ours, of other types, are no concern of ours.
	_, _, err = Parse(Request{App: "1", Command: "Some.Cmd"}, []byte(`{"CallbackCommand":"Some.Cmd","Random":"abc","MsgBody":{},"GroupId":7}`))
	assert.ErrorIs(t, err, ErrUnknownCommand)
	_, _, err = Parse(Request{App: "1", Command: "Group.CallbackAfterGroupFull"}, []byte(`[1]`))
	var bad *BadRequestError
	assert.ErrorAs(t, err, &bad, "an unknown command must still send a JSON object")
}

// What makes two callbacks of the commands without a message identity the
// same event (a retry, published once) or two events (each published).
func TestParseIdentityLiveCommands(t *testing.T) {
	const (
		login     = `{"EventTime":1629883332497,"Info":{"Action":"Login","To_Account":"u","Reason":"Register"}}`
		join      = `{"GroupId":"G","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}],"EventTime":"1670574414123"}`
		exit      = `{"GroupId":"G","ExitType":"Kicked","ExitMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}],"EventTime":"1670574414123"}`
		report    = `{"Report_Account":"a","Peer_Account":"b","LastReadTime":1614754606,"UnreadMsgNum":7}`
		receipt   = `{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":1,"UnreadNum":6},{"MsgSeq":2,"ReadNum":1,"UnreadNum":6}]}`
		destroyed = `{"GroupId":"G","EventTime":"1670574414123"}`
		info      = `{"GroupId":"G","Operator_Account":"o","Notification":"n","EventTime":"1670574414123"}`
		edit      = `{"GroupId":"G","MsgSeq":53,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"v2"}}],"EventTime":1772762975589}`
		c2cEdit   = `{"From_Account":"jared","To_Account":"Jonh","MsgKey":"609_690_1769771529","MsgBody":[],"EventTime":1769772027036}`
		ext       = `{"GroupId":"G","MsgSeq":10,"OperateType":1,"ExtensionList":[{"Key":"k","Value":"v","Seq":56}],"Seq":56,"EventTime":1764688294360}`
		c2cExt    = `{"From_Account":"a","To_Account":"b","MsgKey":"k","OperateType":1,"ExtensionList":[{"Key":"k","Value":"v","Seq":1}],"Seq":1}`
		created   = `{"GroupId":"G","Owner_Account":"o","MemberList":[{"Member_Account":"m"}],"EventTime":"1670574414123"}`
		field     = `{"GroupId":"G","Member_Account":"m","Role":"Admin","EventTime":"1670574414123"}`
		owner     = `{"GroupId":"G","OldOwner_Account":"o","NewOwner_Account":"n","EventTime":"1670574414123"}`
		topic     = `{"GroupId":"G","TopicId":"T","Name":"n","EventTime":"1670574414123"}`
		topicInfo = `{"GroupId":"G","TopicId":"T","Name":"n","EventTime":"1670574414123"}`
		attrs     = `{"GroupId":"G","OptionType":"set","GroupAttr":[{"key":"a","value":"1"},{"key":"b","value":"2"}],"EventTime":"1670574414123"}`
		state     = `{"GroupId":"G","EventType":"Offline","EventCause":"HeartbeatInterrupt","MemberList":[{"Member_Account":"a"}],"EventTime":1}`
	)
	later := received.Add(3 * time.Second)
	for _, tc := range []struct {
		name  string
		cmd   string
		a, b  string
		later bool // b arrives 3 s after a
		same  bool
	}{
		{"status retry", CommandStateChange, login, login, true, true},
		{"status retry, devices listed again", CommandStateChange, login,
			`{"EventTime":1629883332497,"Info":{"Action":"Login","To_Account":"u","Reason":"Register"},"KickedDevice":[{"Platform":"Web"}]}`, true, true},
		{"status: the next login", CommandStateChange, login,
			`{"EventTime":1629883999000,"Info":{"Action":"Login","To_Account":"u","Reason":"Register"}}`, false, false},
		{"status: a logout at the same time", CommandStateChange, login,
			`{"EventTime":1629883332497,"Info":{"Action":"Logout","To_Account":"u","Reason":"Unregister"}}`, false, false},
		{"status: another user", CommandStateChange, login,
			`{"EventTime":1629883332497,"Info":{"Action":"Login","To_Account":"v","Reason":"Register"}}`, false, false},
		{"status without EventTime is never a repeat", CommandStateChange,
			`{"Info":{"Action":"Login","To_Account":"u"}}`, `{"Info":{"Action":"Login","To_Account":"u"}}`, true, false},
		{"join retry, members in another order", CommandGroupMemberJoin, join,
			`{"GroupId":"G","JoinType":"Apply","NewMemberList":[{"Member_Account":"b"},{"Member_Account":"a"}],"EventTime":1670574414123}`, true, true},
		{"join: the same members again later", CommandGroupMemberJoin, join,
			`{"GroupId":"G","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}],"EventTime":"1670574999000"}`, true, false},
		{"join: other members", CommandGroupMemberJoin, join,
			`{"GroupId":"G","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"}],"EventTime":"1670574414123"}`, false, false},
		{"join: another group", CommandGroupMemberJoin, join,
			`{"GroupId":"H","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}],"EventTime":"1670574414123"}`, false, false},
		{"join without EventTime is never a repeat", CommandGroupMemberJoin,
			`{"GroupId":"G","NewMemberList":[{"Member_Account":"a"}]}`, `{"GroupId":"G","NewMemberList":[{"Member_Account":"a"}]}`, true, false},
		{"exit retry", CommandGroupMemberExit, exit, exit, true, true},
		{"exit: kicked and quit are two", CommandGroupMemberExit, exit,
			`{"GroupId":"G","ExitType":"Quit","ExitMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}],"EventTime":"1670574414123"}`, false, false},
		{"read retry, with EventTime or not", CommandC2CReport, report,
			`{"Report_Account":"a","Peer_Account":"b","LastReadTime":1614754606,"EventTime":1670574414123}`, true, true},
		{"read: further", CommandC2CReport, report, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":1614754700}`, false, false},
		{"read: the peer reads", CommandC2CReport, report, `{"Report_Account":"b","Peer_Account":"a","LastReadTime":1614754606}`, false, false},
		{"receipt retry, another order", CommandGroupReadReceipt, receipt,
			`{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":2,"ReadNum":1,"UnreadNum":6},{"MsgSeq":1,"ReadNum":1,"UnreadNum":6}],"EventTime":"1670574414123"}`, true, true},
		{"receipt: one more reader", CommandGroupReadReceipt, receipt,
			`{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":2,"UnreadNum":5},{"MsgSeq":2,"ReadNum":1,"UnreadNum":6}]}`, false, false},
		{"receipt: another topic", CommandGroupReadReceipt, receipt,
			`{"GroupId":"G","TopicId":"T","GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":1,"UnreadNum":6},{"MsgSeq":2,"ReadNum":1,"UnreadNum":6}]}`, false, false},
		{"destroyed retry", CommandGroupDestroyed, destroyed, destroyed, true, true},
		{"destroyed: the id used again and destroyed again", CommandGroupDestroyed, destroyed, `{"GroupId":"G","EventTime":"1670574999000"}`, true, false},
		{"info retry", CommandGroupInfoChanged, info, info, true, true},
		{"info: another change at the same time", CommandGroupInfoChanged, info,
			`{"GroupId":"G","Operator_Account":"o","Name":"n","EventTime":"1670574414123"}`, false, false},
		{"info: cleared is not absent", CommandGroupInfoChanged, info,
			`{"GroupId":"G","Operator_Account":"o","Notification":"","EventTime":"1670574414123"}`, false, false},
		{"edit retry", CommandGroupModify, edit, edit, true, true},
		{"edit: a second edit of the message", CommandGroupModify, edit,
			`{"GroupId":"G","MsgSeq":53,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"v3"}}],"EventTime":1772762999000}`, true, false},
		{"edit: the same text again is still a second edit", CommandGroupModify, edit,
			`{"GroupId":"G","MsgSeq":53,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"v2"}}],"EventTime":1772762999000}`, true, false},
		{"edit: another message at the same time", CommandGroupModify, edit,
			`{"GroupId":"G","MsgSeq":54,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"v2"}}],"EventTime":1772762975589}`, false, false},
		{"edit: the same seq in a topic", CommandGroupModify, edit,
			`{"GroupId":"G","TopicId":"T","MsgSeq":53,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"v2"}}],"EventTime":1772762975589}`, false, false},
		{"edit without EventTime is never a repeat", CommandGroupModify,
			`{"GroupId":"G","MsgSeq":53,"MsgBody":[]}`, `{"GroupId":"G","MsgSeq":53,"MsgBody":[]}`, true, false},
		{"c2c edit retry", CommandC2CModify, c2cEdit, c2cEdit, true, true},
		{"c2c edit: a second edit", CommandC2CModify, c2cEdit,
			`{"From_Account":"jared","To_Account":"Jonh","MsgKey":"609_690_1769771529","MsgBody":[],"EventTime":1769772099000}`, true, false},
		{"c2c edit: another message", CommandC2CModify, c2cEdit,
			`{"From_Account":"jared","To_Account":"Jonh","MsgKey":"610_691_1769771530","MsgBody":[],"EventTime":1769772027036}`, false, false},
		{"extension retry", CommandGroupExtension, ext, ext, true, true},
		{"extension: the next change of the message", CommandGroupExtension, ext,
			`{"GroupId":"G","MsgSeq":10,"OperateType":2,"ExtensionList":[{"Key":"k","Value":"","Seq":57}],"Seq":57,"EventTime":1764688312045}`, true, false},
		{"extension: the same version of another message", CommandGroupExtension, ext,
			`{"GroupId":"G","MsgSeq":11,"OperateType":1,"ExtensionList":[{"Key":"k","Value":"v","Seq":56}],"Seq":56,"EventTime":1764688294360}`, false, false},
		{"extension retry, sent later", CommandGroupExtension, ext,
			`{"GroupId":"G","MsgSeq":10,"OperateType":1,"ExtensionList":[{"Key":"k","Value":"v","Seq":56}],"Seq":56,"EventTime":1764688299999}`, true, true},
		{"c2c extension retry", CommandC2CExtension, c2cExt, c2cExt, true, true},
		{"c2c extension: the next change", CommandC2CExtension, c2cExt,
			`{"From_Account":"a","To_Account":"b","MsgKey":"k","OperateType":3,"Seq":2}`, true, false},
		{"created retry", CommandGroupCreate, created, created, true, true},
		{"created: the id used again", CommandGroupCreate, created, `{"GroupId":"G","Owner_Account":"o","EventTime":"1670574999000"}`, true, false},
		{"member field retry", CommandGroupMemberChanged, field, field, true, true},
		{"member field: the name card, not the role", CommandGroupMemberChanged, field,
			`{"GroupId":"G","Member_Account":"m","NameCard":"Admin","EventTime":"1670574414123"}`, false, false},
		{"member field: the name card cleared", CommandGroupMemberChanged, `{"GroupId":"G","Member_Account":"m","EventTime":"1"}`,
			`{"GroupId":"G","Member_Account":"m","NameCard":"","EventTime":"1"}`, false, false},
		{"owner retry", CommandGroupOwnerChanged, owner, owner, true, true},
		{"owner: passed back", CommandGroupOwnerChanged, owner,
			`{"GroupId":"G","OldOwner_Account":"n","NewOwner_Account":"o","EventTime":"1670574414123"}`, false, false},
		{"topic created retry", CommandTopicCreate, topic, topic, true, true},
		{"topic created retry without EventTime", CommandTopicCreate, `{"GroupId":"G","TopicId":"T"}`, `{"GroupId":"G","TopicId":"T"}`, true, true},
		{"topics destroyed retry without EventTime", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":["T"]}`, `{"GroupId":"G","TopicIdList":["T"]}`, true, true},
		{"topic created: another topic", CommandTopicCreate, topic, `{"GroupId":"G","TopicId":"T2","EventTime":"1670574414123"}`, false, false},
		{"topics destroyed retry, another order", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":["T1","T2"],"EventTime":"1"}`,
			`{"GroupId":"G","TopicIdList":["T2","T1"],"EventTime":"1"}`, true, true},
		{"topics destroyed: fewer", CommandTopicDestroyed, `{"GroupId":"G","TopicIdList":["T1","T2"],"EventTime":"1"}`,
			`{"GroupId":"G","TopicIdList":["T1"],"EventTime":"1"}`, false, false},
		{"topic changed retry", CommandTopicInfoChanged, topicInfo, topicInfo, true, true},
		{"topic changed: another topic", CommandTopicInfoChanged, topicInfo,
			`{"GroupId":"G","TopicId":"T2","Name":"n","EventTime":"1670574414123"}`, false, false},
		{"attrs retry, attributes in another order", CommandGroupAttrChanged, attrs,
			`{"GroupId":"G","OptionType":"set","GroupAttr":[{"key":"b","value":"2"},{"key":"a","value":"1"}],"EventTime":"1670574414123"}`, true, true},
		{"attrs: deleted, not set", CommandGroupAttrChanged, attrs,
			`{"GroupId":"G","OptionType":"delete","GroupAttr":[{"key":"a","value":"1"},{"key":"b","value":"2"}],"EventTime":"1670574414123"}`, false, false},
		{"member state retry", CommandMemberStateChange, state, state, true, true},
		{"member state: back online", CommandMemberStateChange, state,
			`{"GroupId":"G","EventType":"Online","EventCause":"HeartbeatRecover","MemberList":[{"Member_Account":"a"}],"EventTime":1}`, false, false},
		{"member state without EventTime is never a repeat", CommandMemberStateChange,
			`{"GroupId":"G","EventType":"Offline","MemberList":[{"Member_Account":"a"}]}`, `{"GroupId":"G","EventType":"Offline","MemberList":[{"Member_Account":"a"}]}`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqA := Request{App: "1", Command: tc.cmd, Received: received}
			reqB := reqA
			if tc.later {
				reqB.Received = later
			}
			a, _, err := Parse(reqA, []byte(tc.a))
			require.NoError(t, err)
			b, _, err := Parse(reqB, []byte(tc.b))
			require.NoError(t, err)
			if tc.same {
				assert.Equal(t, a.ID, b.ID)
			} else {
				assert.NotEqual(t, a.ID, b.ID)
			}
		})
	}
}

// The events of each new command: who gets them, and their fields.
func TestParseLiveCommands(t *testing.T) {
	ms := strconv.FormatInt(received.UnixMilli(), 10)
	for _, tc := range []struct {
		name, cmd, body string
		channels        []string
		event           string // the event but id, app, command, received
	}{
		{"logout", CommandStateChange, `{"Info":{"Action":"Logout","To_Account":"u","Reason":"Unregister"},"EventTime":5}`,
			[]string{"user:u", "app"}, `{"type":"user.status","time":5,"from":"u","status":"logout","reason":"Unregister"}`},
		{"disconnect, Action in other case", CommandStateChange, `{"Info":{"Action":"DISCONNECT","To_Account":"u","Reason":"TimeOut"}}`,
			[]string{"user:u", "app"}, `{"type":"user.status","time":` + ms + `,"from":"u","status":"disconnect","reason":"TimeOut"}`},
		{"status, optional fields of other types left out", CommandStateChange,
			`{"Info":{"Action":"Login","To_Account":"u","Reason":7},"KickedDevice":[{"Platform":1},null,{"Platform":"IOS"},"Web"]}`,
			[]string{"user:u", "app"}, `{"type":"user.status","time":` + ms + `,"from":"u","status":"login","kicked_devices":[{"platform":"IOS"}]}`},
		{"status, KickedDevice not an array", CommandStateChange, `{"Info":{"Action":"Login","To_Account":"u"},"KickedDevice":{"Platform":"Web"}}`,
			[]string{"user:u", "app"}, `{"type":"user.status","time":` + ms + `,"from":"u","status":"login"}`},
		{"join: a member listed twice gets it once", CommandGroupMemberJoin,
			`{"GroupId":"G","NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"},{"Member_Account":"a"}],"JoinType":"Invited","Operator_Account":"o"}`,
			[]string{"group:G", "user:a", "user:b", "app"},
			`{"type":"group.member.joined","time":` + ms + `,"group_id":"G","operator":"o","members":["a","b"],"join_type":"Invited"}`},
		{"quit", CommandGroupMemberExit,
			`{"GroupId":"G","Type":"Community","ExitType":"Quit","Operator_Account":"a","ExitMemberList":[{"Member_Account":"a"}],"EventTime":9}`,
			[]string{"group:G", "user:a", "app"},
			`{"type":"group.member.left","time":9,"group_id":"G","group_type":"Community","operator":"a","members":["a"],"exit_type":"Quit"}`},
		{"read in a conversation with oneself", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"a","LastReadTime":0,"UnreadMsgNum":0}`,
			[]string{"user:a", "app"}, `{"type":"c2c.message.read","time":` + ms + `,"from":"a","to":"a","unread":0}`},
		{"read, UnreadMsgNum of another type left out", CommandC2CReport, `{"Report_Account":"a","Peer_Account":"b","LastReadTime":2,"UnreadMsgNum":"7"}`,
			[]string{"user:a", "user:b", "app"}, `{"type":"c2c.message.read","time":` + ms + `,"from":"a","to":"b","last_read_time":2000}`},
		{"receipt, zero counts kept, topic", CommandGroupReadReceipt,
			`{"GroupId":"G","TopicId":"T","GroupMsgReceiptList":[{"MsgSeq":3,"ReadNum":0,"UnreadNum":0}]}`,
			[]string{"group:G", "app"}, `{"type":"group.message.read","time":` + ms + `,"group_id":"G","topic_id":"T","receipts":[{"seq":3,"read":0,"unread":0}]}`},
		{"info: a cleared notification, custom fields of other types left out", CommandGroupInfoChanged,
			`{"GroupId":"G","Notification":"","FaceUrl":5,"UserDefinedDataList":[{"Key":"k","Value":""},{"Key":"n","Value":1},{"Value":"v"},"x"]}`,
			[]string{"group:G", "app"}, `{"type":"group.info.changed","time":` + ms + `,"group_id":"G","changes":{"notification":"","custom":{"k":""}}}`},
		{"info: nothing we know changed", CommandGroupInfoChanged, `{"GroupId":"G","Operator_Account":"o","ShutUpAllMember":"On"}`,
			[]string{"group:G", "app"}, `{"type":"group.info.changed","time":` + ms + `,"group_id":"G","operator":"o"}`},
		{"destroyed of a community, no member list", CommandGroupDestroyed, `{"GroupId":"G","Type":"Community","Owner_Account":"o"}`,
			[]string{"group:G", "app"}, `{"type":"group.destroyed","time":` + ms + `,"group_id":"G","group_type":"Community"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, channels, err := Parse(Request{App: "1", Command: tc.cmd, Received: received}, []byte(tc.body))
			require.NoError(t, err)
			assert.Equal(t, tc.channels, channels)
			data, err := ev.Encode()
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, json.Unmarshal(data, &got))
			for _, k := range []string{"id", "app", "command", "received"} {
				require.Contains(t, got, k)
				delete(got, k)
			}
			rest, err := json.Marshal(got)
			require.NoError(t, err)
			assert.JSONEq(t, tc.event, string(rest))
		})
	}
}

// A status the hub does not know (the IM has added actions, such as a
// custom status being set) is acknowledged and not published: clients are
// promised login, logout or disconnect.
func TestParseUnknownStatus(t *testing.T) {
	ev, channels, err := Parse(Request{App: "1", Command: CommandStateChange},
		[]byte(`{"Info":{"Action":"CustomStatusChange","To_Account":"u"},"EventTime":1}`))
	assert.ErrorIs(t, err, ErrUnknownCommand)
	assert.Contains(t, err.Error(), `"CustomStatusChange"`)
	assert.Nil(t, ev)
	assert.Nil(t, channels)
}
