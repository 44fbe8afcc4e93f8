package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
)

var now = time.Unix(1800000000, 0)

func claims(mod ...func(*auth.Claims)) auth.Claims {
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   "jared",
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
	}}
	for _, m := range mod {
		m(&c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c auth.Claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func verifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	if cfg.Apps == nil {
		cfg.Apps = []string{"1400000000"}
	}
	cfg.Now = func() time.Time { return now }
	v, err := auth.New(t.Context(), cfg)
	require.NoError(t, err)
	return v
}

type keys struct {
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	other *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	k        keys
)

func testKeys(t *testing.T) keys {
	keysOnce.Do(func() {
		var err error
		k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		k.other, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		_, k.ed, err = ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
	})
	return k
}

func wantReason(t *testing.T, v *auth.Verifier, token, reason string) {
	t.Helper()
	id, err := v.Verify(token)
	require.Error(t, err)
	assert.Nil(t, id)
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, reason, e.Reason, "error: %v", err)
}

func TestHS256(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := verifier(t, auth.Config{Secret: secret})
	id, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) {
		c.Groups = []string{"G1", "G2"}
	}), ""))
	require.NoError(t, err)
	assert.Equal(t, "jared", id.User)
	assert.Equal(t, "1400000000", id.App, "the only app is implied")
	assert.True(t, id.MayGroup("G1"))
	assert.False(t, id.MayGroup("G3"))
	assert.False(t, id.Admin)
	assert.Equal(t, now.Add(time.Hour), id.Expires)

	for _, tc := range []struct {
		name, token, reason string
	}{
		{"empty", "", auth.ReasonMissing},
		{"garbage", "not.a.jwt", auth.ReasonMalformed},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another secret of enough length!"), claims(), ""), auth.ReasonSignature},
		{"HS384", sign(t, jwt.SigningMethodHS384, secret, claims(), ""), auth.ReasonSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(), ""), auth.ReasonSignature},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-6 * time.Second)) }), ""), auth.ReasonExpired},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.ExpiresAt = nil }), ""), auth.ReasonClaims},
		{"nbf future", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) }), ""), auth.ReasonNotYet},
		{"iat future", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute)) }), ""), auth.ReasonNotYet},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.Subject = "" }), ""), auth.ReasonClaims},
		{"other app", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.App = "1400000009" }), ""), auth.ReasonUnknownApp},
		{"RS256 token", sign(t, jwt.SigningMethodRS256, testKeys(t).rsa, claims(), ""), auth.ReasonSignature},
	} {
		t.Run(tc.name, func(t *testing.T) { wantReason(t, v, tc.token, tc.reason) })
	}

	// Leeway: a token a few seconds past exp (clock skew) still passes.
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-2 * time.Second)) }), ""))
	assert.NoError(t, err)
	assert.True(t, auth.Expired(func() error {
		_, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }), ""))
		return err
	}()))
}

func TestSeveralApps(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := verifier(t, auth.Config{Secret: secret, Apps: []string{"1", "2"}})
	wantReason(t, v, sign(t, jwt.SigningMethodHS256, secret, claims(), ""), auth.ReasonClaims)
	id, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c *auth.Claims) { c.App = "2"; c.Admin = true; c.Groups = []string{"*"} }), ""))
	require.NoError(t, err)
	assert.Equal(t, "2", id.App)
	assert.True(t, id.Admin)
	assert.True(t, id.AllGroups)
}

