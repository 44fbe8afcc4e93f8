package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
)

const (
	imKey = "hubcat-test-im-secret-key-0123456789"
	sig   = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwlmJRakpUInilOzEgoLMFCUrQxMDKIDI"
)

// request is what the stand-in hub saw of a connection.
type request struct {
	authorization string
	query         url.Values
}

// standIn answers one WebSocket as the hub would, with a connected frame
// and a close, and records the request.
func standIn(t *testing.T) (string, <-chan request) {
	seen := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- request{authorization: r.Header.Get("Authorization"), query: r.URL.Query()}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		_ = conn.Write(ctx, websocket.MessageText, []byte(`{"op":"connected","user":"jared","app":"1400000000","node":"n1","channels":["user:jared"]}`))
		conn.Close(websocket.StatusNormalClosure, "bye")
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", seen
}

func noEnv(string) string { return "" }

// hubcat connects with the credential its flags name: a UserSig as given,
// one it signs with -im-key (which the hub's verifier takes), or a token.
func TestHubcatCredentialFlags(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	verifier := auth.NewUserSigVerifier(map[string][]byte{"1400000000": []byte(imKey)})
	login := url.Values{"v": {"1"}, "sdkappid": {"1400000000"}, "userid": {"jared"}}
	for _, c := range []struct {
		name  string
		args  []string
		env   func(string) string
		query url.Values
		check func(t *testing.T, authorization string)
	}{
		{"a UserSig", []string{"-sdkappid", "1400000000", "-userid", "jared", "-usersig", sig}, env(map[string]string{"HUB_TOKEN": "ignored"}), login,
			func(t *testing.T, a string) { assert.Equal(t, "UserSig "+sig, a) }},
		{"a UserSig from $HUB_USERSIG", []string{"-sdkappid", "1400000000", "-userid", "jared"}, env(map[string]string{"HUB_USERSIG": sig}), login,
			func(t *testing.T, a string) { assert.Equal(t, "UserSig "+sig, a) }},
		{"signed with -im-key", []string{"-sdkappid", "1400000000", "-userid", "jared", "-im-key", imKey, "-usersig-ttl", "1h"}, noEnv, login,
			func(t *testing.T, a string) {
				u, err := verifier.Verify(strings.TrimPrefix(a, "UserSig "), "1400000000", "jared")
				require.NoError(t, err, "the hub's verifier takes it")
				assert.Equal(t, time.Hour, u.Expires.Sub(u.Issued))
			}},
		{"signed with $HUB_IM_KEY", []string{"-sdkappid", "1400000000", "-userid", "jared"}, env(map[string]string{"HUB_IM_KEY": imKey}), login,
			func(t *testing.T, a string) {
				u, err := verifier.Verify(strings.TrimPrefix(a, "UserSig "), "1400000000", "jared")
				require.NoError(t, err)
				assert.Equal(t, 24*time.Hour, u.Expires.Sub(u.Issued), "a day by default")
			}},
		{"a token", []string{"-token", "a.jwt.token"}, noEnv, url.Values{"v": {"1"}},
			func(t *testing.T, a string) { assert.Equal(t, "Bearer a.jwt.token", a) }},
		{"a token from $HUB_TOKEN", nil, env(map[string]string{"HUB_TOKEN": "env.jwt.token"}), url.Values{"v": {"1"}},
			func(t *testing.T, a string) { assert.Equal(t, "Bearer env.jwt.token", a) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			wsURL, seen := standIn(t)
			o, err := parseFlags(append([]string{"-url", wsURL + "?v=1"}, c.args...), c.env, &bytes.Buffer{})
			require.NoError(t, err)
			var out bytes.Buffer
			err = run(context.Background(), o, strings.NewReader(""), &out)
			require.ErrorContains(t, err, "closed by the hub", "the stand-in closes after its connected frame")
			r := <-seen
			assert.Equal(t, c.query, r.query, "the UserSig is never in the query")
			c.check(t, r.authorization)
			assert.Contains(t, out.String(), `"op":"connected"`)
		})
	}
}

