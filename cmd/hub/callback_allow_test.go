package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// postFrom posts a group message callback for app 100 to p, with
// X-Forwarded-For xff unless empty, and returns the status and body.
func postFrom(t *testing.T, p *hubtest.Process, xff string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", p.URL("/im/callback?SdkAppid=100&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json"),
		strings.NewReader(fmt.Sprintf(groupSend, 1, 1)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// -callback-allow refuses callbacks from outside its ranges with 403 in the
// IM's body shape, counted with their own result; behind -trusted-proxies
// the address checked is the one the proxy forwards. The IM publishes the
// ranges its callbacks come from through its REST API v4/ConfigSvc/GetIPList
// (nettype=5 inside the Chinese mainland, 6 outside it), documented at
// https://www.tencentcloud.com/document/product/1047/36742
func TestBinaryCallbackAllow(t *testing.T) {
	refused := `{"ActionStatus":"FAIL","ErrorInfo":"callbacks are not accepted from 127.0.0.1: it is outside the hub's -callback-allow ranges","ErrorCode":1}`

	p := hubtest.Start(t, []string{"-apps", "100,200:cbtoken", "-jwt-secret", clusterSecret, "-callback-allow", "10.0.0.0/8"})
	code, body := postFrom(t, p, "")
	assert.Equal(t, 403, code)
	assert.Equal(t, refused, body)
	code, body = postFrom(t, p, "10.1.2.3")
	assert.Equal(t, 403, code, "X-Forwarded-For of a proxy that is not trusted is ignored")
	assert.Equal(t, refused, body)
	_, metrics := p.Get("/metrics")
	assert.Contains(t, metrics, `imhub_callbacks_total{command="Group.CallbackAfterSendMsg",result="forbidden_address"} 2`)
	assert.NotContains(t, metrics, `result="published"`)

	// One warning for the app without a callback token, none for the other.
	warned := map[string]int{}
	for _, l := range p.LogLines() {
		if l["level"] == "WARN" && strings.HasPrefix(fmt.Sprint(l["msg"]), "app has no callback token") {
			warned[fmt.Sprint(l["app"])]++
		}
	}
	assert.Equal(t, map[string]int{"100": 1}, warned)

	p = hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-callback-allow", "127.0.0.0/8"})
	code, body = postFrom(t, p, "")
	assert.Equal(t, 200, code, body)

	p = hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-callback-allow", "10.0.0.0/8,203.0.113.7",
		"-trusted-proxies", "127.0.0.1/32"})
	code, body = postFrom(t, p, "10.1.2.3")
	assert.Equal(t, 200, code, body)
	code, body = postFrom(t, p, "198.51.100.1, 203.0.113.7")
	assert.Equal(t, 200, code, "the rightmost address the proxy vouches for is checked: %s", body)
	code, body = postFrom(t, p, "203.0.113.7, 198.51.100.1")
	assert.Equal(t, 403, code, "an allowed address claimed left of the real one does not count")
	assert.Contains(t, body, "not accepted from 198.51.100.1")
	code, _ = postFrom(t, p, "")
	assert.Equal(t, 403, code, "the proxy itself is not an allowed source")
}
