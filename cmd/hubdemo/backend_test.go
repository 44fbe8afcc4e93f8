package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/internal/hubtest"
)

const backendToken = "backend-test-token"

var backendNow = time.Unix(1700000000, 0)

func startBackend(t *testing.T, token string) (*httptest.Server, *hubtest.SyncBuffer) {
	t.Helper()
	logs := &hubtest.SyncBuffer{}
	srv := httptest.NewServer(newBackend(backendConfig{
		App: "1400000000", Token: token,
		Log: slog.New(slog.NewTextHandler(logs, nil)),
		Now: func() time.Time { return backendNow },
	}))
	t.Cleanup(srv.Close)
	return srv, logs
}

// signedQuery is the query string the IM (or the hub forwarding) sends.
func signedQuery(app, cmd, token string, at time.Time) url.Values {
	q := url.Values{"SdkAppid": {app}, "CallbackCommand": {cmd}, "contenttype": {"json"}, "ClientIP": {"10.0.0.7"}, "OptPlatform": {"iOS"}}
	if token != "" {
		rt := strconv.FormatInt(at.Unix(), 10)
		q.Set("RequestTime", rt)
		q.Set("Sign", callback.Sign(token, rt))
	}
	return q
}

func postBackend(t *testing.T, srv *httptest.Server, method string, q url.Values, body string) (int, answer) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/?"+q.Encode(), strings.NewReader(body))
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "the IM's answer shape")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var a answer
	require.NoError(t, json.Unmarshal(b, &a), "%s", b)
	return resp.StatusCode, a
}

// Each callback the demo makes is acknowledged with the IM's OK and logged
// by command with a summary read from the documented fields.
func TestBackendLogsAndAcknowledges(t *testing.T) {
	srv, logs := startBackend(t, backendToken)
	g := newGenerator(rand.New(rand.NewPCG(7, 8)), "jared")
	want := map[string]string{
		cmdState:          `summary="\S+ (Login|Logout|Disconnect) \((Register|Unregister|LinkClose|TimeOut)\)`,
		cmdMemberJoin:     `summary="[^"]+ joined \S+ \((Apply|Invited), by \S+\)"`,
		cmdMemberExit:     `summary="\S+ left \S+ \((Kicked|Quit), by \S+\)"`,
		cmdC2CRead:        `summary="\S+ read the chat with \S+ \(\d+ unread\)"`,
		cmdReadReceipt:    `summary="\S+: #\d+ read by \d+`,
		cmdGroupDestroyed: `summary="@TGS#3TMP\w+ \\"[^"]+\\" disbanded, owner \S+, members `,
		cmdGroupInfo:      `summary="\S+ changed \S+: (Name|Introduction|Notification|FaceUrl) `,
		cmdGroupSend:      `summary="\S+ in \S+: `,
		cmdC2CSend:        `summary="\S+ to \S+: `,
	}
	done := map[string]bool{}
	for i := 0; len(done) < len(want) && i < 2000; i++ {
		c := g.next(time.Unix(1700000000, 0))
		g.verdict(true)
		if _, ok := want[c.cmd]; !ok || done[c.cmd] {
			continue
		}
		status, a := postBackend(t, srv, http.MethodPost, signedQuery("1400000000", c.cmd, backendToken, backendNow), c.body)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, answer{ActionStatus: "OK"}, a)
		done[c.cmd] = true
	}
	for cmd, re := range want {
		assert.Regexp(t, `msg=callback command=`+strings.ReplaceAll(cmd, ".", `\.`)+` `+re, logs.String(), cmd)
	}
}

// Group.CallbackBeforeSendMsg gets the IM's verdict: one message in ten is
// denied (ActionStatus OK, ErrorCode 1), the others allowed (ErrorCode 0).
func TestBackendDeniesOneGroupMessageInTen(t *testing.T) {
	srv, logs := startBackend(t, "")
	g := newGenerator(rand.New(rand.NewPCG(9, 10)), "jared")
	var denied []int
	for i := 1; i <= 30; i++ {
		c := g.beforeSend(time.Unix(1700000000, 0))
		status, a := postBackend(t, srv, http.MethodPost, signedQuery("1400000000", c.cmd, "", backendNow), c.body)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "OK", a.ActionStatus, "a verdict is an answer the backend gave, not a failure")
		switch a.ErrorCode {
		case verdictDeny:
			denied = append(denied, i)
			assert.NotEmpty(t, a.ErrorInfo)
		case verdictAllow:
			assert.Empty(t, a.ErrorInfo)
		default:
			t.Fatalf("ErrorCode %d", a.ErrorCode)
		}
	}
	assert.Equal(t, []int{10, 20, 30}, denied)
	assert.Equal(t, 3, strings.Count(logs.String(), "verdict=deny"))
	assert.Equal(t, 27, strings.Count(logs.String(), "verdict=allow"))
}

