package callback_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/hubtest"
)

const (
	openApp   = "1400000000" // no callback token
	signedApp = "1400000001" // callback token "s3cret"
	token     = "s3cret"
)

var now = time.Unix(1700000000, 0)

// fixture is a handler in front of a real in-process broker whose every
// channel of both apps is watched.
type fixture struct {
	h       *callback.Handler
	broker  broker.Broker
	rec     *brokertest.Recorder
	reg     *prometheus.Registry
	metrics *callback.Metrics
	logs    *hubtest.SyncBuffer // the handler's log, one JSON object a line
}

func newFixture(t *testing.T, pub callback.Publisher) *fixture {
	t.Helper()
	b := broker.NewMemory(brokertest.DefaultConfig)
	rec := brokertest.Start(t, b)
	for _, app := range []string{openApp, signedApp} {
		require.NoError(t, b.Subscribe(context.Background(), app, "app"))
	}
	if pub == nil {
		pub = b
	}
	reg := prometheus.NewRegistry()
	m := callback.NewMetrics(reg)
	logs := &hubtest.SyncBuffer{}
	h := callback.NewHandler(callback.Config{
		Apps:    []callback.App{{ID: openApp}, {ID: signedApp, Token: token}},
		MaxBody: 4096,
		Metrics: m,
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
		Now:     func() time.Time { return now },
	}, pub)
	return &fixture{h: h, broker: b, rec: rec, reg: reg, metrics: m, logs: logs}
}

func query(app, cmd string) url.Values {
	return url.Values{"SdkAppid": {app}, "CallbackCommand": {cmd}, "contenttype": {"json"}, "ClientIP": {"10.0.0.1"}, "OptPlatform": {"iOS"}}
}

func signed(q url.Values, at time.Time, tok string) url.Values {
	rt := strconv.FormatInt(at.Unix(), 10)
	q.Set("RequestTime", rt)
	q.Set("Sign", callback.Sign(tok, rt))
	return q
}

func (f *fixture) do(t *testing.T, method string, q url.Values, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, "/im/callback?"+q.Encode(), strings.NewReader(body))
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"), "every answer is IM-shaped JSON")
	return w.Code, w.Body.String()
}

func seed(t *testing.T, name string) string {
	b, err := os.ReadFile("testdata/golden/" + name + ".json")
	require.NoError(t, err)
	return string(b)
}

func fail(reason string) string {
	return `{"ActionStatus":"FAIL","ErrorInfo":"` + reason + `","ErrorCode":1}`
}

const ok = `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`

func TestHandlerPublishes(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupSend), seed(t, "group_send"))
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, ok, body)
	pubs := f.rec.WaitCount(t, 1)
	assert.Contains(t, string(pubs[0].Data), `"type":"group.message.sent"`)
	assert.Contains(t, string(pubs[0].Data), `"platform":"iOS"`)
	assert.Contains(t, string(pubs[0].Data), `"client_ip":"10.0.0.1"`)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(callback.CommandGroupSend, callback.ResultPublished)))
}

func TestHandlerSignedApp(t *testing.T) {
	f := newFixture(t, nil)
	for _, at := range []time.Time{now, now.Add(-59 * time.Second), now.Add(59 * time.Second)} {
		q := signed(query(signedApp, callback.CommandC2CWithdraw), at, token)
		body := `{"From_Account":"a","To_Account":"b","MsgKey":"` + at.String() + `"}`
		code, resp := f.do(t, http.MethodPost, q, body)
		assert.Equal(t, http.StatusOK, code, resp)
	}
	f.rec.WaitCount(t, 3)
}

// A retry of the same IM event is answered OK and not published again.
func TestHandlerDedupe(t *testing.T) {
	f := newFixture(t, nil)
	for range 3 {
		code, body := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupRecall), seed(t, "group_recall"))
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, ok, body)
	}
	f.do(t, http.MethodPost, query(openApp, callback.CommandGroupSend), seed(t, "group_send"))
	pubs := f.rec.WaitCount(t, 2)
	assert.Len(t, pubs, 2)
	assert.Equal(t, 2.0, testutil.ToFloat64(f.counter(callback.CommandGroupRecall, callback.ResultDuplicate)))
}

