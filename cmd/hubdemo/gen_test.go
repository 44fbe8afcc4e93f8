package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// documented lists, per command, the fields the IM's webhook documentation
// shows in every request and their JSON types ("Array[].Field" is a field
// of each element), so that the demo sends what the IM sends, whatever the
// hub's parser makes of it.
var documented = map[string][]struct{ path, kind string }{
	cmdGroupSend: {{"GroupId", "string"}, {"Type", "string"}, {"From_Account", "string"}, {"Operator_Account", "string"},
		{"Random", "number"}, {"MsgSeq", "number"}, {"MsgTime", "number"}, {"OnlineOnlyFlag", "number"},
		{"MsgBody", "array"}, {"MsgBody[].MsgType", "string"}, {"MsgBody[].MsgContent", "object"}},
	cmdGroupBeforeSend: {{"GroupId", "string"}, {"Type", "string"}, {"From_Account", "string"}, {"Operator_Account", "string"},
		{"Random", "number"}, {"OnlineOnlyFlag", "number"}, {"MsgBody", "array"}, {"MsgBody[].MsgType", "string"}, {"MsgBody[].MsgContent", "object"}},
	cmdGroupRecall: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"},
		{"MsgSeqList", "array"}, {"MsgSeqList[].MsgSeq", "number"}},
	cmdC2CSend: {{"From_Account", "string"}, {"To_Account", "string"}, {"MsgSeq", "number"}, {"MsgRandom", "number"},
		{"MsgTime", "number"}, {"MsgKey", "string"}, {"OnlineOnlyFlag", "number"}, {"SendMsgResult", "number"},
		{"ErrorInfo", "string"}, {"UnreadMsgNum", "number"}, {"MsgBody", "array"}},
	cmdC2CWithdraw: {{"From_Account", "string"}, {"To_Account", "string"}, {"MsgKey", "string"}, {"UnreadMsgNum", "number"}},
	cmdC2CRead:     {{"Report_Account", "string"}, {"Peer_Account", "string"}, {"LastReadTime", "number"}, {"UnreadMsgNum", "number"}},
	cmdState:       {{"Info", "object"}, {"Info.Action", "string"}, {"Info.To_Account", "string"}, {"Info.Reason", "string"}, {"EventTime", "number"}},
	cmdMemberJoin: {{"GroupId", "string"}, {"Type", "string"}, {"JoinType", "string"}, {"Operator_Account", "string"},
		{"NewMemberList", "array"}, {"NewMemberList[].Member_Account", "string"}},
	cmdMemberExit: {{"GroupId", "string"}, {"Type", "string"}, {"ExitType", "string"}, {"Operator_Account", "string"},
		{"ExitMemberList", "array"}, {"ExitMemberList[].Member_Account", "string"}},
	cmdReadReceipt: {{"GroupId", "string"}, {"Type", "string"}, {"GroupMsgReceiptList", "array"},
		{"GroupMsgReceiptList[].MsgSeq", "number"}, {"GroupMsgReceiptList[].ReadNum", "number"}, {"GroupMsgReceiptList[].UnreadNum", "number"}},
	cmdGroupDestroyed: {{"GroupId", "string"}, {"Type", "string"}, {"Owner_Account", "string"}, {"Name", "string"},
		{"MemberList", "array"}, {"MemberList[].Member_Account", "string"}},
	cmdGroupInfo: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}},
	cmdGroupCreate: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}, {"Owner_Account", "string"},
		{"Name", "string"}, {"CreateGroupNum", "number"}, {"MemberList", "array"}, {"MemberList[].Member_Account", "string"}},
	// https://cloud.tencent.com/document/product/269/129193 and .../128224
	cmdGroupModify: {{"GroupId", "string"}, {"Operator_Account", "string"}, {"MsgSeq", "number"}, {"MsgBody", "array"},
		{"MsgBody[].MsgType", "string"}, {"EventTime", "number"}},
	cmdC2CModify: {{"From_Account", "string"}, {"To_Account", "string"}, {"Operator_Account", "string"}, {"MsgKey", "string"},
		{"MsgSeq", "number"}, {"MsgRandom", "number"}, {"MsgTime", "number"}, {"MsgBody", "array"}, {"EventTime", "number"}},
	// https://www.tencentcloud.com/document/product/1047/76007 and .../76006
	cmdGroupExtension: {{"GroupId", "string"}, {"MsgSeq", "number"}, {"OperateType", "number"}, {"ExtensionList", "array"},
		{"ExtensionList[].Key", "string"}, {"ExtensionList[].Value", "string"}, {"ExtensionList[].Seq", "number"}, {"Seq", "number"}, {"EventTime", "number"}},
	cmdC2CExtension: {{"From_Account", "string"}, {"To_Account", "string"}, {"MsgKey", "string"}, {"OperateType", "number"},
		{"ExtensionList", "array"}, {"ExtensionList[].Key", "string"}, {"Seq", "number"}, {"EventTime", "number"}},
	// https://www.tencentcloud.com/document/product/1047/60393, .../60396, .../60394
	cmdMemberField: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}, {"Member_Account", "string"}},
	cmdOwnerChange: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}, {"OldOwner_Account", "string"},
		{"NewOwner_Account", "string"}},
	cmdGroupAttr: {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}, {"OptionType", "string"}, {"GroupAttr", "array"}},
	// https://www.tencentcloud.com/document/product/1047/49464, .../49465, .../49466
	cmdTopicCreate: {{"GroupId", "string"}, {"TopicId", "string"}, {"Operator_Account", "string"}, {"Owner_Account", "string"},
		{"Type", "string"}, {"Name", "string"}},
	cmdTopicDestroyed: {{"GroupId", "string"}, {"Type", "string"}, {"TopicIdList", "array"}},
	cmdTopicInfo:      {{"GroupId", "string"}, {"Type", "string"}, {"Operator_Account", "string"}},
	// https://www.tencentcloud.com/document/product/1047/48734
	cmdMemberState: {{"GroupId", "string"}, {"EventType", "string"}, {"MemberList", "array"}, {"MemberList[].Member_Account", "string"}},
}

