package callback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
)

// seedBodies are the IM documents' examples and their schema variants.
func seedBodies(f *testing.F) map[string]string {
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed bodies: %v", err)
	}
	out := map[string]string{}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var c struct{ CallbackCommand string }
		if err := json.Unmarshal(b, &c); err != nil {
			f.Fatal(err)
		}
		out[string(b)] = c.CallbackCommand
	}
	return out
}

// stringValue is the start of a string value in a seed body; key is a key.
var (
	stringValue = regexp.MustCompile(`("[A-Za-z_]+": *")`)
	key         = regexp.MustCompile(`"([A-Za-z_]+)":`)
)

// spoiled are variants of body whose text is not valid UTF-8: a bad byte
// at the start of every string value (the CallbackCommand's aside, which
// must match the query), a cut sequence in every key Parse does not
// require, an encoded surrogate at the start of every string value.
func spoiled(body string) []string {
	prefixValues := func(bad string) string {
		return stringValue.ReplaceAllStringFunc(body, func(m string) string {
			if strings.HasPrefix(m, `"CallbackCommand"`) {
				return m
			}
			return m + bad
		})
	}
	keys := key.ReplaceAllStringFunc(body, func(m string) string {
		switch m {
		case `"CallbackCommand":`, `"GroupId":`, `"MsgSeq":`, `"MsgBody":`, `"MsgSeqList":`,
			`"From_Account":`, `"To_Account":`, `"MsgKey":`, `"MsgId":`,
			`"Info":`, `"Action":`, `"NewMemberList":`, `"ExitMemberList":`, `"Member_Account":`,
			`"Report_Account":`, `"Peer_Account":`, `"LastReadTime":`,
			`"GroupMsgReceiptList":`, `"ReadNum":`, `"UnreadNum":`,
			`"OperateType":`, `"Seq":`, `"Key":`, `"NewOwner_Account":`, `"TopicId":`, `"TopicIdList":`,
			`"OptionType":`, `"EventType":`, `"MemberList":`:
			return m
		}
		return "\"\xe7\xba" + m[1:]
	})
	return []string{prefixValues("\xff"), keys, prefixValues("\xed\xa0\x80")}
}