func TestHandlerUnknownCommand(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.do(t, http.MethodPost, query(openApp, "Group.CallbackAfterGroupFull"), `{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"x"}`)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, ok, body)
	// Fields named like those of published commands, with other types.
	code, body = f.do(t, http.MethodPost, query(openApp, "Group.CallbackBeforeCreateGroup"), `{"CallbackCommand":"Group.CallbackBeforeCreateGroup","GroupId":123,"MsgBody":"x","Random":"abc"}`)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, ok, body)
	// Both are commands the IM documents: counted under their names.
	assert.Equal(t, 1.0, testutil.ToFloat64(f.counter("Group.CallbackAfterGroupFull", callback.ResultIgnored)))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.counter("Group.CallbackBeforeCreateGroup", callback.ResultIgnored)))
	f.do(t, http.MethodPost, query(openApp, callback.CommandGroupSend), seed(t, "group_send"))
	pubs := f.rec.WaitCount(t, 1)
	assert.Len(t, pubs, 1, "the unknown command was not published")
}

// Each IM document's example of the commands added to the live surface is
// published once to "app" and the channels of its users, and its retry is
// answered OK and not published again. Only the examples whose identity
// does not rest on the receive time: the fixture's clock stands still.
func TestHandlerLiveCommands(t *testing.T) {
	f := newFixture(t, nil)
	for _, ch := range []string{"user:testuser316", "user:jared", "user:tommy", "user:Jonh", "group:@TGS#2J4SZEAEL", "group:@TGS#2TTV7VSII"} {
		require.NoError(t, f.broker.Subscribe(context.Background(), openApp, ch))
	}
	for _, tc := range []struct {
		seed, cmd, typ string
		channels       []string
	}{
		{"state_change", callback.CommandStateChange, callback.TypeUserStatus, []string{"user:testuser316"}},
		{"group_member_join_eventtime", callback.CommandGroupMemberJoin, callback.TypeGroupMemberJoined, []string{"group:@TGS#2J4SZEAEL", "user:jared", "user:tommy"}},
		{"group_member_exit_eventtime", callback.CommandGroupMemberExit, callback.TypeGroupMemberLeft, []string{"group:@TGS#2J4SZEAEL", "user:jared", "user:tommy"}},
		{"c2c_msg_report", callback.CommandC2CReport, callback.TypeC2CRead, []string{"user:jared", "user:Jonh"}},
		{"group_read_receipt", callback.CommandGroupReadReceipt, callback.TypeGroupRead, []string{"group:@TGS#2TTV7VSII"}},
		{"group_destroyed", callback.CommandGroupDestroyed, callback.TypeGroupDestroyed, []string{"group:@TGS#2J4SZEAEL"}},
		{"group_info_changed", callback.CommandGroupInfoChanged, callback.TypeGroupInfoChanged, []string{"group:@TGS#2J4SZEAEL"}},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			before := len(f.rec.Publications())
			for range 2 {
				code, body := f.do(t, http.MethodPost, query(openApp, tc.cmd), seed(t, tc.seed))
				require.Equal(t, http.StatusOK, code, body)
				assert.Equal(t, ok, body)
			}
			want := append([]string{"app"}, tc.channels...)
			pubs := f.rec.WaitCount(t, before+len(want))[before:]
			var got []string
			for _, p := range pubs {
				got = append(got, p.Channel)
				assert.Contains(t, string(p.Data), `"type":"`+tc.typ+`"`)
			}
			assert.ElementsMatch(t, want, got)
			assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(tc.cmd, callback.ResultPublished)))
			assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(tc.cmd, callback.ResultDuplicate)), "the retry")
		})
	}
	// Nothing else arrived before a last event: no retry was published late.
	total := len(f.rec.Publications())
	f.do(t, http.MethodPost, query(openApp, callback.CommandGroupSend), seed(t, "group_send"))
	assert.Len(t, f.rec.WaitCount(t, total+2), total+2)
	assert.Equal(t, 2+4+4+3+2+2+2, total)
}

