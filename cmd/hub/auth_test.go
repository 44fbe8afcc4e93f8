package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// getHost fetches path from p with the Host header set to host.
func getHost(t *testing.T, p *hubtest.Process, path, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", p.URL(path), nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func devToken(t *testing.T, p *hubtest.Process, query string) string {
	t.Helper()
	code, body := p.Get("/dev/token" + query)
	require.Equal(t, 200, code, body)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	return tok.Token
}

// /dev/token answers only requests addressed to a loopback name, so that a
// web page whose own name resolves to 127.0.0.1 (DNS rebinding) cannot read
// a token from it; and it mints no token the hub would refuse.
func TestBinaryDevTokenHost(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev"})
	_, port, err := net.SplitHostPort(p.Addr)
	require.NoError(t, err)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"localhost:" + port, 200},
		{"LocalHost", 200},
		{"127.0.0.1:" + port, 200},
		{"127.1.2.3:80", 200},
		{"[::1]:" + port, 200},
		{"evil.example", 403},
		{"evil.example:" + port, 403},
		{"localhost.evil.example:" + port, 403},
		{"127.0.0.1.nip.io:" + port, 403},
		{"10.0.0.1:" + port, 403},
		{"[::ffff:10.0.0.1]:" + port, 403},
	} {
		code, body := getHost(t, p, "/dev/token?sub=x", tc.host)
		assert.Equal(t, tc.want, code, "Host %s: %s", tc.host, body)
		if code == 403 {
			assert.NotContains(t, body, "token\"", "Host %s", tc.host)
		}
	}
	code, body := p.Get("/dev/token?ttl=25h")
	assert.Equal(t, 400, code, "a ttl past -jwt-max-ttl: %s", body)
	assert.Contains(t, body, "-jwt-max-ttl")
}

// A -dev hub signs /dev/token with a key of its own: another -dev hub with
// the same -jwt-secret accepts the token (a local cluster), a hub without
// -dev refuses it; tokens signed with the -jwt-secret pass everywhere.
func TestBinaryDevTokenKey(t *testing.T) {
	dev := hubtest.Start(t, []string{"-dev", "-jwt-secret", clusterSecret})
	dev2 := hubtest.Start(t, []string{"-dev", "-jwt-secret", clusterSecret})
	prod := hubtest.Start(t, []string{"-apps", DemoApp, "-jwt-secret", clusterSecret})
	tok := devToken(t, dev, "?sub=jared")
	real := mint(t, DemoApp, "jared", false)
	for _, p := range []*hubtest.Process{dev, dev2, prod} {
		wstest.Dial(t, wsURL(p), real).ReadOp("connected")
	}
	wstest.Dial(t, wsURL(dev), tok).ReadOp("connected")
	wstest.Dial(t, wsURL(dev2), tok).ReadOp("connected")
	wstest.Dial(t, wsURL(prod), tok).ExpectClose(hub.CloseInvalidToken)
}

// The hub enforces -jwt-max-ttl (24h by default), -jwt-audience and
// -jwt-issuer on connect and on refresh alike.
func TestBinaryTokenRules(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", DemoApp, "-jwt-secret", clusterSecret, "-jwt-audience", "imhub", "-jwt-issuer", "https://idp.example"})
	token := func(mod func(*auth.Claims)) string {
		c := auth.Claims{}
		c.Subject = "jared"
		c.Audience = jwt.ClaimStrings{"imhub"}
		c.Issuer = "https://idp.example"
		c.IssuedAt = jwt.NewNumericDate(time.Now())
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
		mod(&c)
		tok, err := auth.Mint([]byte(clusterSecret), c)
		require.NoError(t, err)
		return tok
	}
	year9999 := func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)) }
	for name, mod := range map[string]func(*auth.Claims){
		"exp in 9999": year9999,
		"25h":         func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(25 * time.Hour)) },
		"no aud":      func(c *auth.Claims) { c.Audience = nil },
		"wrong aud":   func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} },
		"no iss":      func(c *auth.Claims) { c.Issuer = "" },
		"wrong iss":   func(c *auth.Claims) { c.Issuer = "https://evil.example" },
	} {
		t.Run(name, func(t *testing.T) {
			wstest.Dial(t, wsURL(p), token(mod)).ExpectClose(hub.CloseInvalidToken)
		})
	}

	conn := wstest.Dial(t, wsURL(p), token(func(*auth.Claims) {}))
	conn.ReadOp("connected")
	conn.ReadOp("subscribed")
	conn.Send(map[string]any{"op": "refresh", "token": token(year9999), "id": 1})
	f := conn.ReadOp("error")
	assert.Equal(t, "forbidden", f.Code)
	assert.Contains(t, f.Message, "longer than the 24h0m0s this hub accepts")
	conn.Send(map[string]any{"op": "refresh", "token": token(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), "id": 2})
	assert.Contains(t, conn.ReadOp("error").Message, "aud")
	conn.Send(map[string]any{"op": "refresh", "token": token(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(2 * time.Hour)) }), "id": 3})
	assert.Equal(t, "refreshed", conn.ReadOp("refreshed").Op)
}