// invalidUTF8Bodies are bodies whose text is not valid UTF-8 in each kind
// of place: a required id, MsgBody text and keys, CloudCustomData, a key
// not ours, and outside any string, where it is not JSON.
var invalidUTF8Bodies = map[string]string{
	"{\"GroupId\":\"G\xff\",\"MsgSeq\":1,\"MsgBody\":[]}":                                                                                                         "Group.CallbackAfterSendMsg",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"red \xe7\xba\"}}]}":                                     "Group.CallbackAfterSendMsg",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"MsgBody\":[{\"MsgType\xc0\":\"TIMTextElem\",\"MsgCont\xffent\":{}}]}":                                                      "Group.CallbackAfterSendMsg",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"MsgBody\":[],\"CloudCustomData\":\"\xf0\x80\x80\x80\",\"Ext\xff\":1}":                                                      "Group.CallbackAfterSendMsg",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"MsgBody\":[]\xff}":                                                                                                         "Group.CallbackAfterSendMsg",
	"{\"From_Account\":\"\xed\xa0\x80\",\"To_Account\":\"b\",\"MsgKey\":\"k\x80\"}":                                                                               "C2C.CallbackAfterMsgWithDraw",
	"{\"From_Account\":\"a\",\"To_Account\":\"b\",\"MsgKey\":\"k\",\"MsgBody\":[{\"MsgType\":\"TIMCustomElem\",\"MsgContent\":{\"Data\":\"\xff\xfe\"}}]}":         "C2C.CallbackAfterSendMsg",
	"{\"GroupId\":\"G\",\"MsgSeqList\":[{\"MsgSeq\":1,\"MsgId\":\"\xf4\x90\x80\x80\"}]}":                                                                          "Group.CallbackAfterRecallMsg",
	"{\"Info\":{\"Action\":\"Login\",\"To_Account\":\"u\xff\",\"Reason\":\"Reg\xc0ister\"},\"KickedDevice\":[{\"Platform\":\"\xedWeb\"}]}":                        "State.StateChange",
	"{\"Info\":{\"Action\":\"Log\xffin\",\"To_Account\":\"u\"}}":                                                                                                  "State.StateChange",
	"{\"GroupId\":\"G\",\"JoinType\":\"\x80\",\"NewMemberList\":[{\"Member_Account\":\"a\xe7\xba\"},{\"Member_Account\":\"a\xe7\xbb\"}]}":                         "Group.CallbackAfterNewMemberJoin",
	"{\"GroupId\":\"G\",\"ExitType\":\"Kicked\",\"Operator_Account\":\"\xf0\x80\x80\x80\",\"ExitMemberList\":[{\"Member_Account\":\"\xed\xa0\x80\"}]}":            "Group.CallbackAfterMemberExit",
	"{\"Report_Account\":\"a\xff\",\"Peer_Account\":\"a\xfe\",\"LastReadTime\":1}":                                                                                "C2C.CallbackAfterMsgReport",
	"{\"GroupId\":\"G\",\"TopicId\":\"\xff\",\"GroupMsgReceiptList\":[{\"MsgSeq\":1,\"ReadNum\":1,\"UnreadNum\":0,\"Read\xffReceiptMembers\":[]}]}":               "Group.CallbackAfterReadReceipt",
	"{\"GroupId\":\"G\xc3\",\"Name\":\"\xc3\"}":                                                                                                                   "Group.CallbackAfterGroupDestroyed",
	"{\"GroupId\":\"G\",\"Name\":\"\xc3\",\"UserDefinedDataList\":[{\"Key\":\"k\xff\",\"Value\":\"\xff\"},{\"Key\":\"k\xfe\",\"Value\":\"v\"}]}":                  "Group.CallbackAfterGroupInfoChanged",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"Operator_Account\":\"o\xff\",\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"\xe7\xba\"}}]}":          "Group.CallbackAfterModifyMsg",
	"{\"From_Account\":\"a\",\"To_Account\":\"b\xfe\",\"MsgKey\":\"k\",\"CloudCustomData\":\"\xff\",\"MsgBody\":[]}":                                              "C2C.CallbackAfterModifyMsg",
	"{\"GroupId\":\"G\",\"MsgSeq\":1,\"OperateType\":1,\"Seq\":2,\"ExtensionList\":[{\"Key\":\"\xf0\x9f\",\"Value\":\"\xff\",\"Seq\":2}]}":                        "Group.CallbackAfterGroupMsgExtension",
	"{\"From_Account\":\"a\",\"To_Account\":\"b\",\"MsgKey\":\"k\xc0\",\"OperateType\":2,\"Seq\":3,\"ExtensionList\":[{\"Key\":\"k\",\"Value\":\"\",\"Seq\":3}]}": "C2C.CallbackAfterC2CMsgExtension",
	"{\"GroupId\":\"G\",\"Owner_Account\":\"o\xff\",\"Name\":\"\xc3\",\"MemberList\":[{\"Member_Account\":\"m\xfe\"}]}":                                           "Group.CallbackAfterCreateGroup",
	"{\"GroupId\":\"G\",\"Member_Account\":\"m\xff\",\"NameCard\":\"\xed\xa0\x80\"}":                                                                              "Group.CallbackAfterMemberFieldChanged",
	"{\"GroupId\":\"G\",\"NewOwner_Account\":\"n\xff\",\"OldOwner_Account\":\"\x80\"}":                                                                            "Group.CallbackAfterChangeGroupOwner",
	"{\"GroupId\":\"G\",\"TopicId\":\"T\xff\",\"Name\":\"\xc3\"}":                                                                                                 "Group.CallbackAfterCreateTopic",
	"{\"GroupId\":\"G\",\"TopicIdList\":[\"T\xff\",\"T\xfe\"]}":                                                                                                   "Group.CallbackAfterTopicDestroyed",
	"{\"GroupId\":\"G\",\"Introduction\":\"\xff\"}":                                                                                                               "Group.CallbackAfterTopicInfoChanged",
	"{\"GroupId\":\"G\",\"OptionType\":\"se\xfft\",\"GroupAttr\":[{\"key\":\"k\xff\",\"value\":\"v\xfe\"}]}":                                                      "Group.CallbackAfterGroupAttrChanged",
	"{\"GroupId\":\"G\",\"EventType\":\"Online\",\"EventCause\":\"J\xffoin\",\"MemberList\":[{\"Member_Account\":\"a\xff\"}]}":                                    "Group.CallbackOnMemberStateChange",
}

// addParseSeeds seeds a fuzz target of (command, body) with every IM
// document, each spoiled in several ways, and bodies with invalid UTF-8.
func addParseSeeds(f *testing.F) {
	for body, cmd := range seedBodies(f) {
		f.Add(cmd, []byte(body))
		for _, b := range spoiled(body) {
			f.Add(cmd, []byte(b))
		}
	}
	for body, cmd := range invalidUTF8Bodies {
		f.Add(cmd, []byte(body))
	}
	f.Add("Group.CallbackAfterSendMsg", []byte(`{"GroupId":"G","MsgSeq":1,"MsgBody":[],"EventTime":"12"}`))
}

