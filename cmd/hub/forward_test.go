package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

func TestConfigForward(t *testing.T) {
	c, err := parseConfig([]string{"-apps", "1:tok,2", "-jwt-secret", testSecret,
		"-forward", "1=https://backend.example/im?x=1, 2=http://10.0.0.2:8080/cb"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []forward.Target{
		{App: "1", URL: "https://backend.example/im?x=1", Token: "tok"},
		{App: "2", URL: "http://10.0.0.2:8080/cb"},
	}, c.Forward.Targets)
	assert.Equal(t, 1500*time.Millisecond, c.Forward.Timeout)
	assert.Equal(t, "allow", c.Forward.Fail)
	assert.Equal(t, 24*time.Hour, c.Forward.MaxAge)
	assert.Equal(t, 30*time.Second, c.Forward.ClaimIdle)
	assert.Equal(t, 16, c.Forward.Concurrency)

	c, err = parseConfig(nil, env(map[string]string{"HUB_APPS": "1", "HUB_JWT_SECRET": testSecret,
		"HUB_FORWARD": "1=http://b/", "HUB_FORWARD_TIMEOUT": "1s", "HUB_FORWARD_FAIL": "deny",
		"HUB_FORWARD_MAX_AGE": "1h", "HUB_FORWARD_CLAIM_IDLE": "5s", "HUB_FORWARD_CONCURRENCY": "64"}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []forward.Target{{App: "1", URL: "http://b/"}}, c.Forward.Targets)
	assert.Equal(t, time.Second, c.Forward.Timeout)
	assert.Equal(t, "deny", c.Forward.Fail)
	assert.Equal(t, time.Hour, c.Forward.MaxAge)
	assert.Equal(t, 5*time.Second, c.Forward.ClaimIdle)
	assert.Equal(t, 64, c.Forward.Concurrency)
}

// Each mistake in the -forward flags is one line that says what to fix,
// without the URL's password.
func TestConfigForwardErrors(t *testing.T) {
	ok := []string{"-apps", "1,2", "-jwt-secret", testSecret}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not app=url", append(ok, "-forward", "https://b.example"), `-forward: entry 1 is not SdkAppid=URL`},
		{"app not in apps", append(ok, "-forward", "3=https://b.example"), `-forward: app "3" is not in -apps`},
		{"app twice", append(ok, "-forward", "1=https://b.example,1=https://c.example"), "-forward: app 1 is listed twice"},
		{"ftp", append(ok, "-forward", "1=ftp://b.example"), `-forward: app 1: "ftp://b.example" is not an http:// or https:// URL`},
		{"no scheme", append(ok, "-forward", "1=b.example/cb"), `-forward: app 1: "xxxxx" is not an http:// or https:// URL`},
		{"no host", append(ok, "-forward", "1=http:///cb"), `is not an http:// or https:// URL`},
		{"bad url", append(ok, "-forward", "1=http://b.example/%zz"), `is not an http:// or https:// URL`},
		{"password hidden", append(ok, "-forward", "1=ftp://u:hunter2@b.example/cb?key=hunter2"), `"ftp://b.example/cb" is not an http:// or https:// URL`},
		{"query that does not decode", append(ok, "-forward", "1=https://b.example/cb?key=hunter2%zz"), `-forward: app 1: the query of https://b.example/cb does not decode`},
		{"a Sign of its own", append(ok, "-forward", "1=https://b.example/cb?Sign=abc"), `-forward: app 1: the URL's query has Sign`},
		{"a CallbackCommand of its own", append(ok, "-forward", "1=https://b.example/cb?CallbackCommand=x"), `the URL's query has CallbackCommand`},
		{"not a URL", append(ok, "-forward", "hunter2"), `-forward: entry 1 is not SdkAppid=URL`},
		{"not an app", append(ok, "-forward", "1=https://b.example,hunter2=https://b.example/cb?k=hunter2"), `-forward: entry 2 is not SdkAppid=URL`},
		{"backend not a URL", append(ok, "-forward", "1=hunter2"), `-forward: app 1: "xxxxx" is not an http:// or https:// URL`},
		{"fragment", append(ok, "-forward", "1=https://b.example/#x"), "#fragment"},
		{"zero timeout", append(ok, "-forward-timeout", "0s"), "-forward-timeout must be greater than zero"},
		{"zero max age", append(ok, "-forward-max-age", "0s"), "-forward-max-age must be greater than zero"},
		{"zero concurrency", append(ok, "-forward-concurrency", "0"), "-forward-concurrency must be greater than zero"},
		{"zero claim idle", append(ok, "-forward-claim-idle", "0s"), "-forward-claim-idle must be greater than zero"},
		{"bad fail", append(ok, "-forward-fail", "open"), `-forward-fail "open": want allow or deny`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(nil), &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "hunter2", "no secret in the message")
		})
	}
}

