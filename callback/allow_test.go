package callback_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/internal/clientaddr"
)

// Only callbacks from the allowed ranges reach the handler behind Allow;
// the others are answered 403 in the IM's shape and counted. The IM lists
// the ranges its callbacks come from through v4/ConfigSvc/GetIPList:
// https://www.tencentcloud.com/document/product/1047/36742
func TestAllow(t *testing.T) {
	allowed, err := clientaddr.Parse("183.192.202.0/25, 127.0.0.2")
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		allowed clientaddr.Prefixes
		remote  string
		pass    bool
	}{
		{"no ranges: any address", nil, "198.51.100.1:4000", true},
		{"in a range", allowed, "183.192.202.77:4000", true},
		{"a single address", allowed, "127.0.0.2:4000", true},
		{"outside", allowed, "183.192.202.200:4000", false},
		{"IPv6 outside", allowed, "[2001:db8::1]:4000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := callback.NewMetrics(prometheus.NewRegistry())
			passed := false
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true })
			h := callback.Allow(callback.AllowConfig{Allowed: tc.allowed, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, next)
			req := httptest.NewRequest("POST", "/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterSendMsg", nil)
			req.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			assert.Equal(t, tc.pass, passed)
			refusals := testutil.ToFloat64(m.CounterForTest("Group.CallbackAfterSendMsg", callback.ResultForbiddenAddr))
			if tc.pass {
				assert.Zero(t, refusals)
				return
			}
			assert.Equal(t, 403, w.Code)
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			assert.JSONEq(t, `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"callbacks are not accepted from `+
				clientaddr.FromRequest(req).String()+`: it is outside the hub's -callback-allow ranges"}`, w.Body.String())
			assert.Equal(t, 1.0, refusals)
		})
	}
}