// Each public key kind verifies its own algorithm and nothing else: not a
// token signed by another key, not another algorithm, and not an HMAC
// token that uses the public key as its secret.
func TestPublicKeys(t *testing.T) {
	ks := testKeys(t)
	for _, tc := range []struct {
		name   string
		pub    crypto.PublicKey
		method jwt.SigningMethod
		priv   any
	}{
		{"RS256", &ks.rsa.PublicKey, jwt.SigningMethodRS256, ks.rsa},
		{"ES256", &ks.ec.PublicKey, jwt.SigningMethodES256, ks.ec},
		{"EdDSA", ks.ed.Public(), jwt.SigningMethodEdDSA, ks.ed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pemKey := pemOf(t, tc.pub)
			v := verifier(t, auth.Config{PublicKeyPEM: pemKey})
			id, err := v.Verify(sign(t, tc.method, tc.priv, claims(), ""))
			require.NoError(t, err)
			assert.Equal(t, "jared", id.User)

			wantReason(t, v, sign(t, jwt.SigningMethodRS256, ks.other, claims(), ""), auth.ReasonSignature)
			wantReason(t, v, sign(t, jwt.SigningMethodHS256, pemKey, claims(), ""), auth.ReasonSignature)
			wantReason(t, v, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(), ""), auth.ReasonSignature)
			if tc.name != "ES256" {
				wantReason(t, v, sign(t, jwt.SigningMethodES256, ks.ec, claims(), ""), auth.ReasonSignature)
			}
			wantReason(t, v, sign(t, tc.method, tc.priv, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }), ""), auth.ReasonExpired)
		})
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	_, _, err := auth.ParsePublicKey([]byte("not pem"))
	assert.ErrorContains(t, err, "no PEM block")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, _, err = auth.ParsePublicKey(pemOf(t, &p384.PublicKey))
	assert.ErrorContains(t, err, "P-256")
}