// Two edits of one message are two events and two extension changes of
// it are two, each retry of them none, and, posted one after another,
// they reach the message's channel in that order: the IM documents' examples
// (https://cloud.tencent.com/document/product/269/129193,
// https://cloud.tencent.com/document/product/269/128224,
// https://www.tencentcloud.com/document/product/1047/76007) and a second
// edit of each message.
func TestHandlerEditsAndExtensions(t *testing.T) {
	f := newFixture(t, nil)
	for _, ch := range []string{"group:group-test-2", "user:Jonh", "group:test"} {
		require.NoError(t, f.broker.Subscribe(context.Background(), openApp, ch))
	}
	secondEdit := strings.Replace(strings.Replace(seed(t, "group_msg_modified"), "1772762975589", "1772763000000", 1), "2026-03-06T02:09:35.302Z", "third time", 1)
	secondC2CEdit := strings.Replace(seed(t, "c2c_msg_modified"), "1769772027036", "1769772099000", 1)
	for _, c := range []struct{ cmd, body string }{
		{callback.CommandGroupModify, seed(t, "group_msg_modified")},
		{callback.CommandGroupModify, seed(t, "group_msg_modified")},
		{callback.CommandGroupModify, secondEdit},
		{callback.CommandGroupModify, secondEdit},
		{callback.CommandC2CModify, seed(t, "c2c_msg_modified")},
		{callback.CommandC2CModify, secondC2CEdit},
		{callback.CommandC2CModify, seed(t, "c2c_msg_modified")},
		{callback.CommandGroupExtension, seed(t, "group_msg_extension_set")},
		{callback.CommandGroupExtension, seed(t, "group_msg_extension_set")},
		{callback.CommandGroupExtension, seed(t, "group_msg_extension_delete")},
		{callback.CommandGroupExtension, seed(t, "group_msg_extension_clear")},
		{callback.CommandGroupExtension, seed(t, "group_msg_extension_delete")},
	} {
		code, body := f.do(t, http.MethodPost, query(openApp, c.cmd), c.body)
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, ok, body)
	}
	// Two group edits, two one-to-one edits, three extension changes, each
	// on its channel and on "app".
	byChannel := editsByChannel(t, f.rec.WaitCount(t, 2*7))
	assert.Equal(t, []string{"group.message.modified 1772762975589 0 ", "group.message.modified 1772763000000 0 "}, byChannel["group:group-test-2"])
	assert.Equal(t, []string{"c2c.message.modified 1769772027036 0 ", "c2c.message.modified 1769772099000 0 "}, byChannel["user:Jonh"])
	assert.Equal(t, []string{
		"group.message.extension 1764688294360 56 set",
		"group.message.extension 1764688312045 57 delete",
		"group.message.extension 1764688329047 58 clear",
	}, byChannel["group:test"])
	assert.Equal(t, 2.0, testutil.ToFloat64(f.counter(callback.CommandGroupModify, callback.ResultDuplicate)))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(callback.CommandC2CModify, callback.ResultDuplicate)))
	assert.Equal(t, 2.0, testutil.ToFloat64(f.counter(callback.CommandGroupExtension, callback.ResultDuplicate)))
	// Nothing else arrives: no repeat was published late.
	f.do(t, http.MethodPost, query(openApp, callback.CommandGroupModify), strings.Replace(secondEdit, "1772763000000", "1772763111000", 1))
	pubs := f.rec.WaitCount(t, 2*8)
	assert.Len(t, pubs, 2*8)
	assert.Len(t, editsByChannel(t, pubs)["app"], 8)
}

