package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// /readyz is public: with Redis down it says only "broker unavailable",
// never where Redis is. The detail is logged once when readiness goes,
// and once when it comes back, not on every probe.
func TestBinaryReadyzHidesBrokerDetail(t *testing.T) {
	srv := redistest.Start(t)
	p := hubtest.Start(t, []string{"-apps", DemoApp, "-jwt-secret", clusterSecret, "-redis", srv.URL()})
	p.WaitReady(200)
	// The hub may be seen unready while it first connects; count from here.
	before := len(notReady(p))
	srv.Stop()
	p.WaitReady(503)
	for range 3 {
		code, body := p.Get("/readyz")
		assert.Equal(t, 503, code)
		assert.Equal(t, "broker unavailable\n", body)
		assert.NotContains(t, body, srv.Socket())
	}
	lines := notReady(p)[before:]
	require.Len(t, lines, 1, "logged once, not on every probe")
	assert.Contains(t, lines[0]["err"], "redis", "the log has the detail")

	srv.Restart()
	p.WaitReady(200)
	p.WaitLog(5*time.Second, "ready again", func(l map[string]any) bool { return l["msg"] == "ready: broker available again" })
}

func notReady(p *hubtest.Process) []map[string]any {
	var lines []map[string]any
	for _, l := range p.LogLines() {
		if l["msg"] == "not ready: broker unavailable" {
			lines = append(lines, l)
		}
	}
	return lines
}

// The pprof listener serves profiles but not /debug/pprof/cmdline, which
// shows the command line and so any secret given as a flag.
func TestBinaryPprofHidesCmdline(t *testing.T) {
	debugAddr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	const secret = "pprof-test-secret-pprof-test-secret"
	p := hubtest.Start(t, []string{"-apps", DemoApp, "-jwt-secret", secret, "-debug-addr", debugAddr})
	get := func(path string) (int, string) { return getURL(t, "http://"+debugAddr+path) }
	code, body := get("/debug/pprof/")
	require.Equal(t, 200, code, "pprof is served")
	assert.Contains(t, body, "goroutine")
	code, _ = get("/debug/pprof/goroutine?debug=1")
	assert.Equal(t, 200, code)
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/cmdline?x=1"} {
		code, body = get(path)
		assert.Equal(t, 404, code, path)
		assert.NotContains(t, body, secret, path)
	}
	if strings.Contains(p.Stderr(), secret) {
		t.Error("the log shows the secret")
	}
}

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