// jwksServer serves a JWK set that the test can change, and counts fetches.
// With pad, the set carries that many bytes of an unknown member.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     jwkset.JWKSMarshal
	pad     int
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, start func(http.Handler) *httptest.Server) *jwksServer {
	s := &jwksServer{}
	s.Server = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		body, _ := json.Marshal(s.set)
		if s.pad > 0 {
			body = append(body[:len(body)-1], `,"pad":"`...)
			body = append(body, strings.Repeat("x", s.pad)...)
			body = append(body, `"}`...)
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(t *testing.T, pub crypto.PublicKey, kid string) {
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
	require.NoError(t, err)
	s.mu.Lock()
	s.set.Keys = append(s.set.Keys, jwk.Marshal())
	s.mu.Unlock()
}

func TestJWKS(t *testing.T) {
	ks := testKeys(t)
	srv := newJWKSServer(t, httptest.NewServer)
	srv.add(t, &ks.rsa.PublicKey, "rsa1")
	srv.add(t, &ks.ec.PublicKey, "ec1")
	srv.add(t, ks.ed.Public(), "ed1")
	v := verifier(t, auth.Config{JWKSURL: srv.URL, JWKSRefreshUnknown: time.Millisecond})

	for kid, tok := range map[string]string{
		"rsa1": sign(t, jwt.SigningMethodRS256, ks.rsa, claims(), "rsa1"),
		"ec1":  sign(t, jwt.SigningMethodES256, ks.ec, claims(), "ec1"),
		"ed1":  sign(t, jwt.SigningMethodEdDSA, ks.ed, claims(), "ed1"),
	} {
		_, err := v.Verify(tok)
		assert.NoError(t, err, kid)
	}
	wantReason(t, v, sign(t, jwt.SigningMethodRS256, ks.other, claims(), "rsa1"), auth.ReasonSignature)
	wantReason(t, v, sign(t, jwt.SigningMethodES256, ks.ec, claims(), "rsa1"), auth.ReasonSignature)
	wantReason(t, v, sign(t, jwt.SigningMethodHS256, []byte("secret"), claims(), "rsa1"), auth.ReasonSignature)
	wantReason(t, v, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(), "rsa1"), auth.ReasonSignature)

	// A key the issuer rotates in is found by a refetch, without waiting
	// for the periodic refresh.
	before := srv.fetches.Load()
	srv.add(t, &ks.other.PublicKey, "rsa2")
	_, err := v.Verify(sign(t, jwt.SigningMethodRS256, ks.other, claims(), "rsa2"))
	require.NoError(t, err)
	assert.Greater(t, srv.fetches.Load(), before)
}

// Unknown key ids cannot make the hub hammer the JWKS server.
func TestJWKSRefetchIsRateLimited(t *testing.T) {
	ks := testKeys(t)
	srv := newJWKSServer(t, httptest.NewServer)
	srv.add(t, &ks.rsa.PublicKey, "rsa1")
	v := verifier(t, auth.Config{JWKSURL: srv.URL, JWKSRefreshUnknown: time.Hour})
	start := srv.fetches.Load()
	for i := range 20 {
		wantReason(t, v, sign(t, jwt.SigningMethodRS256, ks.rsa, claims(), "unknown"+strings.Repeat("x", i)), auth.ReasonSignature)
	}
	assert.LessOrEqual(t, srv.fetches.Load()-start, int32(1), "at most one refetch per interval")
}

func TestNewNeedsAKey(t *testing.T) {
	_, err := auth.New(context.Background(), auth.Config{Apps: []string{"1"}})
	assert.Error(t, err)
}

// -jwt-max-ttl, -jwt-audience and -jwt-issuer: a token that claims to live
// too long, or is for another audience or from another issuer, is refused,
// and says why.
func TestLifetimeAudienceIssuer(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	strict := verifier(t, auth.Config{Secret: secret, MaxTTL: 24 * time.Hour, Audience: "imhub", Issuer: "https://idp.example"})
	lax := verifier(t, auth.Config{Secret: secret})
	good := func(c *auth.Claims) {
		c.Audience = jwt.ClaimStrings{"imhub"}
		c.Issuer = "https://idp.example"
	}
	year9999 := jwt.NewNumericDate(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name   string
		mod    func(*auth.Claims)
		reason string // empty: accepted
		lax    string // the reason without the three settings
	}{
		{"valid", func(*auth.Claims) {}, "", ""},
		{"exactly max ttl", func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(24 * time.Hour)) }, "", ""},
		{"exp in 9999", func(c *auth.Claims) { c.ExpiresAt = year9999 }, auth.ReasonLifetime, ""},
		{"iat long ago", func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(-48 * time.Hour)) }, auth.ReasonLifetime, ""},
		{"no iat, exp near", func(c *auth.Claims) { c.IssuedAt = nil }, "", ""},
		{"no iat, exp in 9999", func(c *auth.Claims) { c.IssuedAt = nil; c.ExpiresAt = year9999 }, auth.ReasonLifetime, ""},
		{"no iat, exp in 25h", func(c *auth.Claims) { c.IssuedAt = nil; c.ExpiresAt = jwt.NewNumericDate(now.Add(25 * time.Hour)) }, auth.ReasonLifetime, ""},
		{"aud among several", func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other", "imhub"} }, "", ""},
		{"aud missing", func(c *auth.Claims) { c.Audience = nil }, auth.ReasonClaims, ""},
		{"aud wrong", func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"imhub-staging"} }, auth.ReasonClaims, ""},
		{"iss missing", func(c *auth.Claims) { c.Issuer = "" }, auth.ReasonClaims, ""},
		{"iss wrong", func(c *auth.Claims) { c.Issuer = "https://evil.example" }, auth.ReasonClaims, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, secret, claims(good, tc.mod), "")
			if tc.reason == "" {
				_, err := strict.Verify(tok)
				require.NoError(t, err)
			} else {
				wantReason(t, strict, tok, tc.reason)
			}
			_, err := lax.Verify(tok)
			assert.NoError(t, err, "with no limit and no aud or iss rule, the token passes")
		})
	}
	_, err := strict.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(good, func(c *auth.Claims) { c.ExpiresAt = year9999 }), ""))
	assert.ErrorContains(t, err, "longer than the 24h0m0s this hub accepts")
	_, err = strict.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(good, func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"x"} }), ""))
	assert.ErrorContains(t, err, "aud")
	_, err = strict.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(good, func(c *auth.Claims) { c.Issuer = "x" }), ""))
	assert.ErrorContains(t, err, "iss")
}