// The built hub refuses a bad -forward with one line on stderr.
func TestBinaryForwardConfigError(t *testing.T) {
	for _, spec := range []string{"1400000000=ftp://b.example", "1400000009=http://b.example"} {
		cmd := exec.Command(hubtest.Binary(t), "-apps", "1400000000", "-jwt-secret", testSecret, "-forward", spec)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, spec)
		assert.Equal(t, 2, exit.ExitCode())
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %s", stderr.String())
		assert.Contains(t, stderr.String(), "hub: -forward: ")
	}
}

const forwardApp = "1400000000"

// seqBackend is an app's own backend that counts the group messages it
// answered OK, by MsgSeq, and which hub (by request path) sent each.
type seqBackend struct {
	*httptest.Server
	delay time.Duration

	mu        sync.Mutex
	delivered map[int]int
	via       map[string]map[int]bool
	hold      chan struct{} // while open, requests wait and are not answered
}

func newSeqBackend(t *testing.T, delay time.Duration) *seqBackend {
	b := &seqBackend{delay: delay, delivered: map[int]int{}, via: map[string]map[int]bool{}, hold: make(chan struct{})}
	close(b.hold)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m struct{ MsgSeq int }
		if json.Unmarshal(body, &m) != nil {
			w.WriteHeader(400)
			return
		}
		b.mu.Lock()
		if b.via[r.URL.Path] == nil {
			b.via[r.URL.Path] = map[int]bool{}
		}
		b.via[r.URL.Path][m.MsgSeq] = true
		hold := b.hold
		b.mu.Unlock()
		select {
		case <-hold:
		case <-r.Context().Done():
			return // the hub gave up or died: not delivered
		}
		select {
		case <-time.After(b.delay):
		case <-r.Context().Done():
			return
		}
		b.mu.Lock()
		b.delivered[m.MsgSeq]++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okBody)
	}))
	t.Cleanup(func() { b.release(); b.Close() })
	return b
}

func (b *seqBackend) holdAll() { b.mu.Lock(); b.hold = make(chan struct{}); b.mu.Unlock() }

func (b *seqBackend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.hold:
	default:
		close(b.hold)
	}
}

// missing returns the seqs not yet delivered.
func (b *seqBackend) missing(seqs []int) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for _, s := range seqs {
		if b.delivered[s] == 0 {
			out = append(out, s)
		}
	}
	return out
}

func (b *seqBackend) seenVia(path string) map[int]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int]bool{}
	for s := range b.via[path] {
		out[s] = true
	}
	return out
}

