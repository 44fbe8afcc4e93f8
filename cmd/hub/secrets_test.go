package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/childproc"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// The secrets a hub is given in the tests below, each a string that
// appears nowhere else, so that finding one in an output is a leak.
const (
	leakCallbackToken = "cbtoken-b6d1f0c2a9e4"
	leakAPIKey        = "apikey-4f0e9d8c7b6a5f4e3d2c"
	leakJWTSecret     = "jwtsecret-8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"
	leakRedisPassword = "redispw-2c4e6a8b0d1f"
	leakBackendQuery  = "backendquery-7a9c1e3f"
	leakBackendPass   = "backendpw-5b7d9f1a"
	leakJWKSPassword  = "jwkspw-3e5a7c9b"
	leakJWKSQuery     = "jwksquery-1d3f5b7a"
	leakIMKey         = "imkey-6c8e0a2b4d9f1e3a"
)

// leaks lists, one a line, the secrets and signatures found in out.
func leaks(out string) string {
	var found []string
	for _, s := range []string{leakCallbackToken, leakAPIKey, leakJWTSecret, leakRedisPassword,
		leakBackendQuery, leakBackendPass, leakJWKSPassword, leakJWKSQuery, leakIMKey, "Sign=", "usersig="} {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, s) {
				found = append(found, fmt.Sprintf("%s in: %s", s, line))
			}
		}
	}
	return strings.Join(found, "\n")
}

// runHub runs the built hub with args and env to its end, which must come
// within a minute, and returns its exit code and everything it wrote.
func runHub(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hubtest.Binary(t), args...)
	cmd.Env = append(cmd.Environ(), env...)
	childproc.DieWithParent(cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hub %v still ran after a minute, killed:\n%s", args, out.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String()
	}
	require.NoError(t, err, "run hub %v", args)
	return 0, out.String()
}

