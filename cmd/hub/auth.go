package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imhub/imhub/hub/auth"
)

// newVerifier builds the token verifier from the one key configured. In
// -dev mode it adds the demo key, returned so that /dev/token can sign
// with it.
//
// A hub with -im-keys and no JWT key takes UserSigs only: it has no
// verifier, and refuses every token.
func newVerifier(ctx context.Context, cfg Config, log *slog.Logger) (*auth.Verifier, []byte, error) {
	if cfg.JWTSecret == "" && cfg.JWTPublicKey == "" && cfg.JWTJWKSURL == "" && !cfg.Dev {
		return nil, nil, nil // validate let it through for -im-keys alone
	}
	ac := auth.Config{
		JWKSURL:  cfg.JWTJWKSURL,
		MaxTTL:   cfg.JWTMaxTTL,
		Audience: cfg.JWTAudience,
		Issuer:   cfg.JWTIssuer,
		Logger:   log,
		// The server API revokes tokens by iat (-dev turns it on with a
		// demo key): see auth.Config.RequireIssuedAt.
		RequireIssuedAt: len(cfg.API.Keys) > 0 || cfg.Dev,
	}
	for _, a := range cfg.Apps {
		ac.Apps = append(ac.Apps, a.ID)
	}
	switch {
	case cfg.JWTSecret != "":
		ac.Secret = []byte(cfg.JWTSecret)
	case cfg.JWTPublicKey != "":
		pem, err := os.ReadFile(cfg.JWTPublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("-jwt-public-key: %w", err)
		}
		ac.PublicKeyPEM = pem
	}
	if cfg.Dev {
		ac.DevSecret = devKey(cfg.JWTSecret)
	}
	v, err := auth.New(ctx, ac)
	if err != nil {
		return nil, nil, err
	}
	return v, ac.DevSecret, nil
}

// devKey is the secret /dev/token signs with. It is never the -jwt-secret
// itself, and only -dev hubs accept it, so a token handed out by a demo
// hub is refused by every production hub even when both share the
// -jwt-secret. Derived from that secret, it is the same on every -dev hub
// that shares it (a local cluster behind one load balancer, a hub started
// again), so a token from one is good on the others; without a -jwt-secret
// it is random, good for this process only.
func devKey(secret string) []byte {
	if secret == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		return key
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("imhub -dev /dev/token key"))
	return m.Sum(nil)
}

// loopbackHost reports whether an HTTP Host header names this machine:
// localhost, 127.x or ::1, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// devTokenHandler mints tokens for anyone who asks: -dev only, which is
// refused unless the hub listens on loopback.
//
//	GET /dev/token?sub=jared&groups=G1,G2&admin=1&app=1400000000&ttl=1h
//
// Defaults: sub "dev", every group, admin, the first app, one hour (or
// -jwt-max-ttl if shorter). The token carries -jwt-audience and
// -jwt-issuer when they are set, and is signed with the demo key.
//
// Listening on loopback is not enough by itself: a web page on
// evil.example whose name the attacker makes resolve to 127.0.0.1 (DNS
// rebinding) talks to the hub as a same-origin page and could read a
// token. Such a request carries Host: evil.example, so only requests that
// name a loopback host are answered.
func devTokenHandler(cfg Config, secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "misdirected: /dev/token answers only requests addressed to localhost, 127.0.0.1 or [::1]", http.StatusForbidden)
			return
		}
		q := r.URL.Query()
		c := auth.Claims{App: cfg.Apps[0].ID, Admin: true, Groups: []string{"*"}}
		c.Subject = "dev"
		if cfg.JWTAudience != "" {
			c.Audience = jwt.ClaimStrings{cfg.JWTAudience}
		}
		c.Issuer = cfg.JWTIssuer
		if v := q.Get("sub"); v != "" {
			c.Subject = v
		}
		if v := q.Get("app"); v != "" {
			c.App = v
		}
		if v := q.Get("groups"); v != "" {
			c.Groups = strings.Split(v, ",")
		}
		if v := q.Get("admin"); v != "" {
			admin, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "admin: want true or false", http.StatusBadRequest)
				return
			}
			c.Admin = admin
		}
		ttl := time.Hour
		if cfg.JWTMaxTTL > 0 && cfg.JWTMaxTTL < ttl {
			ttl = cfg.JWTMaxTTL
		}
		if v := q.Get("ttl"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, "ttl: want a positive duration such as 10m", http.StatusBadRequest)
				return
			}
			ttl = d
		}
		if cfg.JWTMaxTTL > 0 && ttl > cfg.JWTMaxTTL {
			http.Error(w, fmt.Sprintf("ttl: at most %v, the hub's -jwt-max-ttl", cfg.JWTMaxTTL), http.StatusBadRequest)
			return
		}
		now := time.Now()
		c.IssuedAt = jwt.NewNumericDate(now)
		c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
		tok, err := auth.Mint(secret, c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token":   tok,
			"expires": c.ExpiresAt.Unix(),
			"ws":      "ws://" + r.Host + "/ws?token=" + tok,
		})
	})
}