// Flags that do not make one whole credential are refused, and neither
// the refusal, nor -h, nor a refused connection repeats the key or a
// UserSig.
func TestHubcatCredentialFlagRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"both", []string{"-sdkappid", "1400000000", "-userid", "jared", "-usersig", sig, "-im-key", imKey}, noEnv, "-usersig and -im-key are exclusive"},
		{"both from the environment", []string{"-sdkappid", "1400000000", "-userid", "jared"}, func(k string) string {
			return map[string]string{"HUB_USERSIG": sig, "HUB_IM_KEY": imKey}[k]
		}, "-usersig and -im-key are exclusive"},
		{"no user", []string{"-sdkappid", "1400000000", "-im-key", imKey}, noEnv, "needs -sdkappid and -userid"},
		{"no app", []string{"-userid", "jared", "-usersig", sig}, noEnv, "needs -sdkappid and -userid"},
		{"with a token", []string{"-sdkappid", "1400000000", "-userid", "jared", "-im-key", imKey, "-token", "t"}, noEnv, "-token and -dev do not go with a UserSig"},
		{"with -dev", []string{"-sdkappid", "1400000000", "-userid", "jared", "-usersig", sig, "-dev", "http://127.0.0.1:1"}, noEnv, "-token and -dev do not go with a UserSig"},
		{"a login without its UserSig", []string{"-sdkappid", "1400000000", "-userid", "jared"}, noEnv, "-sdkappid and -userid go with -usersig or -im-key"},
		{"an argument", []string{"-im-key", imKey, "extra"}, noEnv, `unexpected argument "extra"`},
		{"-im-key without a value", []string{"-sdkappid", "1400000000", "-userid", "jared", "-im-key"}, noEnv, "flag needs an argument: -im-key"},
		{"a misspelt flag", []string{"-im-kye=" + imKey}, noEnv, "flag provided but not defined: -im-kye"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(c.args, c.env, &stderr)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			for _, secret := range []string{imKey, sig} {
				assert.NotContains(t, err.Error(), secret)
				assert.NotContains(t, stderr.String(), secret)
			}
		})
	}

	t.Run("-h", func(t *testing.T) {
		var stderr bytes.Buffer
		env := func(k string) string { return map[string]string{"HUB_IM_KEY": imKey, "HUB_USERSIG": sig}[k] }
		_, err := parseFlags([]string{"-im-key", imKey, "-h"}, env, &stderr)
		require.True(t, errors.Is(err, flag.ErrHelp), "%v", err)
		assert.Contains(t, stderr.String(), "-im-key")
		assert.Contains(t, stderr.String(), "never printed")
		assert.NotContains(t, stderr.String(), imKey)
		assert.NotContains(t, stderr.String(), sig)
	})

	t.Run("a lifetime under a second", func(t *testing.T) {
		o, err := parseFlags([]string{"-url", "ws://127.0.0.1:1/ws", "-sdkappid", "1400000000", "-userid", "jared", "-im-key", imKey, "-usersig-ttl", "10ms"}, noEnv, &bytes.Buffer{})
		require.NoError(t, err)
		err = run(context.Background(), o, strings.NewReader(""), &bytes.Buffer{})
		require.ErrorContains(t, err, "lifetime under a second")
		assert.NotContains(t, err.Error(), imKey)
	})

	t.Run("a connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
		for _, args := range [][]string{{"-usersig", sig}, {"-im-key", imKey}} {
			o, err := parseFlags(append([]string{"-url", wsURL, "-sdkappid", "1400000000", "-userid", "jared"}, args...), noEnv, &bytes.Buffer{})
			require.NoError(t, err)
			err = run(context.Background(), o, strings.NewReader(""), &bytes.Buffer{})
			require.ErrorContains(t, err, "connect "+wsURL+"?sdkappid=1400000000&userid=jared")
			assert.NotContains(t, err.Error(), imKey)
			assert.NotContains(t, err.Error(), sig)
		}
	})
}
