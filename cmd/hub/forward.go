package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/callback/spool"
	"github.com/imhub/imhub/hub/broker"
)

// ForwardConfig is forwarding to apps' own backends (docs/protocol.md#forwarding).
type ForwardConfig struct {
	// Spec is -forward as given: SdkAppid=URL,…
	Spec string
	// Fail is -forward-fail as given: allow or deny.
	Fail string
	// Config is the forwarder's: Targets (Spec parsed, each with its
	// app's callback token), Deny (Fail parsed), Timeout, MaxAge and
	// Concurrency (how many deliveries of one app are in flight at once).
	forward.Config
	// RedisConfig is the Redis queue's: ClaimIdle.
	forward.RedisConfig
}

// defaultForwardConfig is ForwardConfig with the forward package's
// defaults.
func defaultForwardConfig() ForwardConfig {
	return ForwardConfig{Fail: "allow", Config: forward.DefaultConfig(), RedisConfig: forward.DefaultRedisConfig()}
}

func forwardFlags(fs *flag.FlagSet, c *ForwardConfig) {
	fs.StringVar(&c.Spec, "forward", "", "forward each app's accepted callbacks to its own backend: `SdkAppid=URL`,… (http or https)")
	fs.DurationVar(&c.Timeout, "forward-timeout", c.Timeout, "how long a Before* callback waits for the app's backend (the IM waits 2s at most)")
	fs.StringVar(&c.Fail, "forward-fail", c.Fail, "answer to a Before* callback whose backend failed or timed out: allow (OK, as the IM does on a timeout) or deny (ErrorCode 1)")
	fs.DurationVar(&c.MaxAge, "forward-max-age", c.MaxAge, "how long a queued forward is retried before it is kept as a dead letter (see hub forward-dead)")
	fs.IntVar(&c.Concurrency, "forward-concurrency", c.Concurrency, "deliveries to one app's backend in flight at once, per hub: more keeps up with a busier IM, and asks more of the backend")
	fs.DurationVar(&c.ClaimIdle, "forward-claim-idle", c.ClaimIdle, "how long a forward may stay in the hands of one replica before another takes it over (a replica that died); one attempt is given half of it, at most "+c.AttemptTimeout.String())
}

// validateForward parses -forward against the configured apps and checks
// the other -forward-* flags.
func (c *Config) validateForward() error {
	f := &c.Forward
	if f.Timeout <= 0 {
		return errors.New("-forward-timeout must be greater than zero, such as 1.5s")
	}
	if f.MaxAge <= 0 {
		return errors.New("-forward-max-age must be greater than zero, such as 24h")
	}
	if f.Concurrency <= 0 {
		return errors.New("-forward-concurrency must be greater than zero, such as 16")
	}
	if f.ClaimIdle <= 0 {
		return errors.New("-forward-claim-idle must be greater than zero, such as 30s")
	}
	if f.Fail != "allow" && f.Fail != "deny" {
		return fmt.Errorf("-forward-fail %q: want allow or deny", f.Fail)
	}
	f.Deny = f.Fail == "deny"
	tokens := map[string]string{}
	for _, a := range c.Apps {
		tokens[a.ID] = a.Token
	}
	f.Targets = nil
	seen := map[string]bool{}
	n := 0
	for item := range strings.SplitSeq(f.Spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		app, raw, ok := strings.Cut(item, "=")
		if !ok || !isAppID(app) {
			// Not repeated: a URL's query or user info may hold a
			// credential, and a mistyped entry may be anything.
			return fmt.Errorf("-forward: entry %d is not SdkAppid=URL, such as 1400000000=https://backend.example/im", n)
		}
		token, known := tokens[app]
		if !known {
			return fmt.Errorf("-forward: app %q is not in -apps; add it there or drop it here", app)
		}
		if seen[app] {
			return fmt.Errorf("-forward: app %s is listed twice", app)
		}
		seen[app] = true
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-forward: app %s: %q is not an http:// or https:// URL", app, forward.BackendName(raw))
		}
		if u.Fragment != "" {
			return fmt.Errorf("-forward: app %s: the URL has a #fragment, which is never sent", app)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			// Not shown: the query may hold a credential.
			return fmt.Errorf("-forward: app %s: the query of %s does not decode (a %% not followed by two hex digits, or a ';')", app, forward.BackendName(raw))
		}
		// The backend would read the URL's own before the fresh ones the
		// hub signs at each attempt.
		for _, name := range []string{"Sign", "RequestTime", "SdkAppid", "CallbackCommand"} {
			if q.Has(name) {
				return fmt.Errorf("-forward: app %s: the URL's query has %s, which each forwarded callback brings itself", app, name)
			}
		}
		f.Targets = append(f.Targets, forward.Target{App: app, URL: raw, Token: token})
	}
	return nil
}

