package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// A hub given no -spool-dir spools into the user's state directory, which it
// creates 0700: a callback that arrives while Redis is down is answered OK,
// kept on disk, and published when Redis is back. The IM does not retry an
// after-event callback, so an OK without the spool would be an event lost.
func TestBinarySpoolOnByDefault(t *testing.T) {
	srv := redistest.StartPersistent(t)
	state := t.TempDir()
	p := hubtest.Start(t, []string{"-redis", srv.URL(), "-apps", "100", "-jwt-secret", clusterSecret},
		"XDG_STATE_HOME="+state)
	p.WaitReady(200)
	dir := filepath.Join(state, "imhub", "spool")
	fi, err := os.Stat(dir)
	require.NoError(t, err, "the default spool directory is created at start")
	assert.True(t, fi.IsDir())
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "only the hub's user reads the callbacks it keeps")

	col := collect(t, wsURL(p))
	require.Equal(t, 200, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G", 1)))
	waitSeqs(t, col, []int{1})

	srv.Stop()
	code, body := postBody(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G", 2))
	assert.Equal(t, 200, code)
	assert.Equal(t, okBody, body, "accepted while Redis is down")
	_, metrics := p.Get("/metrics")
	assert.Contains(t, metrics, `result="spooled"`)
	assert.Contains(t, metrics, "imhub_spool_events 1")
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.NotEmpty(t, files, "the event is on disk in the default directory")

	srv.Restart()
	waitSeqs(t, col, []int{1, 2})
	require.Eventually(t, func() bool {
		_, m := p.Get("/metrics")
		return strings.Contains(m, "imhub_spool_events 0")
	}, 10*time.Second, 20*time.Millisecond, "the spool is emptied")
}

// With nowhere to put the default spool the hub does not start, and says
// which flag to set; it does not run without the spool it was not told to
// go without.
func TestBinarySpoolDefaultRefused(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want string
	}{
		{"no home", []string{"HOME=", "XDG_STATE_HOME="}, 2, "-spool-dir: no default directory"},
		{"home not writable", []string{"HOME=" + notDir, "XDG_STATE_HOME="}, 1, "-spool-dir " + notDir + "/.local/state/imhub/spool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A Redis nobody listens on: the hub refuses before it dials.
			p := hubtest.Launch(t, []string{"-dev", "-addr", "127.0.0.1:0", "-redis", "redis://127.0.0.1:1/0"}, tc.env...)
			assert.Equal(t, tc.code, p.Wait(30*time.Second))
			assert.Contains(t, p.Stderr(), tc.want)
			assert.Contains(t, p.Stderr(), "or off to run without a spool")
		})
	}
}

// Two Redis hubs on one spool directory (two replicas given the same
// volume) would publish each other's records: the second refuses to start.
func TestBinarySpoolDirectoryIsOneHubs(t *testing.T) {
	dir := t.TempDir()
	redisURL := redistest.Start(t).URL()
	hubtest.Start(t, []string{"-dev", "-redis", redisURL, "-spool-dir", dir})
	second := hubtest.Launch(t, []string{"-dev", "-redis", redisURL, "-spool-dir", dir})
	assert.Equal(t, 1, second.Wait(30*time.Second))
	assert.Contains(t, second.Stderr(), "is in use by another process (each hub needs a -spool-dir of its own)")
}

// Hubs without -redis keep no spool, so they take no directory's lock:
// two of them with one home (make run beside a test hub, or two demos)
// run side by side, and each takes callbacks.
func TestBinaryNoSpoolWithoutRedis(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_STATE_HOME="}
	first := hubtest.Start(t, []string{"-dev"}, env...)
	second := hubtest.Start(t, []string{"-dev"}, env...)
	for _, p := range []*hubtest.Process{first, second} {
		p.WaitReady(200)
		code, body := postBody(t, p, DemoApp, "Group.CallbackAfterSendMsg", groupMsg("G", 1))
		assert.Equal(t, 200, code)
		assert.Equal(t, okBody, body)
		_, metrics := p.Get("/metrics")
		assert.NotContains(t, metrics, "imhub_spool_events", "no spool without Redis")
	}
	assert.False(t, first.Exited())
	assert.False(t, second.Exited())
	_, err := os.Stat(filepath.Join(home, ".local", "state", "imhub"))
	assert.True(t, os.IsNotExist(err), "no spool directory is made: %v", err)
}

// postBody posts one callback to p and returns the status and body.
func postBody(t *testing.T, p *hubtest.Process, app, cmd, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(p.URL("/im/callback?SdkAppid="+app+"&CallbackCommand="+cmd), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
