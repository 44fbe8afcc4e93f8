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
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/api"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/hub/presence"
)

// APIConfig is the server API (docs/protocol.md#server-api) and presence.
type APIConfig struct {
	// Spec is -api-keys as given: SdkAppid:key,…
	Spec string
	// Keys is Spec parsed; in -dev mode with no Spec, the demo key.
	Keys []api.Key
	// PresenceTTL is how long a node that stopped heartbeating stays in
	// presence.
	PresenceTTL time.Duration
	// RevocationCheck is what a connect gets whose token cannot be checked
	// against the revocations (Redis away): "open" lets it in and checks
	// it once Redis answers; "closed" refuses it (1013).
	RevocationCheck string
	// Quota is each app's quota of requests on this node: Rate a second
	// on average, and Burst at once. Rate 0 sets none.
	api.Quota
}

// defaultAPIConfig is APIConfig with the api and presence packages'
// defaults.
func defaultAPIConfig() APIConfig {
	return APIConfig{PresenceTTL: presence.DefaultConfig().TTL, RevocationCheck: "open", Quota: api.DefaultConfig().Quota}
}

// String hides the keys from anything that prints a Config.
func (c APIConfig) String() string {
	return fmt.Sprintf("{%d API keys, presence TTL %v, revocation check %s, rate %g/s, burst %d}", len(c.Keys), c.PresenceTTL, c.RevocationCheck, c.Rate, c.Burst)
}

// minAPIKeyLen is the shortest API key taken: it stands for the app's
// backend, and a short one is guessed.
const minAPIKeyLen = 16

func apiFlags(fs *flag.FlagSet, c *APIConfig) {
	fs.StringVar(&c.Spec, "api-keys", "", "server API keys, comma-separated: `SdkAppid:key`,… (at least 16 characters: openssl rand -hex 24); empty = no server API (with -dev: a demo key, printed)")
	fs.StringVar(&c.RevocationCheck, "revocation-check", c.RevocationCheck, "a connect whose token cannot be checked against the server API's revocations, Redis not answering: "+
		"open = let it in, and close it with 4010 once Redis answers if it was revoked; closed = refuse it with 1013 (try again later)")
	fs.Float64Var(&c.Rate, "api-rate", c.Rate, "server API requests a second each app may make on average, on this node (429 with Retry-After beyond; 0 = no limit); "+
		"N nodes behind a load balancer allow N times as much. 100 is well above a backend's own notifications, and bounds what a leaked key costs Redis: "+
		"each fresh channel published to holds about 5 KB for 10 minutes and 240 bytes for 24 hours, so 100 a second hold some 300 MB, not the 14 GB of 4,800 a second (README)")
	fs.IntVar(&c.Burst, "api-burst", c.Burst, "server API requests each app may make at once on this node, before -api-rate paces them: "+
		"a backend's batch, such as a notice to each member of a large group, goes through at once; 1000 fresh channels cost Redis some 5 MB")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", c.PresenceTTL, "how long a node that stopped (killed, or cut off from Redis) still counts in presence, 3s to 30s; it heartbeats every third of it")
}

// apiKeyList reads -api-keys. An app may be named twice: a key being
// replaced, and the one replacing it.
var apiKeyList = secretList{flag: "-api-keys", shape: "SdkAppid:key", check: func(app, key string) string {
	if len(key) < minAPIKeyLen {
		return fmt.Sprintf("the key of app %s is %d characters; give at least %d (openssl rand -hex 24)", app, len(key), minAPIKeyLen)
	}
	return ""
}}