// forwarding is the running forwarder and what it needs: the store's
// Redis client, the spool in front of it.
type forwarding struct {
	fwd     *forward.Forwarder
	spool   *spool.Spool
	wait    *broker.ReplicaWait // nil without Redis
	closers []func() error
}

// newForwarding sets up forwarding for cfg, or returns nil when -forward
// is empty. With Redis the queue is there, behind a spool of its own in
// the spool directory's "forward" folder; without, it is in memory.
func newForwarding(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*forwarding, error) {
	fc := cfg.Forward
	if len(fc.Targets) == 0 {
		return nil, nil
	}
	fw := &forwarding{}
	var store forward.Store
	var queue forward.Queue
	if cfg.Redis == "" {
		store = forward.NewMemoryStore(0)
		log.Warn("forwarding without -redis: queued forwards are kept in memory and lost when the hub stops")
	} else {
		client, err := broker.NewRedisClient(cfg.Redis, cfg.RedisCA)
		if err != nil {
			return nil, fmt.Errorf("-forward: %w", err)
		}
		fw.closers = append(fw.closers, client.Close)
		fw.wait = broker.NewReplicaWait(client, cfg.RedisWait)
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "imhub_forward_unreplicated_total",
			Help: "Forward entries Redis took that no replica confirmed within -redis-wait-timeout: kept in the spool and added again.",
		}, func() float64 { return float64(fw.wait.Unreplicated()) }))
		rc := fc.RedisConfig
		rc.Wait, rc.Logger = fw.wait, log
		rs := forward.NewRedisStore(client, rc)
		store = rs
		if cfg.SpoolDir != "" {
			// A spool of its own: its entries go to the forward store,
			// not the broker. Its metrics are the forwarder's.
			sp, err := spool.Open(spool.Config{
				Dir: filepath.Join(cfg.SpoolDir, "forward"), MaxBytes: cfg.SpoolMaxBytes, Logger: log,
			}, forward.StoreQueue(rs, time.Second, log))
			if err != nil {
				fw.close()
				return nil, fmt.Errorf("-spool-dir: forward spool: %w", err)
			}
			fw.spool = sp
			fw.closers = append(fw.closers, sp.Close)
			queue = sp
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "imhub_forward_spooled",
				Help: "Forwards waiting in the local spool for Redis, all apps together.",
			}, func() float64 { n, _, _ := sp.Depth(); return float64(n) }))
		}
	}
	c := fc.Config
	// An attempt ends well before another replica may take its forward.
	c.AttemptTimeout = min(c.AttemptTimeout, fc.ClaimIdle/2)
	c.Consumer, c.Logger, c.Registerer = consumerName(cfg.Node), log, reg
	fw.fwd = forward.New(c, store, queue)
	for _, t := range fc.Targets {
		log.Info("forwarding callbacks", "app", t.App, "to", forward.BackendName(t.URL), "timeout", fc.Timeout, "fail", fc.Fail)
	}
	return fw, nil
}

// consumerName names this process in the store's consumer group: the
// node, and a random part, so that a restarted node is a new consumer and
// two nodes with one host name are two.
func consumerName(node string) string {
	id := forward.NewID()[:8]
	if node == "" {
		return id
	}
	return node + "-" + id
}

// handler is the callback handler's Forwarder: nil, not a nil pointer,
// when there is no forwarding.
func (fw *forwarding) handler() callback.Forwarder {
	if fw == nil {
		return nil
	}
	return fw.fwd
}

// run delivers forwards until ctx is done.
func (fw *forwarding) run(ctx context.Context) error {
	if fw == nil {
		return nil
	}
	var g errgroup.Group
	g.Go(func() error { return fw.fwd.Run(ctx) })
	if fw.wait != nil {
		g.Go(func() error { fw.wait.Run(ctx, time.Second); return nil })
	}
	if fw.spool != nil {
		g.Go(func() error { return fw.spool.Run(ctx) })
	}
	return g.Wait()
}

func (fw *forwarding) close() {
	if fw == nil {
		return
	}
	for i := len(fw.closers) - 1; i >= 0; i-- {
		_ = fw.closers[i]()
	}
}
