package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

const groupSend = `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"G1","Type":"Public","From_Account":"jared","MsgSeq":%d,"MsgTime":1490686222,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet %d"}}]}`

func post(t *testing.T, p *hubtest.Process, app string, seq int) (int, string) {
	t.Helper()
	u := p.URL("/im/callback?SdkAppid=" + app + "&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json")
	resp, err := http.Post(u, "application/json", strings.NewReader(fmt.Sprintf(groupSend, seq, seq)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const okBody = `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`

func TestBinaryHelp(t *testing.T) {
	out, err := exec.Command(hubtest.Binary(t), "-h").CombinedOutput()
	require.NoError(t, err, "hub -h exits 0")
	for _, f := range []string{"addr", "redis", "apps", "jwt-secret", "jwt-public-key", "jwt-jwks-url", "jwt-max-ttl", "jwt-audience", "jwt-issuer", "dev",
		"log-level", "log-format", "max-body", "dedupe-window", "history-size", "history-ttl", "spool-dir",
		"spool-max-bytes", "max-conns", "max-subs", "max-frame", "send-queue", "ping-interval", "write-timeout",
		"allowed-origins", "compression", "drain", "debug-addr"} {
		assert.Regexp(t, `(?m)^  -`+f+`( |$)`, string(out), "hub -h lists -%s", f)
		assert.Contains(t, string(out), "$"+envName(f), "hub -h names the variable of -%s", f)
	}
	assert.Contains(t, string(out), `(default ":8080")`)
}

func TestBinaryConfigError(t *testing.T) {
	cmd := exec.Command(hubtest.Binary(t), "-apps", "1400000000")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Equal(t, "hub: no JWT key configured: set one of -jwt-secret, -jwt-public-key or -jwt-jwks-url, or -im-keys for clients that log in with their IM UserSig (or use -dev for a local demo)\n", string(out))

	cmd = exec.Command(hubtest.Binary(t), "-jwt-secret", clusterSecret)
	cmd.Env = append(cmd.Environ(), "HUB_APPS=x", "HUB_REDIS=")
	out, err = cmd.CombinedOutput()
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), `-apps: entry 1 does not start with a SdkAppid`)

	cmd = exec.Command(hubtest.Binary(t), "-apps", "1400000000")
	cmd.Env = append(cmd.Environ(), "HUB_JWT_SECRET=tooshort")
	out, err = cmd.CombinedOutput()
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Equal(t, "hub: -jwt-secret is 8 bytes; HS256 needs at least 32 (RFC 7518 §3.2): make one with openssl rand -base64 32\n", string(out))
}

// The environment configures the hub as flags do; secrets never reach the
// log, nor message text at info level; SIGTERM stops it cleanly.
func TestBinaryServesFromEnv(t *testing.T) {
	p := hubtest.Start(t, nil, "HUB_APPS=1400000001:callbacktoken", "HUB_JWT_SECRET=jwtsecret-value-jwtsecret-value-jwtsecret", "HUB_LOG_LEVEL=info")
	code, body := p.Get("/healthz")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok\n", body)
	p.WaitReady(200)

	code, body = post(t, p, "1400000001", 1)
	assert.Equal(t, 401, code, "the token from HUB_APPS is enforced: %s", body)
	rt := fmt.Sprint(time.Now().Unix())
	u := p.URL("/im/callback?SdkAppid=1400000001&CallbackCommand=Group.CallbackAfterSendMsg&RequestTime=" + rt + "&Sign=" + callback.Sign("callbacktoken", rt))
	resp, err := http.Post(u, "application/json", strings.NewReader(fmt.Sprintf(groupSend, 2, 2)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	code, body = p.Get("/metrics")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `imhub_callbacks_total{command="Group.CallbackAfterSendMsg",result="published"} 1`)
	assert.Contains(t, body, `imhub_callbacks_total{command="Group.CallbackAfterSendMsg",result="unauthorized"} 1`)
	assert.Contains(t, body, "imhub_broker_up 1")

	p.Signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.Wait(15*time.Second))
	logs := p.Stderr()
	assert.Contains(t, logs, `"msg":"stopped"`)
	for _, secret := range []string{"jwtsecret-value", "callbacktoken", "red packet"} {
		assert.NotContains(t, logs, secret, "the log must not show %q", secret)
	}
}

// -dev prints where things are (the browser client and its example
// page among them) and a curl that works; at debug level the published
// event is in the log.
func TestBinaryDevBanner(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-log-level", "debug"})
	require.Eventually(t, func() bool { return strings.Contains(p.Stdout(), "curl ") }, 10*time.Second, 10*time.Millisecond)
	var curl string
	sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "curl ") || strings.HasPrefix(line, "-H ") || strings.HasPrefix(line, "-d ") {
			curl += strings.TrimSuffix(line, `\`) + " "
		}
	}
	require.Contains(t, curl, p.Addr, "the curl targets the address the hub listens on")
	for _, path := range []string{"/sdk/imhub.js", "/examples/chat-notify.html"} {
		require.Contains(t, p.Stdout(), p.URL(path), "the banner shows where the browser client is")
		code, _ := p.Get(path)
		assert.Equal(t, 200, code, path)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is not installed, so the printed command cannot be checked: apt-get install -y curl")
	}
	out, err := exec.Command("sh", "-c", curl).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, okBody, strings.TrimSpace(string(out)))
	line := p.WaitLog(5*time.Second, "event published", func(l map[string]any) bool { return l["msg"] == "event published" })
	assert.Equal(t, "group.message.sent", line["type"])
	assert.Contains(t, line["event"], "red packet")
}

// SIGTERM: readiness fails at once and is seen to fail, new WebSockets are
// turned away with 1012, sessions are closed with 1012, a callback in flight
// is still answered and published, and the hub exits 0.
func TestBinaryGracefulShutdown(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-drain", "2s", "-log-level", "debug"})
	tok := devToken(t, p, "?sub=watcher")
	session := wstest.Dial(t, wsURL(p), tok)
	require.Equal(t, "connected", session.Read().Op)

	body := fmt.Sprintf(groupSend, 7, 7)
	conn, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /im/callback?SdkAppid=%s&CallbackCommand=Group.CallbackAfterSendMsg HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		DemoApp, len(body), body[:10])
	time.Sleep(100 * time.Millisecond) // the server is now reading the body

	p.Signal(syscall.SIGTERM)
	p.WaitReady(503)
	late := wstest.Dial(t, wsURL(p), tok)
	late.ExpectClose(hub.CloseShuttingDown)

	_, err = io.WriteString(conn, body[10:])
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, okBody, string(b))
	line := p.WaitLog(5*time.Second, "event published", func(l map[string]any) bool { return l["msg"] == "event published" })
	assert.Contains(t, line["event"], "red packet 7", "the in-flight callback was published")

	session.ExpectClose(hub.CloseShuttingDown)
	assert.Equal(t, 0, p.Wait(15*time.Second))
}

// Redis stops while the hub runs: callbacks are answered 503, never OK and
// lost; readiness fails; when Redis is back the hub publishes again without
// a restart. A second node (a broker on the same Redis) sees the events.
func TestBinaryRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	p := hubtest.Start(t, []string{"-dev", "-redis", srv.URL()})
	p.WaitReady(200)

	watcher, err := broker.NewRedis(broker.RedisConfig{URL: srv.URL(), PingInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { watcher.Close() })
	rec := brokertest.Start(t, watcher)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, watcher.Subscribe(ctx, DemoApp, "group:G1"))

	code, body := post(t, p, DemoApp, 1)
	require.Equal(t, 200, code, body)
	rec.WaitCount(t, 1)

	srv.Stop()
	p.WaitReady(503)
	for seq := 2; seq <= 4; seq++ {
		code, body = post(t, p, DemoApp, seq)
		assert.Equal(t, 503, code)
		assert.Equal(t, `{"ActionStatus":"FAIL","ErrorInfo":"event could not be stored, retry later","ErrorCode":1}`, body)
	}

	srv.Restart()
	p.WaitReady(200)
	// The watcher re-subscribed by itself too; wait until it has.
	require.Eventually(t, func() bool { return rec.Reconnects() >= 1 }, 15*time.Second, 10*time.Millisecond)
	// A sender that retries what was refused (this hub runs with -spool-dir off).
	for seq := 2; seq <= 4; seq++ {
		code, body = post(t, p, DemoApp, seq)
		require.Equal(t, 200, code, body)
	}
	pubs := rec.WaitCount(t, 4)
	require.Len(t, pubs, 4)
	for i, pub := range pubs {
		assert.Contains(t, string(pub.Data), fmt.Sprintf(`"seq":%d`, i+1))
	}
	code, body = p.Get("/metrics")
	assert.Contains(t, body, `imhub_callbacks_total{command="Group.CallbackAfterSendMsg",result="unavailable"} 3`)
	p.Signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.Wait(15*time.Second))
}

// longDrain is a -drain no test waits out: a hub that exits within
// exitWithin of its signal ended its drain early, as it should have.
const (
	longDrain  = "10m"
	exitWithin = time.Minute
)

// devSession connects one session to the -dev hub p.
func devSession(t *testing.T, p *hubtest.Process, sub string) *wstest.Conn {
	t.Helper()
	c := wstest.Dial(t, wsURL(p), devToken(t, p, "?sub="+sub))
	require.Equal(t, "connected", c.Read().Op)
	return c
}

// A drain with no session left to close ends there, not at -drain: with
// none at all it ends at once, and when the sessions leave by themselves
// it ends as the last one has, however much of the period is left.
func TestBinaryDrainEndsWithTheLastSession(t *testing.T) {
	t.Run("no sessions", func(t *testing.T) {
		p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
		p.WaitReady(200)
		p.Signal(syscall.SIGTERM)
		assert.Equal(t, 0, p.Wait(exitWithin), "the drain ended before its -drain of %s", longDrain)
	})
	t.Run("sessions that leave", func(t *testing.T) {
		p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
		a, b := devSession(t, p, "a"), devSession(t, p, "b")
		p.Signal(syscall.SIGTERM)
		p.WaitReady(503)
		require.False(t, p.Exited(), "two sessions hold the drain")
		require.NoError(t, a.C.Close(websocket.StatusNormalClosure, "leaving"))
		require.False(t, p.Exited(), "one session still holds it")
		require.NoError(t, b.C.Close(websocket.StatusNormalClosure, "leaving"))
		assert.Equal(t, 0, p.Wait(exitWithin), "the drain ended with its last session, before its -drain of %s", longDrain)
	})
}

// Ctrl-C stops a -dev hub at once: its sessions are closed with 1012
// together, not spread over -drain. SIGTERM, what an orchestrator sends,
// still spreads them.
func TestBinaryDevStopsOnInterrupt(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
	a, b := devSession(t, p, "a"), devSession(t, p, "b")
	p.Signal(syscall.SIGINT)
	a.ExpectClose(hub.CloseShuttingDown)
	b.ExpectClose(hub.CloseShuttingDown)
	assert.Equal(t, 0, p.Wait(exitWithin), "a -dev hub does not drain for -drain on Ctrl-C")
	line := p.WaitLog(time.Second, "shutting down", func(l map[string]any) bool { return l["msg"] == "shutting down" })
	assert.EqualValues(t, 0, line["drain"], "in nanoseconds")

	q := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
	devSession(t, q, "a")
	q.Signal(syscall.SIGTERM)
	line = q.WaitLog(exitWithin, "shutting down", func(l map[string]any) bool { return l["msg"] == "shutting down" })
	assert.EqualValues(t, 10*time.Minute, line["drain"], "SIGTERM drains for -drain")
	assert.False(t, q.Exited())
}