// The documented values of the fields that take one of a few.
var documentedValues = map[string][]string{
	"Info.Action": {"Login", "Logout", "Disconnect"},
	"OptionType":  {"set", "modify", "delete", "clear"},
	"EventType":   {"Online", "Offline"},
	"JoinType":    {"Apply", "Invited"},
	"ExitType":    {"Kicked", "Quit"},
}

// Every body the generator makes is a JSON object with the fields the IM
// documents for its command, of the documented types; every command the
// demo is meant to show, and each kind of login, join and exit, turns up.
func TestGeneratorBodiesAreDocumented(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(3, 4)), "jared")
	now := time.Unix(1700000000, 0)
	seen := map[string]int{}
	for i := range 3000 {
		c := g.next(now.Add(time.Duration(i) * time.Second))
		g.verdict(i%4 != 0)
		var body map[string]any
		d := json.NewDecoder(strings.NewReader(c.body))
		require.NoError(t, d.Decode(&body), "%s: %s", c.cmd, c.body)
		assert.False(t, d.More(), "one JSON value")
		assert.Equal(t, c.cmd, body["CallbackCommand"], c.body)
		fields, ok := documented[c.cmd]
		require.True(t, ok, "the test knows the documented fields of %s", c.cmd)
		for _, f := range fields {
			for _, v := range lookup(body, f.path) {
				assert.Equal(t, f.kind, kind(v), "%s %s in %s", c.cmd, f.path, c.body)
			}
			// A field of each element is there when an element is: a new
			// group may have no member but its owner, a cleared extension
			// no key.
			if list, _, ok := strings.Cut(f.path, "[]."); !ok || len(lookup(body, list)) > 0 && len(lookup(body, list)[0].([]any)) > 0 {
				assert.NotEmpty(t, lookup(body, f.path), "%s has %s: %s", c.cmd, f.path, c.body)
			}
		}
		for path, values := range documentedValues {
			for _, v := range lookup(body, path) {
				assert.Contains(t, values, v, "%s %s", c.cmd, path)
				seen[c.cmd+" "+fmt.Sprint(v)]++
			}
		}
		if c.cmd == cmdGroupInfo {
			changed := 0
			for _, k := range []string{"Name", "Introduction", "Notification", "FaceUrl"} {
				if s, ok := body[k].(string); ok && s != "" {
					changed++
				}
			}
			assert.Equal(t, 1, changed, "a change names what changed: %s", c.body)
		}
		seen[c.cmd]++
	}
	for cmd := range documented {
		assert.Positive(t, seen[cmd], "the demo sends %s", cmd)
	}
	for _, s := range []string{cmdState + " Login", cmdState + " Logout", cmdMemberExit + " Kicked", cmdMemberExit + " Quit",
		cmdMemberJoin + " Apply", cmdMemberJoin + " Invited"} {
		assert.Positive(t, seen[s], "the demo sends %s", s)
	}
}

