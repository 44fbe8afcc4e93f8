package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imhub/imhub/hub/auth"
)

// newVerifier builds the token verifier from the one key configured. In
// -dev mode without a key it draws a random HS256 secret, returned so that
// /dev/token can sign with it.
func newVerifier(ctx context.Context, cfg Config, log *slog.Logger) (*auth.Verifier, []byte, error) {
	ac := auth.Config{JWKSURL: cfg.JWTJWKSURL, Logger: log}
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
	case cfg.JWTJWKSURL == "" && cfg.Dev:
		ac.Secret = make([]byte, 32)
		_, _ = rand.Read(ac.Secret)
	}
	v, err := auth.New(ctx, ac)
	if err != nil {
		return nil, nil, err
	}
	return v, ac.Secret, nil
}

// devTokenHandler mints tokens for anyone who asks: -dev only, which is
// refused unless the hub listens on loopback.
//
//	GET /dev/token?sub=jared&groups=G1,G2&admin=1&app=1400000000&ttl=1h
//
// Defaults: sub "dev", every group, admin, the first app, one hour.
func devTokenHandler(cfg Config, secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if secret == nil {
			http.Error(w, "/dev/token signs with -jwt-secret; this hub verifies tokens with a public key", http.StatusNotImplemented)
			return
		}
		q := r.URL.Query()
		c := auth.Claims{App: cfg.Apps[0].ID, Admin: true, Groups: []string{"*"}}
		c.Subject = "dev"
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
		if v := q.Get("ttl"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, "ttl: want a positive duration such as 10m", http.StatusBadRequest)
				return
			}
			ttl = d
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