// validateAPI parses -api-keys against the configured apps.
func (c *Config) validateAPI() error {
	a := &c.API
	if a.PresenceTTL < 3*time.Second {
		return errors.New("-presence-ttl must be at least 3s (nodes heartbeat every third of it), such as 25s")
	}
	if a.PresenceTTL > 30*time.Second {
		// docs/protocol.md#server-api: a node that dies leaves presence within 30 s.
		return fmt.Errorf("-presence-ttl must be at most 30s (a node that dies must leave presence within 30s), not %v; such as 25s", a.PresenceTTL)
	}
	if a.RevocationCheck != "open" && a.RevocationCheck != "closed" {
		return fmt.Errorf("-revocation-check %q: want open (let a token that cannot be checked in, and check it once Redis answers) or closed (refuse it)", a.RevocationCheck)
	}
	switch {
	case !(a.Rate >= 0) || math.IsInf(a.Rate, 0): // NaN too
		return errors.New("-api-rate must be a number of requests a second, such as 100, or 0 for no limit")
	case a.Rate > 0 && a.Burst < 1:
		return fmt.Errorf("-api-burst must be at least 1 with -api-rate %g, such as 1000", a.Rate)
	}
	list, err := apiKeyList.parse(a.Spec, c.Apps)
	if err != nil {
		return err
	}
	a.Keys = nil
	for _, item := range list {
		a.Keys = append(a.Keys, api.Key{App: item.app, Key: item.secret})
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
	node        *hub.Hub // set by setHub
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
	s.presence = presence.New(presence.Config{Client: s.client, Node: cfg.Node, TTL: cfg.API.PresenceTTL, Logger: log})
	s.revocations = control.NewRevocations(control.RevocationsConfig{
		Client: s.client, MaxTTL: cfg.JWTMaxTTL, Leeway: auth.DefaultLeeway, Logger: log,
	})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imhub_revocations_remembered",
		Help: "Revocations this node keeps in memory until they lapse, to judge tokens by while Redis is away.",
	}, func() float64 { n, _ := s.revocations.Remembered(); return float64(n) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "imhub_revocations_forgotten_total",
		Help: "Revocations dropped from memory before they lapsed, as memory held its most; Redis still has them.",
	}, func() float64 { _, n := s.revocations.Remembered(); return float64(n) }))
	s.handler = api.Off()
	if len(cfg.API.Keys) > 0 {
		s.handler = api.New(api.Config{
			Keys:        cfg.API.Keys,
			MaxBody:     cfg.MaxBody,
			Timeout:     cfg.PublishTimeout,
			Quota:       cfg.API.Quota,
			Publisher:   pub,
			Presence:    s.presence,
			Bus:         lateBus{s},
			Revocations: s.revocations,
			Logger:      log,
			Metrics:     api.NewMetrics(reg),
		})
	}
	return s, nil
}

// lateBus is api.Bus for the control channel, which setHub makes after
// the API handler.
type lateBus struct{ s *serverAPI }

func (b lateBus) Publish(ctx context.Context, c control.Command) error {
	return b.s.bus.Publish(ctx, c)
}

func (b lateBus) Gather(ctx context.Context, c control.Command) (int, error) {
	return b.s.bus.Gather(ctx, c)
}

// setHub makes the control channel act on node.
func (s *serverAPI) setHub(node *hub.Hub, log *slog.Logger) {
	s.node = node
	subscribed := func(ctx context.Context) error {
		// Revocations stored from now on arrive as commands; those stored
		// before are read now, into memory, for connects while Redis is
		// away: the node is not ready before. Sessions let in before the
		// subscription may hold tokens revoked meanwhile: revocations are
		// in Redis (disconnects are lost).
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := s.revocations.Load(ctx); err != nil {
			return err
		}
		n, err := node.CloseRevoked(ctx)
		if n > 0 {
			log.Info("sessions with revoked tokens closed once the control channel was subscribed", "sessions", n)
		}
		return err
	}
	s.bus = control.NewBus(control.BusConfig{Client: s.client, Logger: log, Subscribed: subscribed}, func(c control.Command) int {
		switch c.Op {
		case control.OpDisconnect:
			n := node.Disconnect(c.App, c.User, time.Time{}, "disconnected by the server API")
			if n > 0 {
				log.Info("sessions disconnected by the server API", "app", c.App, "sessions", n)
			}
			return n
		case control.OpRevoke:
			before := time.Unix(c.Before, 0)
			// Remembered before the sessions are closed, so that one
			// connecting meanwhile is refused (see hub.ServeHTTP).
			s.revocations.Remember(c.App, c.User, before)
			n := node.Disconnect(c.App, c.User, before, "token revoked by the server API")
			if n > 0 {
				log.Info("sessions with revoked tokens closed", "app", c.App, "sessions", n)
			}
			return n
		default:
			log.Warn("control channel: unknown command dropped", "op", c.Op)
			return 0
		}
	})
}

// run runs presence, the control channel and the checks of sessions let
// in unchecked until ctx is done.
func (s *serverAPI) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.bus.Run(ctx) }()
	rechecked := make(chan struct{})
	go func() { defer close(rechecked); s.node.RunRechecks(ctx) }()
	err := s.presence.Run(ctx)
	err = errors.Join(err, <-done)
	<-rechecked
	return err
}

// ready reports whether the node may take clients as far as the server
// API goes: "" if so, else why not.
func (s *serverAPI) ready() string {
	switch {
	case !s.bus.Subscribed():
		return "control channel unavailable"
	case !s.revocations.Loaded():
		return "revocations not loaded"
	}
	return ""
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
