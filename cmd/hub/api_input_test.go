package main

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/internal/hubtest"
)

// apiKey2 is app 200's key in these tests.
const apiKey2 = "api-test-key-of-app-200-abcdef"

// startAPIHub starts a hub with the in-process broker that serves apps
// 100, 200 and 300, with keys for the first two.
func startAPIHub(t *testing.T, extra ...string) *hubtest.Process {
	t.Helper()
	return hubtest.Start(t, append([]string{"-apps", "100,200,300", "-jwt-secret", clusterSecret,
		"-api-keys", "100:" + apiKey + ",200:" + apiKey2}, extra...))
}

// apiCall makes one server API request of p and returns the response, its
// body read and closed, and the body's JSON.
func apiCall(t *testing.T, p *hubtest.Process, method, path, key, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL(path), strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "apikey "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out), "answer is JSON: %s", data)
	return resp, out
}

// A body whose keys differ from the API's names in case, or that names a
// key twice, is refused with a message naming the key, and publishes
// nothing: a proxy in front that checks channel sees the channel the hub
// would use, or the hub uses none.
func TestBinaryAPIKeysExact(t *testing.T) {
	p := startAPIHub(t)
	eve := dialUser(t, p, mintAt(t, "eve", time.Now()))
	for _, tc := range []struct{ body, msg string }{
		{`{"channel":"user:bob","Channel":"user:eve","data":"for bob"}`, `unknown key "Channel": names match exactly; did you mean "channel"?`},
		{`{"CHANNEL":"user:eve","data":"for bob"}`, `unknown key "CHANNEL"`},
		{`{"channel":"user:bob","data":"for bob","channel":"user:eve"}`, `key "channel" is given more than once`},
		{`{"channel":"user:eve","data":"for bob","chanel":"user:bob"}`, `unknown key "chanel": this call takes app, channel, data, idempotency_key`},
	} {
		resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, tc.body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.body)
		assert.Contains(t, out["error"], tc.msg, tc.body)
	}
	resp, out := apiCall(t, p, "GET", "/api/presence?channel=user:bob&channel=user:eve", apiKey, "")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, out["error"], `query parameter "channel" is given more than once`)

	resp, out = apiCall(t, p, "POST", "/api/publish", apiKey, `{"channel":"user:eve","data":"for eve"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	f := eve.ReadOp("event")
	assert.Equal(t, out["offset"], f.Offset, "the first event eve gets is the one meant for her")
	assert.Contains(t, string(f.Event), `"data":"for eve"`)
}

// issued_before must be unix seconds from 1970 to a minute ahead of the
// hub's clock: the largest int64, which once wrapped round to a time long
// past and was answered 200 while revoking nothing, is refused, as are
// milliseconds and values past int64; within the bounds a revocation
// closes the user's session.
func TestBinaryAPIRevokeIssuedBeforeBounds(t *testing.T) {
	p := startAPIHub(t)
	ann := dialUser(t, p, mintAt(t, "ann", time.Now().Add(-10*time.Second)))
	now := time.Now().Unix()
	for _, v := range []string{
		strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(1<<62, 10), strconv.FormatInt(now*1000, 10),
		strconv.FormatInt(now+3600, 10), "9223372036854775808", "0", "-1", strconv.FormatInt(math.MinInt64, 10),
	} {
		resp, out := apiCall(t, p, "POST", "/api/revoke", apiKey, `{"user":"ann","issued_before":`+v+`}`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "issued_before %s: %v", v, out)
	}
	resp, out := apiCall(t, p, "POST", "/api/revoke", apiKey, `{"user":"ann","issued_before":`+strconv.FormatInt(now+1, 10)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	ann.ExpectClose(hub.CloseDisconnected)
}

// A key asking about any app but its own is answered 403 with the same
// message, whether the hub serves that app (with another key, or with
// none) or not: a key does not learn which apps share the hub.
func TestBinaryAPIOtherAppsAlike(t *testing.T) {
	p := startAPIHub(t)
	answer := func(app string) (int, string) {
		resp, out := apiCall(t, p, "POST", "/api/publish", apiKey, `{"app":"`+app+`","channel":"user:jared","data":1}`)
		msg, _ := out["error"].(string)
		return resp.StatusCode, strings.ReplaceAll(msg, app, "<app>")
	}
	status, msg := answer("200")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "the API key is not for app <app>", msg)
	for _, app := range []string{"300", "999", "1400000000"} {
		s, m := answer(app)
		assert.Equal(t, status, s, "app %s", app)
		assert.Equal(t, msg, m, "app %s", app)
	}
	resp, out := apiCall(t, p, "GET", "/api/presence?app=999&channel=app", apiKey, "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "the API key is not for app 999", out["error"])
}