// A group message checked with the app's backend is sent when allowed, and
// only then: its Group.CallbackAfterSendMsg follows the verdict.
func TestGeneratorSendsOnlyAllowedMessages(t *testing.T) {
	for _, allow := range []bool{true, false} {
		t.Run(fmt.Sprint("allow=", allow), func(t *testing.T) {
			g := newGenerator(rand.New(rand.NewPCG(5, 6)), "jared")
			now := time.Unix(1700000000, 0)
			before := g.beforeSend(now)
			var b map[string]any
			require.NoError(t, json.Unmarshal([]byte(before.body), &b))
			g.verdict(allow)
			sentSame := false
			for range 50 {
				c := g.next(now)
				var a map[string]any
				require.NoError(t, json.Unmarshal([]byte(c.body), &a))
				if c.cmd == cmdGroupSend && a["Random"] == b["Random"] {
					sentSame = true
					assert.Equal(t, b["GroupId"], a["GroupId"])
					assert.Equal(t, b["From_Account"], a["From_Account"])
					assert.Equal(t, b["MsgBody"], a["MsgBody"])
					assert.NotNil(t, a["MsgSeq"], "a sent message has its sequence number")
				}
				g.verdict(false)
			}
			assert.Equal(t, allow, sentSame)
		})
	}
}

// lookup returns the values at path: "A.B" is field B of object A, "A[].B"
// field B of each element of array A.
func lookup(v any, path string) []any {
	if path == "" {
		return []any{v}
	}
	head, rest, _ := strings.Cut(path, ".")
	name, each := strings.CutSuffix(head, "[]")
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	field, ok := m[name]
	if !ok {
		return nil
	}
	if !each {
		return lookup(field, rest)
	}
	var out []any
	l, _ := field.([]any)
	for _, e := range l {
		out = append(out, lookup(e, rest)...)
	}
	return out
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case bool:
		return "bool"
	}
	return "null"
}

// A group message's identity is its group, topic and MsgSeq, which the IM
// never gives twice: the hub publishes a repeat within its dedupe window
// as the same event. Neither one run of the demo nor a later one, against
// the same hubs, may send a group message with an identity already sent.
func TestGeneratorNeverReusesAGroupMessageIdentity(t *testing.T) {
	seen := map[string]bool{}
	start := time.Unix(1700000000, 0)
	for run, seed := range []uint64{11, 12, 13} {
		g := newGenerator(rand.New(rand.NewPCG(seed, seed)), "jared")
		sends := 0
		for i := range 1500 {
			c := g.next(start.Add(time.Duration(i) * 20 * time.Millisecond))
			g.verdict(i%3 != 0)
			if c.cmd != cmdGroupSend {
				continue
			}
			var m struct {
				GroupId, TopicId string
				MsgSeq           int64
			}
			require.NoError(t, json.Unmarshal([]byte(c.body), &m))
			id := fmt.Sprintf("%s/%s/%d", m.GroupId, m.TopicId, m.MsgSeq)
			require.False(t, seen[id], "run %d sends %s again", run+1, id)
			seen[id] = true
			sends++
		}
		require.Greater(t, sends, 100)
		// The next run starts a little after this one ends.
		start = start.Add(1500*20*time.Millisecond + 5*time.Second)
	}
}