// FuzzParse: no body makes Parse panic, and whatever it accepts becomes an
// event that encodes to valid UTF-8 JSON and goes to well-formed channels.
func FuzzParse(f *testing.F) {
	addParseSeeds(f)
	f.Fuzz(func(t *testing.T, cmd string, body []byte) {
		req := callback.Request{App: "1", Command: cmd, Received: time.UnixMilli(1)}
		ev, channels, err := callback.Parse(req, body)
		if err != nil {
			if ev != nil || channels != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		data, err := ev.Encode()
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		if !json.Valid(data) || ev.ID == "" || ev.Type == "" {
			t.Fatalf("bad event %s", data)
		}
		if !utf8.Valid(data) {
			t.Fatalf("event is not valid UTF-8: %q", data)
		}
		if len(channels) < 2 || channels[len(channels)-1] != "app" {
			t.Fatalf("channels %q", channels)
		}
		for _, c := range channels[:len(channels)-1] {
			if !strings.HasPrefix(c, "group:") && !strings.HasPrefix(c, "user:") || len(c) <= len("user:") || !utf8.ValidString(c) {
				t.Fatalf("channel %q", c)
			}
		}
		again, _, err := callback.Parse(req, body)
		if err != nil || again.ID != ev.ID {
			t.Fatalf("Parse is not deterministic")
		}
	})
}

// FuzzParseMatchesReference: Parse, which splits the body's objects into
// fields itself, agrees with Parse with each object decoded by
// encoding/json: the same error or none, the same channels and the same
// encoded event, byte for byte; and Encode agrees with encoding/json.
func FuzzParseMatchesReference(f *testing.F) {
	addParseSeeds(f)
	f.Add("Group.CallbackAfterSendMsg", []byte(`{"GroupId":"G","GroupId":"H","MsgSeq":1.0,"MsgBody":[ ] , "X":[{"a":"\u00e9\ud800"}]}`))
	// A key given twice, escaped keys, and nested objects and arrays of
	// objects with both and with entries of other kinds.
	f.Add("Group.CallbackAfterSendMsg", []byte(`{"GroupId":"G","GroupId":"H","MsgSeq":1,"MsgBody":[]}`))
	f.Add("Group.CallbackAfterSendMsg", []byte(`{"Group\u0049d":"G","MsgSeq":1,"MsgBody":[],"\"":1}`))
	f.Add("Group.CallbackAfterRecallMsg", []byte(`{"GroupId":"G","MsgSeqList":[{"MsgSeq":1,"MsgSeq":2},null,{"Msg\u0053eq":3}]}`))
	f.Add("Group.CallbackAfterRecallMsg", []byte(`{"GroupId":"G","MsgSeqList":[{"MsgSeq":1},2]}`))
	f.Add("State.StateChange", []byte(`{"Info":{"Action":"Login","To_Account":"a","To_\u0041ccount":"b"},"KickedDevice":[1,{"Platform":"Web","Platform":"iOS"},null,{}]}`))
	f.Add("Group.CallbackAfterGroupInfoChanged", []byte(`{"GroupId":"G","UserDefinedDataList":[{"Key":"k","Value":"v","Key":"\u006b2"},"x"]}`))
	f.Fuzz(func(t *testing.T, cmd string, body []byte) {
		req := callback.Request{App: "1", Command: cmd, ClientIP: "10.0.0.1", Platform: "iOS", Received: time.UnixMilli(1)}
		ev, channels, err := callback.Parse(req, body)
		ref, refChannels, refErr := callback.ParseWithJSONForTest(req, body)
		if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() {
			t.Fatalf("Parse: %v; with encoding/json: %v", err, refErr)
		}
		if errors.Is(err, callback.ErrUnknownCommand) != errors.Is(refErr, callback.ErrUnknownCommand) {
			t.Fatalf("Parse: %v; with encoding/json: %v", err, refErr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(channels, refChannels) {
			t.Fatalf("channels %q; with encoding/json %q", channels, refChannels)
		}
		data, err := ev.Encode()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		refData, err := ref.Encode()
		if err != nil {
			t.Fatalf("encode with encoding/json: %v", err)
		}
		if !bytes.Equal(data, refData) {
			t.Fatalf("event\n%s\nwith encoding/json\n%s", data, refData)
		}
		jsonData, err := callback.RefEncodeForTest(ev)
		if err != nil || !bytes.Equal(data, jsonData) {
			t.Fatalf("Encode\n%s\nencoding/json (%v)\n%s", data, err, jsonData)
		}
	})
}

// countingPublisher counts what reaches it and keeps the last message.
type countingPublisher struct {
	n    int
	last broker.Message
}

func (p *countingPublisher) Publish(_ context.Context, m broker.Message) (broker.Result, error) {
	p.n++
	p.last = m
	return broker.Result{Positions: make([]broker.Position, len(m.Channels))}, nil
}

// logLines fails the test on a log line longer than limit.
type logLines struct {
	t     *testing.T
	limit int
}

func (l logLines) Write(p []byte) (int, error) {
	if len(p) > l.limit {
		l.t.Fatalf("log line of %d bytes: %.300q…", len(p), p)
	}
	return len(p), nil
}

// FuzzHandler drives the whole endpoint with arbitrary query strings,
// signatures and bodies: it never panics, always answers IM-shaped JSON of
// a bounded size, logs lines of a bounded size, publishes only what it
// answers 200 for, and publishes only valid UTF-8.
func FuzzHandler(f *testing.F) {
	now := time.Unix(1700000000, 0)
	rt := strconv.FormatInt(now.Unix(), 10)
	for body, cmd := range seedBodies(f) {
		q := url.Values{"SdkAppid": {"1"}, "CallbackCommand": {cmd}}
		f.Add("POST", q.Encode(), body)
		q.Set("SdkAppid", "2")
		q.Set("RequestTime", rt)
		q.Set("Sign", callback.Sign("tok", rt))
		f.Add("POST", q.Encode(), body)
		q.Set("Sign", callback.Sign("tok", rt)[1:]+"0")
		f.Add("POST", q.Encode(), body)
	}
	for body, cmd := range invalidUTF8Bodies {
		q := url.Values{"SdkAppid": {"1"}, "CallbackCommand": {cmd}, "ClientIP": {"10.0.0.\xff"}, "OptPlatform": {"\xc3"}}
		f.Add("POST", q.Encode(), body)
	}
	f.Add("GET", "SdkAppid=1", "")
	f.Add("POST", "SdkAppid=1&CallbackCommand=%ZZ", "{")
	f.Add("POST", "SdkAppid=%FF&CallbackCommand=%C3%28", "{}")
	f.Add("POST", "SdkAppid=1&CallbackCommand=Group.CallbackAfterSendMsg&ClientIP=%ED%A0%80", `{"GroupId":"G","MsgSeq":1,"MsgBody":[]}`)
	f.Fuzz(func(t *testing.T, method, rawQuery, body string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return // not an HTTP method token
		}
		pub := &countingPublisher{}
		h := callback.NewHandler(callback.Config{
			Apps:    []callback.App{{ID: "1"}, {ID: "2", Token: "tok"}},
			MaxBody: 1 << 16,
			// The event a debug line shows is clipped to 4 KiB before
			// the log escapes it.
			Logger: slog.New(slog.NewJSONHandler(logLines{t, 12 << 10}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Now:    func() time.Time { return now },
		}, pub)
		req := httptest.NewRequest("POST", "/im/callback", strings.NewReader(body))
		req.Method = method
		req.URL.RawQuery = rawQuery
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var resp struct {
			ActionStatus string
			ErrorInfo    string
			ErrorCode    *int
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ErrorCode == nil {
			t.Fatalf("answer is not IM-shaped: %q", w.Body.String())
		}
		if !utf8.Valid(w.Body.Bytes()) || len(resp.ErrorInfo) > 512 {
			t.Fatalf("answer is not short valid UTF-8: %q", w.Body.String())
		}
		if pub.n > 0 && (!utf8.Valid(pub.last.Data) || !json.Valid(pub.last.Data)) {
			t.Fatalf("published event is not valid UTF-8 JSON: %q", pub.last.Data)
		}
		switch w.Code {
		case http.StatusOK:
			if resp.ActionStatus != "OK" || *resp.ErrorCode != 0 || pub.n > 1 {
				t.Fatalf("200 with %+v after %d publishes", resp, pub.n)
			}
		default:
			if pub.n != 0 {
				t.Fatalf("status %d but published", w.Code)
			}
			if resp.ActionStatus != "FAIL" || *resp.ErrorCode != 1 || resp.ErrorInfo == "" {
				t.Fatalf("status %d with %+v", w.Code, resp)
			}
		}
	})
}