// editsByChannel is each channel's publications, in order, as type, time,
// extension_seq and operation.
func editsByChannel(t *testing.T, pubs []broker.Publication) map[string][]string {
	t.Helper()
	byChannel := map[string][]string{}
	for _, p := range pubs {
		var ev struct {
			Type         string
			Time         int64
			ExtensionSeq int64 `json:"extension_seq"`
			Operation    string
		}
		require.NoError(t, json.Unmarshal(p.Data, &ev))
		byChannel[p.Channel] = append(byChannel[p.Channel], fmt.Sprintf("%s %d %d %s", ev.Type, ev.Time, ev.ExtensionSeq, ev.Operation))
	}
	return byChannel
}

// Every rejection of the contract, in the order the checks run: the first
// that fails answers, with its status and an IM-shaped body, and nothing
// is published.
func TestHandlerRejects(t *testing.T) {
	big := `{"GroupId":"G","MsgSeq":1,"MsgBody":[],"pad":"` + strings.Repeat("x", 5000) + `"}`
	signedQ := func(mod func(url.Values)) url.Values {
		q := signed(query(signedApp, callback.CommandGroupSend), now, token)
		mod(q)
		return q
	}
	for _, tc := range []struct {
		name   string
		method string
		q      url.Values
		body   string
		status int
		reason string
		result string
	}{
		{"GET", http.MethodGet, query(openApp, callback.CommandGroupSend), seed(t, "group_send"), 405, "method must be POST", callback.ResultBadMethod},
		{"PUT before unknown app", http.MethodPut, query("999", callback.CommandGroupSend), "", 405, "method must be POST", callback.ResultBadMethod},
		{"unknown app", http.MethodPost, query("999", callback.CommandGroupSend), seed(t, "group_send"), 403, "SdkAppid is not an app of this hub", callback.ResultUnknownApp},
		{"no app", http.MethodPost, url.Values{"CallbackCommand": {callback.CommandGroupSend}}, seed(t, "group_send"), 403, "SdkAppid is not an app of this hub", callback.ResultUnknownApp},
		{"unknown app before bad sign", http.MethodPost, signed(query("999", callback.CommandGroupSend), now, "wrong"), big, 403, "SdkAppid is not an app of this hub", callback.ResultUnknownApp},
		{"no sign", http.MethodPost, query(signedApp, callback.CommandGroupSend), seed(t, "group_send"), 401, "Sign and RequestTime are required for this app", callback.ResultUnauthorized},
		{"wrong token", http.MethodPost, signed(query(signedApp, callback.CommandGroupSend), now, "guess"), seed(t, "group_send"), 401, "Sign does not match", callback.ResultUnauthorized},
		{"uppercase sign", http.MethodPost, signedQ(func(q url.Values) { q.Set("Sign", strings.ToUpper(q.Get("Sign"))) }), seed(t, "group_send"), 401, "Sign does not match", callback.ResultUnauthorized},
		{"sign of other time", http.MethodPost, signedQ(func(q url.Values) { q.Set("RequestTime", strconv.FormatInt(now.Unix()+1, 10)) }), seed(t, "group_send"), 401, "Sign does not match", callback.ResultUnauthorized},
		{"stale", http.MethodPost, signed(query(signedApp, callback.CommandGroupSend), now.Add(-61*time.Second), token), seed(t, "group_send"), 401, "RequestTime is more than 60s from the hub's clock", callback.ResultUnauthorized},
		{"future", http.MethodPost, signed(query(signedApp, callback.CommandGroupSend), now.Add(61*time.Second), token), seed(t, "group_send"), 401, "RequestTime is more than 60s from the hub's clock", callback.ResultUnauthorized},
		{"time not a number", http.MethodPost, signedQ(func(q url.Values) { q.Set("RequestTime", "yesterday") }), seed(t, "group_send"), 401, "RequestTime is not unix seconds", callback.ResultUnauthorized},
		{"bad sign before too large", http.MethodPost, signed(query(signedApp, callback.CommandGroupSend), now, "guess"), big, 401, "Sign does not match", callback.ResultUnauthorized},
		{"too large", http.MethodPost, query(openApp, callback.CommandGroupSend), big, 413, "body is larger than 4096 bytes", callback.ResultTooLarge},
		{"too large signed", http.MethodPost, signedQ(func(url.Values) {}), big, 413, "body is larger than 4096 bytes", callback.ResultTooLarge},
		{"too large before bad json", http.MethodPost, query(openApp, callback.CommandGroupSend), "[" + big, 413, "body is larger than 4096 bytes", callback.ResultTooLarge},
		{"no command", http.MethodPost, url.Values{"SdkAppid": {openApp}}, seed(t, "group_send"), 400, "CallbackCommand query parameter is required", callback.ResultBadRequest},
		{"not json", http.MethodPost, query(openApp, callback.CommandGroupSend), `GroupId=G`, 400, "body is not a JSON object", callback.ResultBadRequest},
		{"command mismatch", http.MethodPost, query(openApp, callback.CommandGroupRecall), seed(t, "group_send"), 400, `CallbackCommand \"Group.CallbackAfterSendMsg\" in the body differs from \"Group.CallbackAfterRecallMsg\" in the query`, callback.ResultBadRequest},
		{"missing field", http.MethodPost, query(openApp, callback.CommandC2CWithdraw), `{"From_Account":"a","To_Account":"b"}`, 400, "MsgKey: required string is missing", callback.ResultBadRequest},
		{"wrong type", http.MethodPost, query(openApp, callback.CommandGroupSend), `{"GroupId":"G","MsgSeq":"1","MsgBody":[]}`, 400, "MsgSeq: want integer, got string", callback.ResultBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			code, body := f.do(t, tc.method, tc.q, tc.body)
			assert.Equal(t, tc.status, code)
			assert.Equal(t, fail(tc.reason), body)
			assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(tc.q.Get("CallbackCommand"), tc.result)))
			assert.Empty(t, f.rec.Publications(), "a rejected callback publishes nothing")
		})
	}
}

