package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/spool"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/api"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/clientaddr"
	"github.com/imhub/imhub/web"
)

func checkRedisURL(u, caFile string) error {
	if err := broker.CheckRedisURL(u, caFile); err != nil {
		// The broker's error shows the URL, redacted.
		return fmt.Errorf("-redis: %w; want redis://host:6379/0, rediss://host:6380, unix:///path/to/redis.sock, "+
			"redis+cluster://node1:6379?addr=node2:6379 or redis+sentinel://sentinel1:26379?master_name=NAME", err)
	}
	return nil
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisLogger sends go-redis's own messages (dial failures while Redis is
// away) to the hub's log at debug level: the broker already logs the state
// changes that matter.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// newBroker returns the in-process broker, or the Redis one when cfg names a
// Redis server.
func newBroker(cfg Config, log *slog.Logger) (broker.Broker, error) {
	bc := broker.Config{DedupeWindow: cfg.DedupeWindow, HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL, HistoryHold: cfg.HistoryHold}
	if cfg.Redis == "" {
		return broker.NewMemory(bc), nil
	}
	redis.SetLogger(redisLogger{log})
	return broker.NewRedis(broker.RedisConfig{Config: bc, URL: cfg.Redis, CAFile: cfg.RedisCA, Wait: cfg.RedisWait, Logger: log})
}

// run serves until ctx is done, then shuts down gracefully: readiness fails
// at once, in-flight requests finish (up to cfg.Drain), the broker closes.
func run(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger) error {
	// A server goroutine that fails stops the whole process, gracefully.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	b, err := newBroker(cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	if rb, ok := b.(*broker.Redis); ok {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "imhub_broker_unreplicated_total",
			Help: "Publications Redis took that no replica confirmed within -redis-wait-timeout: kept in the spool (or answered 503) and published again.",
		}, func() float64 { return float64(rb.Unreplicated()) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imhub_broker_up",
		Help: "1 when the broker can publish, else 0.",
	}, func() float64 {
		if b.Ready() == nil {
			return 1
		}
		return 0
	}))

	// The JWKS refresh, if any, lives as long as the process serves.
	authCtx, stopAuth := context.WithCancel(context.Background())
	defer stopAuth()
	verifier, devSecret, err := newVerifier(authCtx, cfg, log)
	if err != nil {
		return err
	}
	var demoKey string // the demo API key, when -dev makes one
	if cfg.Dev && len(cfg.API.Keys) == 0 {
		demoKey = devAPIKey(devSecret)
		cfg.API.Keys = []api.Key{{App: cfg.Apps[0].ID, Key: demoKey}}
	}
	sapi, err := newServerAPI(cfg, log, b, reg)
	if err != nil {
		return err
	}
	defer sapi.close(log)
	im, err := newIMAccess(cfg, log, reg)
	if err != nil {
		return err
	}
	defer im.close()
	node := hub.New(hub.Config{
		Node:           cfg.Node,
		MaxConns:       cfg.MaxConns,
		MaxConnsPerIP:  cfg.MaxConnsPerIP,
		MaxSubs:        cfg.MaxSubs,
		MaxFrame:       cfg.MaxFrame,
		SendQueue:      cfg.SendQueue,
		SendQueueBytes: cfg.SendQueueBytes,
		ClientRate:     cfg.ClientRate,
		ClientBurst:    cfg.ClientBurst,
		PingInterval:   cfg.PingInterval,
		WriteTimeout:   cfg.WriteTimeout,
		AllowedOrigins: allowedOrigins(cfg),
		Compression:    cfg.Compression,
		Presence:       sapi.presence,
		Revocations:    sapi.revocations,
		UserSigs:       im.userSigs,
		Membership:     im.membership(),
		// The other choice, "open", is checked by validateAPI.
		RefuseUnchecked: cfg.API.RevocationCheck == "closed",
		Logger:          log,
		Metrics:         hub.NewMetrics(reg),
	}, b, verifier)
	sapi.setHub(node, log)

	next := im.learning(b, log) // b, telling membership first
	var publisher callback.Publisher = next
	var sp *spool.Spool
	if cfg.SpoolDir != "" {
		sp, err = spool.Open(spool.Config{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, Logger: log, Registerer: reg}, next)
		if err != nil {
			return fmt.Errorf("-spool-dir %s: %w: give it a writable directory, or off to run without a spool", cfg.SpoolDir, err)
		}
		defer sp.Close()
		publisher = sp
	}

	fwd, err := newForwarding(cfg, log, reg)
	if err != nil {
		return err
	}
	defer fwd.close()

	var draining atomic.Bool
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imhub_ready",
		Help: "1 while /readyz answers 200 (the broker is reachable, the control channel subscribed, the revocations loaded and the hub is not draining), else 0.",
	}, func() float64 {
		if !draining.Load() && b.Ready() == nil && sapi.ready() == "" {
			return 1
		}
		return 0
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /ws", node)
	if cfg.Dev {
		mux.Handle("GET /dev/token", devCORS(devTokenHandler(cfg, devSecret)))
	}
	cbMetrics := callback.NewMetrics(reg)
	mux.Handle("/im/callback", callback.Allow(callback.AllowConfig{
		Allowed: cfg.CallbackAllow,
		Logger:  log,
		Metrics: cbMetrics,
	}, callback.NewHandler(callback.Config{
		Apps:           cfg.Apps,
		MaxBody:        cfg.MaxBody,
		PublishTimeout: publishTimeout,
		Logger:         log,
		Metrics:        cbMetrics,
		Forward:        fwd.handler(),
		Membership:     im.callbacks(),
	}, publisher)))
	mux.Handle("/api/", sapi.handler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(b, sapi.ready, &draining, log))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", web.Handler())

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	var debugLn net.Listener
	if cfg.DebugAddr != "" {
		if debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			ln.Close()
			return fmt.Errorf("-debug-addr: listen on %s: %w", cfg.DebugAddr, err)
		}
	}
	srv, err := newServer(cfg, mux, log)
	if err != nil {
		ln.Close()
		if debugLn != nil {
			debugLn.Close()
		}
		return err
	}
	addr := ln.Addr().String()
	warnTokenless(cfg, log)
	log.Info("listening", "addr", addr, "broker", brokerName(cfg), "apps", len(cfg.Apps), "dev", cfg.Dev, "tls", srv.TLSConfig != nil)
	if cfg.Dev {
		printBanner(stdout, addr, cfg, demoKey)
	}

	// The broker outlives the HTTP server: in-flight callbacks still
	// publish while the server drains.
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	var g errgroup.Group
	g.Go(func() error {
		defer stop()
		return b.Run(brokerCtx, node)
	})
	if sp != nil {
		g.Go(func() error { return sp.Run(brokerCtx) })
	}
	g.Go(func() error { return fwd.run(brokerCtx) })
	g.Go(func() error { return sapi.run(brokerCtx) })
	g.Go(func() error {
		serve := srv.Serve
		if srv.TLSConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			stop()
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		reclaimMemory(ctx, node.Sessions, time.Second, func(why reclaimWhy, from, now int) {
			debug.FreeOSMemory()
			if why == reclaimRise {
				log.Info("memory left by connecting sessions returned to the system", "sessions_before", from, "sessions", now)
				return
			}
			log.Info("memory of closed sessions returned to the system", "peak_sessions", from, "sessions", now)
		})
		return nil
	})
	var debugSrv *http.Server
	if debugLn != nil {
		debugSrv = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := debugSrv.Serve(debugLn); !errors.Is(err, http.ErrServerClosed) {
				stop()
				return fmt.Errorf("serve pprof: %w", err)
			}
			return nil
		})
	}

	<-ctx.Done()
	// Readiness fails at once and new WebSockets are turned away with
	// 1012 while sessions are closed over the drain period; callbacks are
	// still served meanwhile, so a load balancer that has not yet noticed
	// loses none. Then the listener closes and in-flight requests finish.
	draining.Store(true)
	log.Info("shutting down", "drain", cfg.Drain, "sessions", node.Sessions())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Drain+5*time.Second)
	defer cancel()
	node.Drain(sctx, cfg.Drain)
	shutdownErr := srv.Shutdown(sctx)
	if debugSrv != nil {
		_ = debugSrv.Close()
	}
	stopBroker()
	if err := g.Wait(); err != nil {
		return err
	}
	if shutdownErr != nil {
		return fmt.Errorf("drain http: %w", shutdownErr)
	}
	log.Info("stopped")
	return nil
}