// Every refusal answers the IM's FAIL shape with a status that says why.
func TestBackendRefusals(t *testing.T) {
	srv, logs := startBackend(t, backendToken)
	body := `{"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"jared","Peer_Account":"Jonh","LastReadTime":1614754606,"UnreadMsgNum":7}`
	cmd := cmdC2CRead
	good := func() url.Values { return signedQuery("1400000000", cmd, backendToken, backendNow) }
	for _, tc := range []struct {
		name   string
		method string
		q      url.Values
		body   string
		status int
		info   string
	}{
		{"GET", http.MethodGet, good(), "", http.StatusMethodNotAllowed, "POST"},
		{"another app", http.MethodPost, signedQuery("1400000001", cmd, backendToken, backendNow), body, http.StatusForbidden, "SdkAppid"},
		{"no Sign", http.MethodPost, signedQuery("1400000000", cmd, "", backendNow), body, http.StatusUnauthorized, "Sign"},
		{"Sign of another token", http.MethodPost, signedQuery("1400000000", cmd, "another-token", backendNow), body, http.StatusUnauthorized, "Sign"},
		{"RequestTime too old", http.MethodPost, signedQuery("1400000000", cmd, backendToken, backendNow.Add(-2*time.Minute)), body, http.StatusUnauthorized, "Sign"},
		{"not JSON", http.MethodPost, good(), "Report_Account=jared", http.StatusBadRequest, "JSON object"},
		{"null", http.MethodPost, good(), "null", http.StatusBadRequest, "JSON object"},
		{"too large", http.MethodPost, good(), `{"x":"` + strings.Repeat("a", maxBackendBody) + `"}`, http.StatusRequestEntityTooLarge, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a := postBackend(t, srv, tc.method, tc.q, tc.body)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, "FAIL", a.ActionStatus)
			assert.Equal(t, 1, a.ErrorCode)
			assert.Contains(t, a.ErrorInfo, tc.info)
		})
	}
	assert.NotContains(t, logs.String(), "msg=callback ", "nothing refused is taken as a callback")
	status, a := postBackend(t, srv, http.MethodPost, good(), body)
	assert.Equal(t, http.StatusOK, status, "and a good one is")
	assert.Equal(t, answer{ActionStatus: "OK"}, a)
}

// The demo's sender, pointed at the backend as the IM would be, prints the
// verdict of each group message it checks, and sends only those allowed.
func TestSenderPrintsVerdicts(t *testing.T) {
	srv, _ := startBackend(t, "")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, demoConfig{Base: srv.URL, App: "1400000000", Rate: 2000, Count: 300, PageUser: "jared"}, &out))
	s := out.String()
	assert.Contains(t, s, "300 callbacks posted, 0 refused")
	assert.Regexp(t, `(?m)^hubdemo: Group\.CallbackBeforeSendMsg \S+ in \S+: .*: allowed$`, s)
	assert.Regexp(t, `(?m)^hubdemo: Group\.CallbackBeforeSendMsg \S+ in \S+: .*: denied \(ErrorCode 1 "demo: one message in 10 is refused"\)$`, s)
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		allow  bool
		text   string
	}{
		{200, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, true, "allowed"},
		{200, `{"ActionStatus":"OK","ErrorInfo":"spam","ErrorCode":1}`, false, `denied (ErrorCode 1 "spam")`},
		{200, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":10100}`, false, "denied (ErrorCode 10100"},
		{200, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":2}`, false, "discarded silently"},
		{503, `{"ActionStatus":"FAIL","ErrorInfo":"x","ErrorCode":1}`, true, "no verdict"},
		{200, `not json`, true, "no verdict"},
	} {
		allow, text := verdict(tc.status, []byte(tc.body))
		assert.Equal(t, tc.allow, allow, tc.body)
		assert.Contains(t, text, tc.text, tc.body)
	}
}