func TestHandlerMethodNotAllowedSaysAllow(t *testing.T) {
	f := newFixture(t, nil)
	req := httptest.NewRequest(http.MethodGet, "/im/callback", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	assert.Equal(t, "POST", w.Header().Get("Allow"))
}

// A body that claims a size over the limit is refused before it is read.
func TestHandlerTooLargeByContentLength(t *testing.T) {
	f := newFixture(t, nil)
	req := httptest.NewRequest(http.MethodPost, "/im/callback?"+query(openApp, callback.CommandGroupSend).Encode(), io.NopCloser(strings.NewReader("{}")))
	req.ContentLength = 1 << 30
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
}

type downPublisher struct{}

func (downPublisher) Publish(context.Context, broker.Message) (broker.Result, error) {
	return broker.Result{}, errors.Join(broker.ErrUnavailable, errors.New("connection refused"))
}

// An event that cannot be made durable is never acknowledged.
func TestHandlerUnavailable(t *testing.T) {
	f := newFixture(t, downPublisher{})
	code, body := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupSend), seed(t, "group_send"))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, fail("event could not be stored, retry later"), body)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.counter(callback.CommandGroupSend, callback.ResultUnavailable)))
}

func (f *fixture) counter(cmd, result string) prometheus.Collector {
	return f.metrics.CounterForTest(cmd, result)
}