// publishTimeout bounds a callback's publish, the longest a handler of
// the server takes before it answers.
const publishTimeout = 5 * time.Second

// maxHeaderBytes bounds a request's line and headers. The largest that
// are expected, a WebSocket upgrade with a JWT in the query or
// Authorization header, take a few KiB.
const maxHeaderBytes = 64 << 10

// newServer returns the HTTP server of handler, serving TLS when cfg has a
// certificate.
//
// ReadTimeout bounds the arrival of every request, headers and body, on
// the server rather than in each handler: it also covers the bodies no
// handler reads, which net/http still reads after the handler to reuse
// the connection (a callback refused for its signature, a POST to any
// other path), and handlers added later. A WebSocket leaves it behind when
// it is upgraded: the hub's hijacker clears the read deadline.
//
// WriteTimeout bounds the writing of an answer, from the end of its
// request's headers: room for the body, the handler and the write itself.
// Without it a client that reads no answers (one that pipelines requests
// for the dashboard's files, say) holds its connection and goroutine for
// ever. A WebSocket sets a deadline of its own before each write.
func newServer(cfg Config, handler http.Handler, log *slog.Logger) (*http.Server, error) {
	resolver := &clientaddr.Resolver{Trusted: cfg.TrustedProxies}
	srv := &http.Server{
		Handler:           resolver.Handler(handler),
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.ReadTimeout + publishTimeout + cfg.WriteTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert == "" {
		return srv, nil
	}
	certs, err := newCertFiles(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
	// HTTP/1.1 only, as without TLS: the WebSocket is an HTTP/1.1
	// upgrade, and a browser that found HTTP/2 here could try to open it
	// over HTTP/2 (RFC 8441), which the hub does not accept.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	return srv, nil
}

// warnTokenless says, once per app, that an app without a callback token
// takes callbacks from anyone who knows the URL.
func warnTokenless(cfg Config, log *slog.Logger) {
	for _, a := range cfg.Apps {
		if a.Token == "" {
			log.Warn("app has no callback token: anyone who can reach /im/callback can post its events; set the console's token with -apps SdkAppid:token",
				"app", a.ID)
		}
	}
}

func brokerName(cfg Config) string {
	if cfg.Redis == "" {
		return "memory"
	}
	return "redis"
}

// pprofMux serves the profiles, but not /debug/pprof/cmdline: the command
// line holds whatever secrets were given as flags. pprof.Index would serve
// that path as an unknown profile; it is refused here by name so that no
// later version of Index can serve it.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not served: the command line may hold secrets", http.StatusNotFound)
	})
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// printBanner tells a newcomer running -dev where everything is, how to
// watch events arrive, and how to send a first callback. It prints the
// demo API key, never one of -api-keys: those are real.
func printBanner(w io.Writer, addr string, cfg Config, demoKey string) {
	app := cfg.Apps[0].ID
	base := "http://" + addr
	ws := "ws://" + addr
	if cfg.TLSCert != "" {
		base, ws = "https://"+addr, "wss://"+addr
	}
	fmt.Fprintf(w, `
imhub is running in demo mode.
  dashboard   %[1]s/
  client      %[1]s/sdk/imhub.js   (example: %[1]s/examples/chat-notify.html)
  websocket   %[3]s/ws   (token: %[1]s/dev/token?sub=jared)
  callbacks   %[1]s/im/callback?SdkAppid=%[2]s&CallbackCommand=…
  health      %[1]s/healthz  %[1]s/readyz  %[1]s/metrics
  server API  %[1]s/api/   (Authorization: apikey %[4]s)

Watch a group from a second terminal:

  go run ./cmd/hubcat -dev %[1]s -subscribe 'group:@TGS#2J4SZEAEL'

Post a sample group message callback:

  curl -sS -X POST '%[1]s/im/callback?SdkAppid=%[2]s&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web' \
    -H 'Content-Type: application/json' \
    -d '{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"jared","Operator_Account":"admin","Random":123456,"MsgSeq":123,"MsgTime":1490686222,"OnlineOnlyFlag":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],"CloudCustomData":"your cloud custom data"}'

`, base, app, ws, bannerAPIKey(cfg, app, demoKey))
}

// bannerAPIKey is what the -dev banner shows for app's API key: the demo
// key, or which key of -api-keys to use.
func bannerAPIKey(cfg Config, app, demoKey string) string {
	if demoKey != "" {
		return demoKey
	}
	for _, k := range cfg.API.Keys {
		if k.App == app {
			return "<the key of app " + app + " in -api-keys>"
		}
	}
	return "(none: -api-keys has no key for this app)"
}