// waitDelivered waits until every seq has reached the backend.
func waitDelivered(t *testing.T, b *seqBackend, seqs []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := b.missing(seqs)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted callbacks never reached the backend: %v", len(missing), len(seqs), missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestForwardRedisKilled kills Redis (appendonly, fsync always) with
// SIGKILL while forwards are queued and some in flight, and accepts more
// callbacks while it is away: every callback the hub answered OK reaches
// the backend once Redis is back.
func TestForwardRedisKilled(t *testing.T) {
	srv := redistest.StartPersistent(t)
	b := newSeqBackend(t, 100*time.Millisecond)
	p := hubtest.Start(t, []string{"-apps", forwardApp, "-jwt-secret", testSecret, "-redis", srv.URL(),
		"-spool-dir", t.TempDir(), "-forward", forwardApp + "=" + b.URL + "/cb", "-forward-claim-idle", "2s"})
	var acked []int
	for seq := 1; seq <= 45; seq++ {
		switch seq {
		case 16:
			srv.Stop()
		case 31:
			_, metrics := p.Get("/metrics")
			assert.Regexp(t, `(?m)^imhub_forward_spooled 15$`, metrics, "the callbacks accepted while Redis is away wait in the spool")
			srv.Restart()
		}
		if status, _ := post(t, p, forwardApp, seq); status == http.StatusOK {
			acked = append(acked, seq)
		}
	}
	require.Len(t, acked, 45, "with a spool, every callback is accepted while Redis is away")
	waitDelivered(t, b, acked, 60*time.Second)
}

// TestForwardReplicaKilled kills a hub with SIGKILL while it has forwards
// in flight: another replica takes them over and every accepted callback
// reaches the backend.
func TestForwardReplicaKilled(t *testing.T) {
	srv := redistest.Start(t)
	b := newSeqBackend(t, 0)
	hub := func(path string) *hubtest.Process {
		return hubtest.Start(t, []string{"-apps", forwardApp, "-jwt-secret", testSecret, "-redis", srv.URL(),
			"-forward", forwardApp + "=" + b.URL + path, "-forward-claim-idle", "2s"})
	}
	b.holdAll()
	doomed, survivor := hub("/doomed"), hub("/survivor")
	var acked []int
	for seq := 1; seq <= 30; seq++ {
		status, body := post(t, doomed, forwardApp, seq)
		require.Equal(t, http.StatusOK, status, body)
		acked = append(acked, seq)
	}
	require.Eventually(t, func() bool { return len(b.seenVia("/doomed")) > 0 }, 10*time.Second, 10*time.Millisecond,
		"the doomed hub has forwards in flight")
	doomed.Signal(syscall.SIGKILL)
	doomed.Wait(10 * time.Second)
	inFlight := b.seenVia("/doomed")
	b.release()
	waitDelivered(t, b, acked, 60*time.Second)
	taken := b.seenVia("/survivor")
	for seq := range inFlight {
		assert.True(t, taken[seq], "seq %d, in flight on the killed hub, was taken over by the survivor", seq)
	}
	survivor.WaitLog(10*time.Second, "take-over log line", func(m map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(m["msg"]), "forward entries taken over")
	})
}

// hub forward-dead lists an app's dead letters and replays them into the
// queue; its mistakes are one line each.
func TestBinaryForwardDead(t *testing.T) {
	srv := redistest.Start(t)
	store := forward.NewRedisStore(srv.Client(), forward.RedisConfig{Block: 10 * time.Millisecond})
	ctx := t.Context()
	require.NoError(t, store.Add(ctx, forward.Entry{ID: "e1", App: forwardApp, Command: "Group.CallbackAfterSendMsg",
		Query: "SdkAppid=" + forwardApp, Body: []byte(`{"MsgSeq":1}`), Accepted: time.Now().UnixMilli()}))
	taken, err := store.Take(ctx, forwardApp, "c", 1)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	taken[0].Attempts, taken[0].LastError = 9, "backend answered 502"
	require.NoError(t, store.Dead(ctx, taken[0]))

	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(hubtest.Binary(t), append([]string{"forward-dead"}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		return code, out.String(), errOut.String()
	}
	code, out, stderr := run("list", "-redis", srv.URL(), "-app", forwardApp)
	require.Equal(t, 0, code, stderr)
	var letter map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &letter), out)
	assert.Equal(t, "e1", letter["id"])
	assert.Equal(t, 9.0, letter["attempts"])
	assert.Equal(t, "backend answered 502", letter["last_error"])
	assert.Equal(t, `{"MsgSeq":1}`, letter["body"])

	code, out, stderr = run("replay", "-redis", srv.URL(), "-app", forwardApp)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "replayed 1 dead letters of app "+forwardApp+"\n", out)
	letters, err := store.ListDead(ctx, forwardApp, 10)
	require.NoError(t, err)
	assert.Empty(t, letters)
	again, err := store.Take(ctx, forwardApp, "c", 10)
	require.NoError(t, err)
	require.Len(t, again, 1, "the replayed letter is queued again")
	assert.Equal(t, "e1", again[0].ID)
	assert.Zero(t, again[0].Attempts)

	code, _, stderr = run("-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "Usage: hub forward-dead list|replay")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"purge", "-redis", srv.URL(), "-app", forwardApp}, `"purge": want list or replay`},
		{[]string{"list", "-app", forwardApp}, "-redis is required"},
		{[]string{"-app", forwardApp, "list"}, "put list or replay before the flags"},
		{[]string{"-app", forwardApp}, `"": want list or replay`},
		{[]string{"list", "-redis", srv.URL()}, "-app is required"},
		{[]string{"list", "-redis", srv.URL(), "-app", "x"}, `-app "x" is not a SdkAppid`},
		{[]string{"list", "-redis", "http://x", "-app", forwardApp}, "unknown scheme"},
		{[]string{"list", "-redis", srv.URL(), "-app", forwardApp, "-n", "0"}, "-n must be greater than zero"},
	} {
		code, _, stderr := run(tc.args...)
		assert.Equal(t, 2, code, tc.args)
		assert.Contains(t, stderr, tc.want, tc.args)
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %s", stderr)
	}
}