// The demo's groups are made first, the page user in each; every
// kickEvery callbacks an admin removes the page user from one of them,
// and inviteAfter callbacks later they are invited back to it.
func TestGeneratorPageUser(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(21, 22)), "jared")
	now := time.Unix(1700000000, 0)
	made := map[string]bool{}
	for _, grp := range groups {
		made[grp.id] = true
	}
	for range len(made) {
		c := g.next(now)
		require.Equal(t, cmdGroupCreate, c.cmd)
		var b struct {
			GroupId, Owner_Account string
			MemberList             []struct{ Member_Account string }
		}
		require.NoError(t, json.Unmarshal([]byte(c.body), &b))
		in := []string{b.Owner_Account}
		for _, m := range b.MemberList {
			in = append(in, m.Member_Account)
		}
		assert.Contains(t, in, "jared", "the page user is in %s from the start", b.GroupId)
		assert.True(t, made[b.GroupId], "%s made once", b.GroupId)
		delete(made, b.GroupId)
	}
	var turns []string
	for i := 1; i <= 3*kickEvery; i++ {
		c := g.next(now)
		g.verdict(true)
		if c.note == "" {
			continue
		}
		var b struct {
			GroupId, ExitType, JoinType   string
			ExitMemberList, NewMemberList []struct{ Member_Account string }
		}
		require.NoError(t, json.Unmarshal([]byte(c.body), &b))
		switch c.cmd {
		case cmdMemberExit:
			assert.Equal(t, "Kicked", b.ExitType)
			assert.Equal(t, "jared", b.ExitMemberList[0].Member_Account)
			turns = append(turns, fmt.Sprintf("%d kicked from %s", i, b.GroupId))
		case cmdMemberJoin:
			assert.Equal(t, "Invited", b.JoinType)
			assert.Equal(t, "jared", b.NewMemberList[0].Member_Account)
			turns = append(turns, fmt.Sprintf("%d invited to %s", i, b.GroupId))
		default:
			t.Fatalf("a note on %s", c.cmd)
		}
	}
	require.GreaterOrEqual(t, len(turns), 3, "%v", turns)
	assert.Regexp(t, `^30 kicked from (\S+)$`, turns[0])
	group := strings.Fields(turns[0])[3]
	if len(turns) > 1 && strings.HasPrefix(turns[1], "45 ") {
		assert.Equal(t, "45 invited to "+group, turns[1])
	}
}

// Every callback the demo makes is said in words, not as its field count.
func TestEveryCallbackSummarized(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(5, 6)), "jared")
	now := time.Unix(1700000000, 0)
	for i := range 3000 {
		c := g.next(now.Add(time.Duration(i) * time.Second))
		g.verdict(true)
		m, err := decodeBody([]byte(c.body))
		require.NoError(t, err)
		assert.NotRegexp(t, `^\d+ fields$`, summarize(c.cmd, m), c.cmd)
	}
}

// A long demo keeps the extensions of the messages it may still react to,
// not of every message it ever reacted to.
func TestGeneratorForgetsOldMessagesExtensions(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(11, 12)), "jared")
	now := time.Unix(1700000000, 0)
	reacted := 0
	for i := range 20000 {
		c := g.next(now.Add(time.Duration(i) * time.Second))
		if c.cmd == cmdGroupExtension || c.cmd == cmdC2CExtension {
			reacted++
		}
		g.verdict(true)
	}
	require.Greater(t, reacted, 200, "the demo reacts to messages")
	assert.LessOrEqual(t, len(g.ext), len(g.recent)+len(g.c2c), "only messages still recent keep their extensions")
}