// Text that is not valid UTF-8 never reaches a client: each bad byte
// becomes U+FFFD, wherever it was (a string field, a key, MsgBody passed
// through as it is, the query), and the callback is counted. A text frame
// that is not UTF-8 fails the client's connection, and the event would be
// replayed from history on every reconnect.
func TestHandlerRepairsInvalidUTF8(t *testing.T) {
	const bad = "\uFFFD"
	groupSend := func(fields string) string {
		return `{"GroupId":"G","MsgSeq":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]` + fields + `}`
	}
	for _, tc := range []struct {
		name     string
		cmd      string
		query    map[string]string
		body     string
		channel  string // the event's own channel, besides "app"
		want     string // in the published event
		repaired bool
	}{
		{"From_Account", callback.CommandC2CWithdraw, nil, `{"From_Account":"ja` + "\xff" + `red","To_Account":"b","MsgKey":"k"}`,
			"user:ja" + bad + "red", `"from":"ja` + bad + `red"`, true},
		{"GroupId", callback.CommandGroupSend, nil, `{"GroupId":"G` + "\xfe" + `1","MsgSeq":1,"MsgBody":[]}`,
			"group:G" + bad + "1", `"group_id":"G` + bad + `1"`, true},
		{"MsgBody text, a cut sequence", callback.CommandGroupSend, nil,
			`{"GroupId":"G","MsgSeq":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red ` + "\xe7\xba" + ` packet"}}]}`,
			"group:G", `"Text":"red ` + bad + bad + ` packet"`, true},
		{"MsgBody text, an overlong sequence", callback.CommandGroupSend, nil,
			`{"GroupId":"G","MsgSeq":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"` + "\xf0\x80\x80\x80" + `"}}]}`,
			"group:G", `"Text":"` + bad + bad + bad + bad + `"`, true},
		{"MsgBody key", callback.CommandGroupSend, nil,
			`{"GroupId":"G","MsgSeq":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgCont` + "\xff" + `ent":{"Text":"hi"}}]}`,
			"group:G", `"MsgCont` + bad + `ent":{"Text":"hi"}`, true},
		{"CloudCustomData, an encoded surrogate", callback.CommandGroupSend, nil, groupSend(`,"CloudCustomData":"a` + "\xed\xa0\x80" + `b"`),
			"group:G", `"cloud_custom_data":"a` + bad + bad + bad + `b"`, true},
		{"C2C MsgBody and ErrorInfo", callback.CommandC2CSend, nil,
			`{"From_Account":"a","To_Account":"b","MsgKey":"k","SendMsgResult":1,"ErrorInfo":"` + "\x80" + `","MsgBody":[{"MsgType":"TIMCustomElem","MsgContent":{"Data":"` + "\xc0\xaf" + `"}}]}`,
			"user:a", `"body":[{"MsgType":"TIMCustomElem","MsgContent":{"Data":"` + bad + bad + `"}}]`, true},
		{"a key that is not ours", callback.CommandGroupSend, nil, groupSend(`,"Ext` + "\xff" + `":"x"`),
			"group:G", `"group_id":"G"`, true},
		{"ClientIP in the query", callback.CommandGroupSend, map[string]string{"ClientIP": "10.0.0.\xff"}, groupSend(``),
			"group:G", `"client_ip":"10.0.0.` + bad + `"`, true},
		{"OptPlatform in the query", callback.CommandGroupSend, map[string]string{"OptPlatform": "i\xffOS"}, groupSend(``),
			"group:G", `"platform":"i` + bad + `OS"`, true},
		{"Info.To_Account", callback.CommandStateChange, nil, `{"Info":{"Action":"Login","To_Account":"u` + "\xfe" + `"},"EventTime":1}`,
			"user:u" + bad, `"from":"u` + bad + `"`, true},
		{"KickedDevice platform", callback.CommandStateChange, nil, `{"Info":{"Action":"Login","To_Account":"u"},"KickedDevice":[{"Platform":"W` + "\xc0" + `eb"}]}`,
			"user:u", `"kicked_devices":[{"platform":"W` + bad + `eb"}]`, true},
		{"a new member", callback.CommandGroupMemberJoin, nil, `{"GroupId":"G","NewMemberList":[{"Member_Account":"ja` + "\xff" + `red"}]}`,
			"user:ja" + bad + "red", `"members":["ja` + bad + `red"]`, true},
		{"the operator who kicked", callback.CommandGroupMemberExit, nil, `{"GroupId":"G","Operator_Account":"` + "\xe7\xba" + `","ExitMemberList":[{"Member_Account":"a"}]}`,
			"user:a", `"operator":"` + bad + bad + `"`, true},
		{"the reader", callback.CommandC2CReport, nil, `{"Report_Account":"r` + "\x80" + `","Peer_Account":"p","LastReadTime":1}`,
			"user:r" + bad, `"from":"r` + bad + `"`, true},
		{"a receipt's member list, not ours", callback.CommandGroupReadReceipt, nil,
			`{"GroupId":"G","GroupMsgReceiptList":[{"MsgSeq":1,"ReadNum":1,"UnreadNum":0,"ReadReceiptMembers":[{"Member_Account":"` + "\xff" + `"}]}]}`,
			"group:G", `"receipts":[{"seq":1,"read":1,"unread":0}]`, true},
		{"a destroyed group's id", callback.CommandGroupDestroyed, nil, `{"GroupId":"G` + "\xf0\x80\x80\x80" + `"}`,
			"group:G" + bad + bad + bad + bad, `"group_id":"G` + bad + bad + bad + bad + `"`, true},
		{"a changed custom field", callback.CommandGroupInfoChanged, nil,
			`{"GroupId":"G","UserDefinedDataList":[{"Key":"k` + "\xed\xa0\x80" + `","Value":"v` + "\xff" + `"}]}`,
			"group:G", `"custom":{"k` + bad + bad + bad + `":"v` + bad + `"}`, true},
		{"valid text, U+FFFD itself included, is not counted", callback.CommandGroupSend, nil, groupSend(`,"CloudCustomData":"紅包 ` + bad + ` 🧧"`),
			"group:G", `"cloud_custom_data":"紅包 ` + bad + ` 🧧"`, false},
		{"escaped text is not counted", callback.CommandGroupSend, nil, groupSend(`,"CloudCustomData":"\u00ff"`),
			"group:G", `"cloud_custom_data":"ÿ"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			require.NoError(t, f.broker.Subscribe(context.Background(), openApp, tc.channel))
			q := query(openApp, tc.cmd)
			for k, v := range tc.query {
				q.Set(k, v)
			}
			code, resp := f.do(t, http.MethodPost, q, tc.body)
			require.Equal(t, http.StatusOK, code, resp)
			pubs := f.rec.WaitCount(t, 2)
			var channels []string
			for _, p := range pubs {
				channels = append(channels, p.Channel)
				assert.True(t, utf8.Valid(p.Data), "published event is not UTF-8: %q", p.Data)
				assert.True(t, json.Valid(p.Data), "published event is not JSON: %q", p.Data)
				assert.Contains(t, string(p.Data), tc.want)
			}
			assert.ElementsMatch(t, []string{"app", tc.channel}, channels)
			wantCount := 0.0
			if tc.repaired {
				wantCount = 1
			}
			assert.Equal(t, wantCount, testutil.ToFloat64(f.metrics.InvalidUTF8ForTest(tc.cmd)), "callbacks repaired")
		})
	}
}

// Nothing a caller sends reaches a log line or an answer whole: an
// unauthenticated caller must not be able to write a megabyte to the log
// with every request. Debug lines too; the one that shows a published
// event shows its first 4 KiB.
func TestHandlerBoundsEchoedText(t *testing.T) {
	const (
		maxAnswer     = 512  // bytes of the whole answer body
		maxLogLine    = 1024 // bytes of one log line
		maxEventLine  = 5120 // bytes of the line that shows an event
		publishedLine = `"msg":"event published"`
	)
	huge := strings.Repeat("7", 1<<20)
	hugeCmd := "Group." + strings.Repeat("X", 1<<20)
	field := strings.Repeat("9", 100<<10)
	// A join goes to each member's channel: the line that shows it must
	// not show every channel.
	var members []string
	for i := range 1000 {
		members = append(members, `{"Member_Account":"`+strings.Repeat("m", 196)+fmt.Sprintf("%04d", i)+`"}`)
	}
	manyMembers := `{"GroupId":"G","NewMemberList":[` + strings.Join(members, ",") + `]}`
	for _, tc := range []struct {
		name   string
		q      url.Values
		body   string
		status int
		reason string // the answer's ErrorInfo starts with it
	}{
		{"1 MB SdkAppid", query(huge, callback.CommandGroupSend), seed(t, "group_send"), 403, "SdkAppid is not an app"},
		{"1 MB CallbackCommand, unknown app", query(huge, hugeCmd), "", 403, "SdkAppid is not an app"},
		{"1 MB CallbackCommand against the body's", query(openApp, hugeCmd), seed(t, "group_send"), 400, "CallbackCommand"},
		{"1 MB CallbackCommand, GET", url.Values{"SdkAppid": {huge}, "CallbackCommand": {hugeCmd}}, "", 405, "method must be POST"},
		{"1 MB Sign and RequestTime", url.Values{"SdkAppid": {signedApp}, "CallbackCommand": {hugeCmd}, "Sign": {huge}, "RequestTime": {huge}}, "", 401, "RequestTime"},
		{"100 KB integer", query(openApp, callback.CommandGroupSend), `{"GroupId":"G","MsgSeq":` + field + `,"MsgBody":[]}`, 400, "MsgSeq: want integer"},
		{"100 KB CallbackCommand in the body", query(openApp, callback.CommandGroupSend), `{"CallbackCommand":"` + field + `"}`, 400, "CallbackCommand"},
		{"100 KB object as CallbackCommand", query(openApp, callback.CommandGroupSend), `{"CallbackCommand":{"a":"` + field + `"}}`, 400, "CallbackCommand"},
		{"100 KB recall entry", query(openApp, callback.CommandGroupRecall), `{"GroupId":"G","MsgSeqList":[{"MsgSeq":` + field + `}]}`, 400, "MsgSeqList[0].MsgSeq: want integer"},
		{"1 MB CallbackCommand, ignored", query(openApp, hugeCmd), "{\"x\":\"\xff\"}", 200, ""},
		{"100 KB published", query(openApp, callback.CommandGroupSend), `{"GroupId":"G","MsgSeq":1,"MsgBody":[],"CloudCustomData":"` + field + `"}`, 200, ""},
		{"1000 members of 200 bytes published", query(openApp, callback.CommandGroupMemberJoin), manyMembers, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			method := http.MethodPost
			if tc.status == http.StatusMethodNotAllowed {
				method = http.MethodGet
			}
			// The body limit is not what is tested here.
			req := httptest.NewRequest(method, "/im/callback?"+tc.q.Encode(), strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			callback.NewHandler(callback.Config{
				Apps:    []callback.App{{ID: openApp}, {ID: signedApp, Token: token}},
				Metrics: f.metrics,
				Logger:  slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Now:     func() time.Time { return now },
			}, f.broker).ServeHTTP(w, req)
			assert.Equal(t, tc.status, w.Code)
			assert.LessOrEqual(t, w.Body.Len(), maxAnswer, "answer %.300q…", w.Body.String())
			var resp struct{ ErrorInfo string }
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp))
			assert.True(t, strings.HasPrefix(resp.ErrorInfo, tc.reason), "ErrorInfo %.300q", resp.ErrorInfo)
			assert.True(t, utf8.ValidString(resp.ErrorInfo))
			lines := strings.Split(strings.TrimSuffix(f.logs.String(), "\n"), "\n")
			require.NotEmpty(t, lines)
			if tc.status != http.StatusOK {
				assert.Contains(t, lines[len(lines)-1], "callback rejected")
			}
			for _, line := range lines {
				limit := maxLogLine
				if strings.Contains(line, publishedLine) {
					limit = maxEventLine
				}
				assert.LessOrEqual(t, len(line), limit, "log line %.300q…", line)
			}
		})
	}
}