// Without Redis, forwards are queued in memory, and the -forward-timeout
// and -forward-fail flags reach the Before* answer.
func TestForwardMemoryAndBefore(t *testing.T) {
	b := newSeqBackend(t, 0)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "CallbackBefore") {
			// Read the body, so that the server notices the hub hang up.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done() // never answers in time
			return
		}
		b.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	p := hubtest.Start(t, []string{"-apps", forwardApp, "-jwt-secret", testSecret,
		"-forward", forwardApp + "=" + slow.URL + "/cb", "-forward-timeout", "300ms", "-forward-fail", "deny"})
	p.WaitLog(5*time.Second, "memory warning", func(m map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(m["msg"]), "forwarding without -redis")
	})
	start := time.Now()
	u := p.URL("/im/callback?SdkAppid=" + forwardApp + "&CallbackCommand=Group.CallbackBeforeSendMsg&contenttype=json")
	resp, err := http.Post(u, "application/json", strings.NewReader(`{"GroupId":"G1"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Less(t, time.Since(start), 2*time.Second, "the IM waits 2s at most")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"ActionStatus":"FAIL","ErrorInfo":"the app's backend did not answer","ErrorCode":1}`, string(body))

	status, body2 := post(t, p, forwardApp, 1)
	require.Equal(t, http.StatusOK, status, body2)
	waitDelivered(t, b, []int{1}, 10*time.Second)
}

// A raw '#' in a callback's query (which a server takes as it is) reaches
// the backend of the built hub as a character of its value: the backend
// gets every parameter, the fresh signature among them.
func TestBinaryForwardRawHash(t *testing.T) {
	const token = "raw-hash-token"
	got := make(chan url.Values, 1)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case got <- r.URL.Query():
		default:
		}
		io.WriteString(w, okBody)
	}))
	t.Cleanup(b.Close)
	p := hubtest.Start(t, []string{"-apps", forwardApp + ":" + token, "-jwt-secret", testSecret, "-forward", forwardApp + "=" + b.URL + "/cb"})
	rt := fmt.Sprint(time.Now().Unix())
	body := fmt.Sprintf(groupSend, 1, 1)
	c, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprintf(c, "POST /im/callback?OptPlatform=Web#2&SdkAppid=%s&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&RequestTime=%s&Sign=%s HTTP/1.1\r\n"+
		"Host: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		forwardApp, rt, callback.Sign(token, rt), p.Addr, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	select {
	case q := <-got:
		assert.Equal(t, "Web#2", q.Get("OptPlatform"))
		assert.Equal(t, forwardApp, q.Get("SdkAppid"))
		assert.Equal(t, "Group.CallbackAfterSendMsg", q.Get("CallbackCommand"))
		assert.NoError(t, callback.VerifySign(token, q.Get("RequestTime"), q.Get("Sign"), time.Now()), "signed: %v", q)
	case <-time.After(30 * time.Second):
		t.Fatal("the callback did not reach the backend within 30s")
	}
}
