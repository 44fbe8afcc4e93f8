// Package auth verifies the JWTs clients present to the hub and says who
// they are and what they may see.
//
// A [Verifier] is built from exactly one key source: an HS256 secret, a PEM
// public key (RS256, ES256 or EdDSA, the algorithm pinned by the key's
// type), or a JWKS URL refreshed in the background; a demo hub adds a
// second HS256 secret of its own for the tokens it mints. Tokens signed
// with any other algorithm, including "none", are rejected.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims imhub reads from a token.
type Claims struct {
	jwt.RegisteredClaims
	// App is the SdkAppid the token is for; required when the hub serves
	// more than one app.
	App string `json:"app,omitempty"`
	// Groups are the group ids the holder may subscribe to; "*" is every
	// group of the app.
	Groups []string `json:"groups,omitempty"`
	// Admin may subscribe to the app firehose and to any group or user.
	Admin bool `json:"admin,omitempty"`
}

// Identity is a verified token: who the client is and what it may see.
type Identity struct {
	User      string
	App       string
	Groups    []string
	AllGroups bool
	Admin     bool
	Expires   time.Time
	// Issued is the token's iat; zero when it has none. A revocation
	// (docs/protocol.md#server-api) refuses tokens issued before a time, and one without
	// iat with them.
	Issued time.Time
	// UserSig says the identity is a UserSig's, the IM's own login
	// (docs/protocol.md#credentials), not a token's: it has no groups of
	// its own (AllGroups stands for every group the IM says the user is
	// in, for the hub to ask), is never Admin, and is refreshed with a
	// UserSig only.
	UserSig bool
}

// MayGroup reports whether the identity may subscribe to group id.
func (id *Identity) MayGroup(group string) bool {
	return id.Admin || id.AllGroups || slices.Contains(id.Groups, group)
}

// Reasons a token is refused, the values of Error.Reason.
const (
	ReasonMissing    = "missing"
	ReasonMalformed  = "malformed"
	ReasonSignature  = "signature"
	ReasonExpired    = "expired"
	ReasonNotYet     = "not_yet_valid"
	ReasonClaims     = "claims"
	ReasonUnknownApp = "app"
	ReasonLifetime   = "lifetime"
)

// MinSecretLen is the shortest HS256 secret accepted: RFC 7518 §3.2 asks
// for a key at least as long as the hash, 256 bits.
const MinSecretLen = 32

// Error says why a token was refused. Reason is one of the Reason
// constants, fit for a metric label; the message is for people.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Expired reports whether err means the token has expired, which clients
// are told apart (close code 4002) so they refresh rather than give up.
func Expired(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == ReasonExpired
}

// Config configures a Verifier. At most one of Secret, PublicKeyPEM and
// JWKSURL is set, and one of them or DevSecret.
type Config struct {
	// Secret is the HS256 secret, at least MinSecretLen bytes.
	Secret       []byte
	PublicKeyPEM []byte
	// JWKSURL is https, or http on a loopback host only.
	JWKSURL string
	// DevSecret, at least MinSecretLen bytes, is accepted for HS256 tokens
	// beside the key above: a demo hub signs the tokens it hands out with
	// it, so that they are not valid where only the real key is.
	DevSecret []byte
	// Apps are the SdkAppids the hub serves.
	Apps []string
	// Leeway absorbs clock skew on exp, nbf and iat [DefaultLeeway].
	Leeway time.Duration
	// MaxTTL is the longest lifetime a token may claim: exp - iat, or
	// exp - now when it has no iat. Zero is no limit.
	MaxTTL time.Duration
	// RequireIssuedAt refuses tokens without iat. A hub whose server API
	// revokes tokens needs it: a revocation is kept until every token
	// issued before it has expired, which only iat (exp - iat <= MaxTTL)
	// bounds; without iat, a token with a far exp would be let in again
	// once the revocation is forgotten.
	RequireIssuedAt bool
	// Audience and Issuer, when set, must be the token's aud (one of its
	// values) and iss; a token without them is refused.
	Audience string
	Issuer   string
	// HTTPClient fetches the JWKS; default a new client. It is copied and
	// its transport wrapped to bound what a fetch reads.
	HTTPClient *http.Client
	// JWKSTimeout bounds one JWKS fetch, body included; default 10s.
	JWKSTimeout time.Duration
	// JWKSRefresh is how often the JWKS is fetched again; default 1h. A
	// token with an unknown key id also triggers a fetch, at most one per
	// JWKSRefreshUnknown (default 1m).
	JWKSRefresh        time.Duration
	JWKSRefreshUnknown time.Duration
	Logger             *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultLeeway is Config.Leeway's default, which what keeps a judgement
// on tokens (a revocation) must allow for too.
const DefaultLeeway = 5 * time.Second

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	keyfunc jwt.Keyfunc
	parser  *jwt.Parser
	apps    []string
	maxTTL  time.Duration
	leeway  time.Duration
	now     func() time.Time
	// needIat refuses tokens without iat (Config.RequireIssuedAt).
	needIat bool
}