// An HS256 secret shorter than the hash (RFC 7518 §3.2) is refused.
func TestShortSecret(t *testing.T) {
	for _, cfg := range []auth.Config{
		{Secret: []byte("x")},
		{Secret: []byte("0123456789abcdef0123456789abcde")}, // 31 bytes
		{DevSecret: []byte("short")},
	} {
		cfg.Apps = []string{"1"}
		_, err := auth.New(t.Context(), cfg)
		assert.ErrorContains(t, err, "needs at least 32")
	}
}

// A demo hub's own secret is accepted beside the real key, whatever kind
// that key is; a verifier without it refuses the tokens it signs.
func TestDevSecret(t *testing.T) {
	ks := testKeys(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	dev := []byte("dev-dev-dev-dev-dev-dev-dev-dev-dev")
	devTok := sign(t, jwt.SigningMethodHS256, dev, claims(), "")
	for _, tc := range []struct {
		name  string
		cfg   auth.Config
		token string // signed by the real key
	}{
		{"secret", auth.Config{Secret: secret}, sign(t, jwt.SigningMethodHS256, secret, claims(), "")},
		{"public key", auth.Config{PublicKeyPEM: pemOf(t, &ks.ec.PublicKey)}, sign(t, jwt.SigningMethodES256, ks.ec, claims(), "")},
		{"dev only", auth.Config{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.token != "" {
				wantReason(t, verifier(t, tc.cfg), devTok, auth.ReasonSignature)
			}
			cfg := tc.cfg
			cfg.DevSecret = dev
			v := verifier(t, cfg)
			_, err := v.Verify(devTok)
			require.NoError(t, err)
			if tc.token != "" {
				_, err = v.Verify(tc.token)
				require.NoError(t, err)
			}
			wantReason(t, v, sign(t, jwt.SigningMethodHS256, []byte("another secret of enough length!"), claims(), ""), auth.ReasonSignature)
			wantReason(t, v, sign(t, jwt.SigningMethodRS256, ks.other, claims(), ""), auth.ReasonSignature)
		})
	}
}

// The keys come over https; plain http only from a loopback host, where
// no one is on the path to replace them.
func TestJWKSURLScheme(t *testing.T) {
	for _, u := range []string{"http://jwks.invalid/keys", "http://10.0.0.1/keys", "ftp://idp.example/keys", "/keys"} {
		_, err := auth.New(t.Context(), auth.Config{JWKSURL: u, Apps: []string{"1"}})
		assert.Error(t, err, u)
	}
	for _, u := range []string{"https://idp.example/keys", "http://127.0.0.1:1/keys", "http://localhost:1/keys", "http://[::1]:1/keys"} {
		assert.NoError(t, auth.CheckJWKSURL(u), u)
	}

	ks := testKeys(t)
	srv := newJWKSServer(t, httptest.NewTLSServer)
	srv.add(t, &ks.rsa.PublicKey, "rsa1")
	v := verifier(t, auth.Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
	require.True(t, strings.HasPrefix(srv.URL, "https://"))
	_, err := v.Verify(sign(t, jwt.SigningMethodRS256, ks.rsa, claims(), "rsa1"))
	require.NoError(t, err)
}

// syncLog is a log the JWKS refresh may write to from its goroutine.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A JWKS body over MaxJWKSSize is not read to its end, and its keys are
// not used; one within the limit is.
func TestJWKSBodyBounded(t *testing.T) {
	ks := testKeys(t)
	for _, tc := range []struct {
		name string
		pad  int
		ok   bool
	}{
		{"within the limit", auth.MaxJWKSSize - 4096, true},
		{"over the limit", auth.MaxJWKSSize + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, httptest.NewServer)
			srv.add(t, &ks.rsa.PublicKey, "rsa1")
			srv.pad = tc.pad
			var log syncLog
			v := verifier(t, auth.Config{JWKSURL: srv.URL, JWKSRefreshUnknown: time.Hour,
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			tok := sign(t, jwt.SigningMethodRS256, ks.rsa, claims(), "rsa1")
			if tc.ok {
				_, err := v.Verify(tok)
				require.NoError(t, err)
				return
			}
			wantReason(t, v, tok, auth.ReasonSignature)
			assert.Contains(t, log.String(), "JWKS body is larger than 1024 KiB")
		})
	}
}

// A JWKS server that never finishes its answer holds the hub up for the
// fetch timeout, no longer: the hub starts, and says why it has no keys.
func TestJWKSFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"keys":[`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	var log syncLog
	v := verifier(t, auth.Config{JWKSURL: srv.URL, JWKSTimeout: 200 * time.Millisecond, JWKSRefreshUnknown: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	assert.Contains(t, log.String(), "fetching JWKS failed")
	wantReason(t, v, sign(t, jwt.SigningMethodRS256, testKeys(t).rsa, claims(), "rsa1"), auth.ReasonSignature)
}

// routeTransport answers requests for host itself and passes the rest on.
type routeTransport struct {
	host string
	h    http.Handler
	next http.RoundTripper
}

func (rt routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != rt.host {
		return rt.next.RoundTrip(req)
	}
	w := httptest.NewRecorder()
	rt.h.ServeHTTP(w, req)
	return w.Result(), nil
}

// An https JWKS URL that redirects to plain http on another host is not
// followed: the keys would come over plain http after all.
func TestJWKSRedirectToHTTP(t *testing.T) {
	ks := testKeys(t)
	keys := newJWKSServer(t, httptest.NewServer)
	keys.add(t, &ks.rsa.PublicKey, "rsa1")
	redirect := httptest.NewTLSServer(http.RedirectHandler("http://keys.example/jwks", http.StatusFound))
	t.Cleanup(redirect.Close)
	client := redirect.Client()
	client.Transport = routeTransport{"keys.example", keys.Config.Handler, client.Transport}
	tok := sign(t, jwt.SigningMethodRS256, ks.rsa, claims(), "rsa1")

	// The route works: asked for directly over https, it serves the keys.
	direct := httptest.NewTLSServer(http.RedirectHandler("https://keys.example/jwks", http.StatusFound))
	t.Cleanup(direct.Close)
	dc := direct.Client()
	dc.Transport = routeTransport{"keys.example", keys.Config.Handler, dc.Transport}
	_, err := verifier(t, auth.Config{JWKSURL: direct.URL, HTTPClient: dc}).Verify(tok)
	require.NoError(t, err)

	var log syncLog
	v := verifier(t, auth.Config{JWKSURL: redirect.URL, HTTPClient: client, JWKSRefreshUnknown: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	wantReason(t, v, tok, auth.ReasonSignature)
	assert.Contains(t, log.String(), "http is allowed on a loopback host only")
}

// With RequireIssuedAt, a token without iat is refused whatever its exp;
// one with iat passes as before.
func TestRequireIssuedAt(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := verifier(t, auth.Config{Secret: secret, MaxTTL: 24 * time.Hour, RequireIssuedAt: true})
	for _, tc := range []struct {
		name   string
		mod    func(*auth.Claims)
		reason string // empty: accepted
	}{
		{"iat", func(*auth.Claims) {}, ""},
		{"no iat", func(c *auth.Claims) { c.IssuedAt = nil }, auth.ReasonClaims},
		{"no iat, exp in a minute", func(c *auth.Claims) {
			c.IssuedAt = nil
			c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Minute))
		}, auth.ReasonClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, secret, claims(tc.mod), "")
			if tc.reason == "" {
				_, err := v.Verify(tok)
				require.NoError(t, err)
				return
			}
			wantReason(t, v, tok, tc.reason)
			_, err := v.Verify(tok)
			assert.ErrorContains(t, err, "no iat claim")
		})
	}
}