// signedCallback posts a callback signed with the app's token, as the IM
// does, and returns the status.
func signedCallback(t *testing.T, p *hubtest.Process, app, command, body string) int {
	t.Helper()
	rt := fmt.Sprint(time.Now().Unix())
	q := url.Values{"SdkAppid": {app}, "CallbackCommand": {command}, "contenttype": {"json"},
		"ClientIP": {"127.0.0.1"}, "OptPlatform": {"Web"}, "RequestTime": {rt}, "Sign": {callback.Sign(leakCallbackToken, rt)}}
	resp, err := http.Post(p.URL("/im/callback?"+q.Encode()), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestBinaryLogsHoldNoSecret runs the built hub with every secret flag set,
// Redis behind a password, and forwards to a backend that is slow, one
// that is unreachable and one that fails, each URL with a password and a
// query of its own; Redis is paused with CLIENT PAUSE; the forwards go dead.
// No log line, nor a dead letter listed, nor the metrics or an answer to a
// UserSig client, holds a secret or a Sign.
func TestBinaryLogsHoldNoSecret(t *testing.T) {
	const appSlow, appGone, appFail = "1400000001", "1400000002", "1400000003"
	srv := redistest.StartWith(t, redistest.Options{Conf: []string{"user imhub on >" + leakRedisPassword + " ~* &* +@all"}})
	redisURL := "unix://imhub:" + leakRedisPassword + "@" + srv.Socket()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // answers too late, always
	}))
	t.Cleanup(slow.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusBadGateway)
	}))
	t.Cleanup(failing.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	backend := func(base string) string {
		u, err := url.Parse(base)
		require.NoError(t, err)
		u.User = url.UserPassword("hub", leakBackendPass)
		u.Path = "/im/callback"
		u.RawQuery = "key=" + leakBackendQuery
		return u.String()
	}

	apps := fmt.Sprintf("%s:%s,%s:%s,%s:%s", appSlow, leakCallbackToken, appGone, leakCallbackToken, appFail, leakCallbackToken)
	p := hubtest.Start(t, []string{"-log-level", "debug", "-spool-dir", t.TempDir(),
		"-forward", fmt.Sprintf("%s=%s,%s=%s,%s=%s", appSlow, backend(slow.URL), appGone, backend(gone), appFail, backend(failing.URL)),
		"-forward-timeout", "300ms", "-forward-claim-idle", "2s", "-forward-max-age", "3s", "-im-api-url", gone},
		"HUB_REDIS="+redisURL, "HUB_APPS="+apps, "HUB_JWT_SECRET="+leakJWTSecret,
		"HUB_API_KEYS="+appSlow+":"+leakAPIKey, "HUB_IM_KEYS="+appSlow+":"+leakIMKey)
	p.WaitReady(200)

	// A UserSig refused, and one let in that asks for a group, which the
	// hub cannot ask the IM about: nothing of the key or of a UserSig in
	// the log.
	sig, err := auth.SignUserSig([]byte(leakIMKey), appSlow, "jared", time.Now(), time.Hour)
	require.NoError(t, err)
	bad := wstest.Dial(t, "ws://"+p.Addr+"/ws?sdkappid="+appSlow+"&userid=tommy&usersig="+url.QueryEscape(sig), "")
	bad.ExpectClose(hub.CloseInvalidToken)
	good := wstest.Dial(t, "ws://"+p.Addr+"/ws?sdkappid="+appSlow+"&userid=jared&usersig="+url.QueryEscape(sig), "")
	good.ReadOp("connected")
	good.ReadOp("subscribed")
	good.Send(map[string]any{"op": "subscribe", "channel": "group:G1", "id": 1})
	assert.Empty(t, leaks(good.ReadOp("error").Raw), "the subscribe's answer")

	for _, app := range []string{appSlow, appGone, appFail} {
		require.Equal(t, 200, signedCallback(t, p, app, "Group.CallbackAfterSendMsg", fmt.Sprintf(groupSend, 1, 1)), app)
	}
	for _, app := range []string{appSlow, appGone} {
		// Answered for the backend, which failed.
		require.Equal(t, 200, signedCallback(t, p, app, "Group.CallbackBeforeSendMsg", `{"GroupId":"G1","From_Account":"jared","MsgBody":[]}`), app)
	}
	req, err := http.NewRequest(http.MethodPost, p.URL("/api/publish"), strings.NewReader(`{"channel":"user:jared","data":{"n":1}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "apikey "+leakAPIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "the API key works")

	for _, app := range []string{appSlow, appGone, appFail} {
		p.WaitLog(30*time.Second, "retry of app "+app, func(l map[string]any) bool {
			return l["msg"] == "forward failed; will retry" && l["app"] == app
		})
		p.WaitLog(30*time.Second, "dead letter of app "+app, func(l map[string]any) bool {
			return strings.HasPrefix(fmt.Sprint(l["msg"]), "forward given up") && l["app"] == app
		})
	}
	p.WaitLog(10*time.Second, "a Before* answered for the backend", func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["msg"]), "the app's backend failed a synchronous callback")
	})

	// Redis stops answering for a while: every client of the hub's waits.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Client().Do(ctx, "CLIENT", "PAUSE", "4000", "ALL").Err())
	p.WaitLog(20*time.Second, "redis is down", func(l map[string]any) bool { return l["msg"] == "redis is down" })
	require.Equal(t, 200, signedCallback(t, p, appFail, "Group.CallbackAfterSendMsg", fmt.Sprintf(groupSend, 2, 2)),
		"a callback while Redis is paused is spooled")
	p.WaitLog(20*time.Second, "redis is up", func(l map[string]any) bool { return l["msg"] == "redis is up" })
	p.WaitReady(200)

	code, listed := runHub(t, []string{"HUB_REDIS=" + redisURL}, "forward-dead", "list", "-app", appSlow)
	require.Equal(t, 0, code, listed)
	require.Contains(t, listed, `"attempts"`, "a dead letter is listed")
	assert.Empty(t, leaks(listed), "hub forward-dead list")

	_, metrics := p.Get("/metrics")
	require.Contains(t, metrics, "imhub_im_api_calls_total", "the IM was asked")
	assert.Empty(t, leaks(metrics), "the hub's metrics")

	p.Signal(syscall.SIGTERM)
	require.Equal(t, 0, p.Wait(30*time.Second))
	assert.Empty(t, leaks(p.Stderr()+p.Stdout()), "the hub's log")
}

// secretEnv sets every secret flag of the hub and of hub forward-dead from
// the environment, as a deployment does.
func secretEnv(redisURL string) []string {
	return []string{
		"HUB_REDIS=" + redisURL,
		"HUB_APPS=1400000000:" + leakCallbackToken,
		"HUB_API_KEYS=1400000000:" + leakAPIKey,
		"HUB_JWT_SECRET=" + leakJWTSecret,
		"HUB_IM_KEYS=1400000000:" + leakIMKey,
		"HUB_FORWARD=1400000000=https://hub:" + leakBackendPass + "@backend.example/im?key=" + leakBackendQuery,
	}
}

// Every command's help, and every mistake in a secret flag, is shown
// without the secret: the help of hub and of hub forward-dead with each
// secret set in the environment, the errors of a malformed -apps,
// -api-keys, -forward or -jwt-jwks-url, hub forward-dead's own errors, and
// the -dev banner of a hub with -api-keys.
func TestBinarySecretsNotEchoed(t *testing.T) {
	env := secretEnv("redis://imhub:" + leakRedisPassword + "@127.0.0.1:1/0")
	for _, args := range [][]string{
		{"-h"},
		{"forward-dead", "-h"},
		{"forward-dead", "list", "-h"},
		{"forward-dead", "replay", "-h"},
		{"forward-dead"},
	} {
		code, out := runHub(t, env, args...)
		assert.Contains(t, out, "Usage: hub", args)
		assert.Contains(t, out, "$HUB_REDIS", args)
		assert.Empty(t, leaks(out), "hub %v", args)
		if args[len(args)-1] == "-h" {
			assert.Equal(t, 0, code, args)
		}
	}

	noSecret := "HUB_JWT_SECRET=" // so that -jwt-jwks-url is the one JWT key
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-apps", "1400000000=" + leakCallbackToken, "-jwt-secret", testSecret}, "-apps: entry 1 does not start with a SdkAppid"},
		{[]string{"-apps", leakCallbackToken, "-jwt-secret", testSecret}, "-apps: entry 1 does not start with a SdkAppid"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-api-keys", leakAPIKey}, "-api-keys: an entry is not SdkAppid:key"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-api-keys", "k:" + leakAPIKey}, "-api-keys: an entry does not start with a SdkAppid"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-im-keys", leakIMKey}, "-im-keys: an entry is not SdkAppid:SDKSecretKey"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-im-keys", "1400000001:" + leakIMKey}, "-im-keys: app 1400000001 is not one of -apps"},
		{[]string{"-apps", "1400000000", "-jwt-jwks-url", "http://idp:" + leakJWKSPassword + "@idp.example/jwks?t=" + leakJWKSQuery},
			"-jwt-jwks-url http://idp.example/jwks: http is allowed on a loopback host only"},
		{[]string{"-apps", "1400000000", "-jwt-jwks-url", "ftp://idp:" + leakJWKSPassword + "@idp.example/jwks?t=" + leakJWKSQuery}, "-jwt-jwks-url ftp://idp.example/jwks: want an https URL"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-forward", "1400000000=ftp://hub:" + leakBackendPass + "@b.example/im?key=" + leakBackendQuery},
			`-forward: app 1400000000: "ftp://b.example/im" is not an http:// or https:// URL`},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-forward", leakBackendQuery}, "-forward: entry 1 is not SdkAppid=URL"},
		{[]string{"-apps", "1400000000", "-jwt-secret", testSecret, "-redis", "redis://imhub:" + leakRedisPassword + "@127.0.0.1:port/0"}, "-redis: redis url"},
		{[]string{"-apps", "1400000000", "-jwt-secret", leakJWTSecret[:20], leakJWTSecret[20:]}, "unexpected argument after -jwt-secret's value"},
		// A secret that starts with '-' is still the flag's value, not a flag.
		{[]string{"-apps", "1400000000", "-jwt-secret", "-" + leakJWTSecret[:20], leakJWTSecret[20:]}, "unexpected argument after -jwt-secret's value"},
		{[]string{"-apps", "1400000000", "-jwt-secret=" + leakJWTSecret[:20], leakJWTSecret[20:]}, "unexpected argument after -jwt-secret's value"},
		{[]string{"forward-dead", "purge"}, `"purge": want list or replay`},
		{[]string{"forward-dead", "list", "-app", "x"}, `-app "x" is not a SdkAppid`},
		{[]string{"forward-dead", "list", "-app", "1400000000", "-redis", "redis://imhub:" + leakRedisPassword + "@127.0.0.1:port/0"}, "redis url"},
		{[]string{"forward-dead", "list", "-app", "1400000000"}, "hub forward-dead: "},
	} {
		code, out := runHub(t, append(env, noSecret), tc.args...)
		assert.NotEqual(t, 0, code, "hub %v: %s", tc.args, out)
		assert.Contains(t, out, tc.want, tc.args)
		assert.Empty(t, leaks(out), "hub %v", tc.args)
	}

	p := hubtest.Start(t, []string{"-dev", "-api-keys", DemoApp + ":" + leakAPIKey})
	require.Eventually(t, func() bool { return strings.Contains(p.Stdout(), "curl ") }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, p.Stdout(), "apikey <the key of app "+DemoApp+" in -api-keys>")
	assert.Empty(t, leaks(p.Stdout()+p.Stderr()), "the -dev banner")
}

// A JWKS URL's password and query are in no log line of a hub that cannot
// fetch it.
func TestBinaryJWKSURLNotLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	jwks := "http://idp:" + leakJWKSPassword + "@" + ln.Addr().String() + "/jwks?t=" + leakJWKSQuery
	ln.Close()
	p := hubtest.Start(t, []string{"-apps", DemoApp, "-jwt-jwks-url", jwks, "-log-level", "debug"})
	p.WaitLog(30*time.Second, "the failed fetch", func(l map[string]any) bool { return l["msg"] == "fetching JWKS failed" })
	p.Signal(syscall.SIGTERM)
	require.Equal(t, 0, p.Wait(30*time.Second))
	assert.Empty(t, leaks(p.Stderr()), "the hub's log")
	assert.Contains(t, p.Stderr(), `"url":"http://`+ln.Addr().String()+`/jwks"`)
}