// New returns a Verifier. With a JWKS URL, ctx bounds the background
// refresh: it stops when ctx is done.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.Apps) == 0 {
		return nil, errors.New("auth: no apps")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxTTL < 0 {
		return nil, errors.New("auth: negative MaxTTL")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, k := range []struct {
		name   string
		secret []byte
	}{{"secret", cfg.Secret}, {"dev secret", cfg.DevSecret}} {
		if len(k.secret) > 0 && len(k.secret) < MinSecretLen {
			return nil, fmt.Errorf("auth: %s is %d bytes; HS256 needs at least %d", k.name, len(k.secret), MinSecretLen)
		}
	}
	// HMAC secrets verify HS256 tokens and nothing else; the public key
	// source, if any, verifies the rest. Sending each algorithm only to
	// its own keys means a public key is never taken for an HMAC secret.
	var (
		hmacKeys []jwt.VerificationKey
		public   jwt.Keyfunc
		methods  []string
	)
	switch {
	case len(cfg.Secret) > 0:
		hmacKeys = append(hmacKeys, cfg.Secret)
	case len(cfg.PublicKeyPEM) > 0:
		key, method, err := ParsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		public = func(*jwt.Token) (any, error) { return key, nil }
		methods = []string{method}
	case cfg.JWKSURL != "":
		k, err := newJWKS(ctx, cfg)
		if err != nil {
			return nil, err
		}
		public = k
		// Each key's type pins its algorithm when the signature is
		// checked; this list keeps none out entirely.
		methods = []string{"RS256", "ES256", "EdDSA"}
	case len(cfg.DevSecret) == 0:
		return nil, errors.New("auth: no key configured")
	}
	if len(cfg.DevSecret) > 0 {
		hmacKeys = append(hmacKeys, cfg.DevSecret)
	}
	if len(hmacKeys) > 0 {
		methods = append(methods, "HS256")
	}
	kf := func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == "HS256" {
			return jwt.VerificationKeySet{Keys: hmacKeys}, nil
		}
		if public == nil {
			return nil, errors.New("no key for this algorithm")
		}
		return public(t)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	return &Verifier{
		keyfunc: kf,
		parser:  jwt.NewParser(opts...),
		apps:    cfg.Apps,
		maxTTL:  cfg.MaxTTL,
		leeway:  cfg.Leeway,
		now:     cfg.Now,
		needIat: cfg.RequireIssuedAt,
	}, nil
}

// ParsePublicKey reads a PEM public key and returns it with the one
// algorithm it may verify: RS256 for RSA, ES256 for P-256, EdDSA for
// Ed25519.
func ParsePublicKey(data []byte) (any, string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("auth: public key: no PEM block found")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		if k, err2 := x509.ParsePKCS1PublicKey(block.Bytes); err2 == nil {
			key = k
		} else {
			return nil, "", fmt.Errorf("auth: public key: %w", err)
		}
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("auth: public key: ECDSA curve %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	default:
		return nil, "", fmt.Errorf("auth: public key: unsupported type %T", key)
	}
}

// Verify checks token and returns who it names. The error is an *Error.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if token == "" {
		return nil, &Error{ReasonMissing, errors.New("no token: send Authorization: Bearer <jwt> or ?token=")}
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, v.keyfunc)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &Error{ReasonExpired, errors.New("token has expired")}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, &Error{ReasonNotYet, errors.New("token is not valid yet")}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, &Error{ReasonClaims, fmt.Errorf("token: %w", err)}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, &Error{ReasonClaims, errors.New("token has an aud claim that is not this hub's audience")}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, &Error{ReasonClaims, errors.New("token has an iss claim that is not this hub's issuer")}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, &Error{ReasonMalformed, errors.New("token is malformed")}
	default:
		// Bad signature, wrong algorithm, unknown key: one answer, so a
		// caller learns nothing about which.
		return nil, &Error{ReasonSignature, errors.New("token signature is not valid")}
	}
	if c.Subject == "" {
		return nil, &Error{ReasonClaims, errors.New("token has no sub claim")}
	}
	if v.needIat && c.IssuedAt == nil {
		return nil, &Error{ReasonClaims, errors.New("token has no iat claim, which this hub needs: its server API revokes tokens by when they were issued")}
	}
	if err := v.checkLifetime(&c); err != nil {
		return nil, err
	}
	app := c.App
	switch {
	case app == "" && len(v.apps) == 1:
		app = v.apps[0]
	case app == "":
		return nil, &Error{ReasonClaims, errors.New("token has no app claim, which this hub needs: it serves several apps")}
	case !slices.Contains(v.apps, app):
		return nil, &Error{ReasonUnknownApp, fmt.Errorf("token is for app %q, which this hub does not serve", app)}
	}
	id := &Identity{User: c.Subject, App: app, Admin: c.Admin, Expires: c.ExpiresAt.Time}
	if c.IssuedAt != nil {
		id.Issued = c.IssuedAt.Time
	}
	for _, g := range c.Groups {
		if g == "*" {
			id.AllGroups = true
		} else {
			id.Groups = append(id.Groups, g)
		}
	}
	return id, nil
}

// checkLifetime refuses a token that claims to live longer than maxTTL, so
// that a leaked token, or one minted by mistake with a far exp, is not good
// for years. Without iat, the lifetime left is what counts.
func (v *Verifier) checkLifetime(c *Claims) error {
	if v.maxTTL == 0 {
		return nil
	}
	exp := c.ExpiresAt.Time
	var life time.Duration
	if c.IssuedAt != nil {
		life = exp.Sub(c.IssuedAt.Time)
	} else {
		life = exp.Sub(v.now()) - v.leeway
	}
	if life > v.maxTTL {
		return &Error{ReasonLifetime, fmt.Errorf("token lives %v (exp - iat, or exp - now without iat), longer than the %v this hub accepts", life.Round(time.Second), v.maxTTL)}
	}
	return nil
}

// Mint signs claims with an HS256 secret: for -dev tokens, tests and load
// tools, never for production issuance.
func Mint(secret []byte, c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
