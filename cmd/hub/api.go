package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/api"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/hub/presence"
)

// APIConfig is the server API (PROTOCOL §6) and presence.
type APIConfig struct {
	// Spec is -api-keys as given: SdkAppid:key,…
	Spec string
	// Keys is Spec parsed; in -dev mode with no Spec, the demo key.
	Keys []api.Key
	// PresenceTTL is how long a node that stopped heartbeating stays in
	// presence.
	PresenceTTL time.Duration
}

// String hides the keys from anything that prints a Config.
func (c APIConfig) String() string {
	return fmt.Sprintf("{%d API keys, presence TTL %v}", len(c.Keys), c.PresenceTTL)
}

// minAPIKeyLen is the shortest API key taken: it stands for the app's
// backend, and a short one is guessed.
const minAPIKeyLen = 16

func apiFlags(fs *flag.FlagSet, c *APIConfig) {
	fs.StringVar(&c.Spec, "api-keys", "", "server API keys, comma-separated: `SdkAppid:key`,… (at least 16 characters: openssl rand -hex 24); empty = no server API (with -dev: a demo key, printed)")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", 25*time.Second, "how long a node that stopped (killed, or cut off from Redis) still counts in presence, 3s to 30s; it heartbeats every third of it")
}

// validateAPI parses -api-keys against the configured apps.
func (c *Config) validateAPI() error {
	a := &c.API
	if a.PresenceTTL < 3*time.Second {
		return errors.New("-presence-ttl must be at least 3s (nodes heartbeat every third of it), such as 25s")
	}
	if a.PresenceTTL > 30*time.Second {
		// PROTOCOL §6: a node that dies leaves presence within 30 s.
		return fmt.Errorf("-presence-ttl must be at most 30s (a node that dies must leave presence within 30s), not %v; such as 25s", a.PresenceTTL)
	}
	apps := map[string]bool{}
	for _, app := range c.Apps {
		apps[app.ID] = true
	}
	a.Keys = nil
	for item := range strings.SplitSeq(a.Spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		app, key, ok := strings.Cut(item, ":")
		switch {
		case !ok:
			// The item may be a key given without its app: never echo it.
			return errors.New("-api-keys: an entry is not SdkAppid:key; want SdkAppid:key,…")
		case !isAppID(app):
			// Nor what stands before the ':', which may be part of a key.
			return errors.New("-api-keys: an entry does not start with a SdkAppid; want SdkAppid:key,…")
		case !apps[app]:
			return fmt.Errorf("-api-keys: app %q is not one of -apps", app)
		case len(key) < minAPIKeyLen:
			return fmt.Errorf("-api-keys: the key of app %s is %d characters; give at least %d (openssl rand -hex 24)", app, len(key), minAPIKeyLen)
		}
		a.Keys = append(a.Keys, api.Key{App: app, Key: key})
	}
	return nil
}

// isAppID reports whether s is a SdkAppid: a number.
func isAppID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// devAPIKey is the demo API key of a -dev hub without -api-keys: derived
// from the demo token key, so it is random unless -jwt-secret is given,
// and the same on every -dev hub that shares that secret.
func devAPIKey(devSecret []byte) string {
	m := hmac.New(sha256.New, devSecret)
	m.Write([]byte("imhub -dev api key"))
	return "dev-" + hex.EncodeToString(m.Sum(nil))[:32]
}

// serverAPI is the server API's parts: presence, the control channel and
// revocations, on the broker's Redis when there is one.
type serverAPI struct {
	presence    *presence.Tracker
	bus         *control.Bus
	revocations *control.Revocations
	client      redis.UniversalClient // nil with the in-process broker
	handler     http.Handler
}

// newServerAPI builds the parts; node is set later with setHub, as the
// hub needs presence and revocations to be made.
func newServerAPI(cfg Config, log *slog.Logger, pub api.Publisher, reg prometheus.Registerer) (*serverAPI, error) {
	s := &serverAPI{}
	if cfg.Redis != "" {
		c, err := broker.NewRedisClient(cfg.Redis, cfg.RedisCA)
		if err != nil {
			return nil, err
		}
		s.client = c
	}
	name := cfg.Node
	if name == "" {
		name, _ = os.Hostname()
	}
	s.presence = presence.New(presence.Config{Client: s.client, Node: name, TTL: cfg.API.PresenceTTL, Logger: log})
	s.revocations = control.NewRevocations(control.RevocationsConfig{
		Client: s.client, MaxTTL: cfg.JWTMaxTTL, Leeway: 5 * time.Second, Logger: log,
	})
	var apps []string
	for _, a := range cfg.Apps {
		apps = append(apps, a.ID)
	}
	s.handler = api.Off()
	if len(cfg.API.Keys) > 0 {
		s.handler = api.New(api.Config{
			Keys:        cfg.API.Keys,
			Apps:        apps,
			MaxBody:     cfg.MaxBody,
			Timeout:     publishTimeout,
			Publisher:   pub,
			Presence:    s.presence,
			Bus:         busFunc(func(ctx context.Context, c control.Command) error { return s.bus.Publish(ctx, c) }),
			Revocations: s.revocations,
			Logger:      log,
			Metrics:     api.NewMetrics(reg),
		})
	}
	return s, nil
}

// busFunc adapts a function to api.Bus.
type busFunc func(context.Context, control.Command) error

func (f busFunc) Publish(ctx context.Context, c control.Command) error { return f(ctx, c) }

// setHub makes the control channel act on node.
func (s *serverAPI) setHub(node *hub.Hub, log *slog.Logger) {
	subscribed := func(ctx context.Context) error {
		// Sessions let in before the subscription may hold tokens revoked
		// meanwhile: revocations are in Redis (disconnects are lost).
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := node.CloseRevoked(ctx)
		if n > 0 {
			log.Info("sessions with revoked tokens closed once the control channel was subscribed", "sessions", n)
		}
		return err
	}
	s.bus = control.NewBus(control.BusConfig{Client: s.client, Logger: log, Subscribed: subscribed}, func(c control.Command) {
		switch c.Op {
		case control.OpDisconnect:
			if n := node.Disconnect(c.App, c.User, time.Time{}, "disconnected by the server API"); n > 0 {
				log.Info("sessions disconnected by the server API", "app", c.App, "sessions", n)
			}
		case control.OpRevoke:
			before := time.Unix(c.Before, 0)
			// Remembered before the sessions are closed, so that one
			// connecting meanwhile is refused (see hub.ServeHTTP).
			s.revocations.Remember(c.App, c.User, before)
			if n := node.Disconnect(c.App, c.User, before, "token revoked by the server API"); n > 0 {
				log.Info("sessions with revoked tokens closed", "app", c.App, "sessions", n)
			}
		default:
			log.Warn("control channel: unknown command dropped", "op", c.Op)
		}
	})
}

// run runs presence and the control channel until ctx is done.
func (s *serverAPI) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.bus.Run(ctx) }()
	err := s.presence.Run(ctx)
	return errors.Join(err, <-done)
}

// close takes this node out of presence at once and closes the Redis
// client. run must have returned.
func (s *serverAPI) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.presence.Close(ctx); err != nil {
		log.Warn("presence not removed; it expires by itself", "err", err)
	}
	if s.client != nil {
		_ = s.client.Close()
	}
}
