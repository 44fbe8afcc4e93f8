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
	bc := cfg.brokerConfig
	if cfg.Redis == "" {
		return broker.NewMemory(bc), nil
	}
	redis.SetLogger(redisLogger{log})
	return broker.NewRedis(broker.RedisConfig{Config: bc, URL: cfg.Redis, CAFile: cfg.RedisCA, Wait: cfg.RedisWait, Logger: log})
}

// run serves until ctx is done, then shuts down gracefully: readiness fails
// at once, in-flight requests finish (up to cfg.Drain), the broker closes.
func run(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger) error {
	p, err := wire(cfg, log)
	if err != nil {
		return err
	}
	defer p.close()
	return p.serve(ctx, stdout)
}

// parts are the hub's parts, built from a Config by wire, run by serve and
// drained by shutdown.
type parts struct {
	cfg Config // as wire completed it: in -dev mode, the demo API key
	log *slog.Logger
	reg *prometheus.Registry

	broker  broker.Broker
	node    *hub.Hub
	sapi    *serverAPI
	im      *imAccess
	devIM   *devIM       // the IM's stand-in; nil without -dev-im
	spool   *spool.Spool // nil without a spool
	fwd     *forwarding  // nil without forwarding
	http    *http.Server
	debug   *http.Server // pprof; nil without -debug-addr
	demoKey string       // the demo API key, when -dev makes one

	// draining is set once shutdown begins: /readyz fails from then on.
	draining atomic.Bool
	// closers undo wire, the last first.
	closers []func()
}

// wire builds the hub's parts from cfg, each given what it needs of those
// before it: the broker, the token verifier, the server API (presence,
// revocations, the control channel), the hub, the spool in front of the
// broker, forwarding, and the HTTP servers over them all. Nothing runs
// yet but a JWKS refresh; serve starts the rest. On an error, what was
// built is closed again.
func wire(cfg Config, log *slog.Logger) (_ *parts, err error) {
	p := &parts{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.broker, err = newBroker(cfg, log); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { _ = p.broker.Close() })
	p.registerBrokerMetrics()

	// The JWKS refresh, if any, lives as long as the process serves.
	authCtx, stopAuth := context.WithCancel(context.Background())
	p.closers = append(p.closers, stopAuth)
	verifier, devSecret, err := newVerifier(authCtx, cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.Dev && len(cfg.API.Keys) == 0 {
		p.demoKey = devAPIKey(devSecret)
		p.cfg.API.Keys = []api.Key{{App: cfg.Apps[0].ID, Key: p.demoKey}}
	}
	if p.sapi, err = newServerAPI(p.cfg, log, p.broker, p.reg); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { p.sapi.close(log) })
	if cfg.IM.StandIn {
		if p.devIM, err = newDevIM(p.cfg, devSecret, log); err != nil {
			return nil, err
		}
		p.closers = append(p.closers, p.devIM.close)
		p.devIM.configure(&p.cfg)
	}
	if p.im, err = newIMAccess(p.cfg, log, p.reg); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.im.close)
	if p.devIM != nil {
		p.im.tellFirst(p.devIM)
	}
	p.node = hub.New(p.hubConfig(), p.broker, verifier)
	p.sapi.setHub(p.node, log)

	// Callbacks tell membership of what they change before they publish.
	next := p.im.learning(p.broker, log)
	var publisher callback.Publisher = next
	if cfg.SpoolDir != "" {
		p.spool, err = spool.Open(spool.Config{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, Logger: log, Registerer: p.reg}, next)
		if err != nil {
			return nil, fmt.Errorf("-spool-dir %s: %w: give it a writable directory, or off to run without a spool", cfg.SpoolDir, err)
		}
		p.closers = append(p.closers, func() { _ = p.spool.Close() })
		publisher = p.spool
	}
	if p.fwd, err = newForwarding(p.cfg, log, p.reg); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.fwd.close)

	p.registerReady()
	if p.http, err = newServer(p.cfg, p.routes(devSecret, publisher), log); err != nil {
		return nil, err
	}
	if cfg.DebugAddr != "" {
		p.debug = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	}
	return p, nil
}

// hubConfig is the hub's Config as the flags set it, with the server
// API's presence and revocations, the logger and the metrics.
func (p *parts) hubConfig() hub.Config {
	hc := p.cfg.Config
	hc.AllowedOrigins = allowedOrigins(p.cfg)
	hc.ProxiesTrusted = len(p.cfg.TrustedProxies) > 0
	hc.Presence, hc.Revocations = p.sapi.presence, p.sapi.revocations
	hc.UserSigs, hc.Membership = p.im.userSigs, p.im.membership()
	// The other choice, "open", is checked by validateAPI.
	hc.RefuseUnchecked = p.cfg.API.RevocationCheck == "closed"
	hc.Logger, hc.Metrics = p.log, hub.NewMetrics(p.reg)
	return hc
}

// registerBrokerMetrics registers what the broker tells of itself.
func (p *parts) registerBrokerMetrics() {
	if rb, ok := p.broker.(*broker.Redis); ok {
		p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "imhub_broker_unreplicated_total",
			Help: "Publications Redis took that no replica confirmed within -redis-wait-timeout: kept in the spool (or answered 503) and published again.",
		}, func() float64 { return float64(rb.Unreplicated()) }))
	}
	p.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imhub_broker_up",
		Help: "1 when the broker can publish, else 0.",
	}, func() float64 {
		if p.broker.Ready() == nil {
			return 1
		}
		return 0
	}))
}

// ready is what /readyz answers 200 to: the broker reachable, the server
// API ready and the hub not draining.
func (p *parts) ready() bool {
	return !p.draining.Load() && p.broker.Ready() == nil && p.sapi.ready() == ""
}

// registerReady registers the metric of /readyz's answer.
func (p *parts) registerReady() {
	p.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imhub_ready",
		Help: "1 while /readyz answers 200 (the broker is reachable, the control channel subscribed, the revocations loaded and the hub is not draining), else 0.",
	}, func() float64 {
		if p.ready() {
			return 1
		}
		return 0
	}))
}

// routes is the hub's HTTP handler: the WebSocket, the IM's callbacks
// into publisher, the server API, health, metrics and the dashboard, and
// in -dev mode /dev/token, signed with devSecret.
func (p *parts) routes(devSecret []byte, publisher callback.Publisher) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", p.node)
	// Any method: the stream answers one that is not GET itself.
	mux.HandleFunc("/sse", p.node.ServeSSE)
	if p.cfg.Dev {
		mux.Handle("GET /dev/token", devCORS(devTokenHandler(p.cfg, devSecret)))
	}
	if p.devIM != nil {
		mux.Handle("GET /dev/usersig", devCORS(p.devIM.userSigHandler()))
		mux.Handle("/dev/im", devCORS(p.devIM.controlHandler()))
	}
	cbMetrics := callback.NewMetrics(p.reg)
	cc := p.cfg.callbackConfig
	cc.Logger, cc.Metrics, cc.Forward = p.log, cbMetrics, p.fwd.handler()
	mux.Handle("/im/callback", callback.Allow(callback.AllowConfig{
		Allowed: p.cfg.CallbackAllow,
		Logger:  p.log,
		Metrics: cbMetrics,
	}, callback.NewHandler(cc, publisher)))
	mux.Handle("/api/", p.sapi.handler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(p.broker, p.sapi.ready, &p.draining, p.log))
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
	mux.Handle("/", web.Handler())
	return mux
}

// close undoes wire, the last part first. serve must have returned.
func (p *parts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// serve listens, runs every part until ctx is done or one of them fails,
// then shuts down. It owns each goroutine it starts, all in one group
// that it waits for before it returns: the HTTP servers end with
// shutdown; the broker, the spool, forwarding and the server API with
// partsCtx, cancelled once the HTTP server has drained, as a callback
// still being answered publishes; the memory reclaimer with ctx.
func (p *parts) serve(ctx context.Context, stdout io.Writer) error {
	ln, debugLn, err := p.listen()
	if err != nil {
		return err
	}
	p.announce(ln.Addr().String(), stdout)

	// A part that fails stops the whole process, gracefully.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	partsCtx, stopParts := context.WithCancel(context.Background())
	defer stopParts()
	var g errgroup.Group
	g.Go(func() error {
		defer stop()
		return p.broker.Run(partsCtx, p.node)
	})
	if p.spool != nil {
		g.Go(func() error { return p.spool.Run(partsCtx) })
	}
	g.Go(func() error { return p.fwd.run(partsCtx) })
	g.Go(func() error { return p.sapi.run(partsCtx) })
	g.Go(serveHTTP(p.http, ln, "http", stop))
	if p.devIM != nil {
		g.Go(serveHTTP(p.devIM.http, p.devIM.ln, "the IM stand-in", stop))
	}
	if p.debug != nil {
		g.Go(serveHTTP(p.debug, debugLn, "pprof", stop))
	}
	g.Go(func() error {
		reclaimMemory(ctx, p.node.Sessions, time.Second, func(why reclaimWhy, from, now int) {
			debug.FreeOSMemory()
			if why == reclaimRise {
				p.log.Info("memory left by connecting sessions returned to the system", "sessions_before", from, "sessions", now)
				return
			}
			p.log.Info("memory of closed sessions returned to the system", "peak_sessions", from, "sessions", now)
		})
		return nil
	})

	<-ctx.Done()
	shutdownErr := p.shutdown(p.drainPeriod(ctx))
	stopParts()
	if err := g.Wait(); err != nil {
		return err
	}
	if shutdownErr != nil {
		return fmt.Errorf("drain http: %w", shutdownErr)
	}
	p.log.Info("stopped")
	return nil
}

// listen opens the listeners of -addr and, when set, -debug-addr.
func (p *parts) listen() (ln, debugLn net.Listener, err error) {
	if ln, err = net.Listen("tcp", p.cfg.Addr); err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", p.cfg.Addr, err)
	}
	if p.debug != nil {
		if debugLn, err = net.Listen("tcp", p.cfg.DebugAddr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("-debug-addr: listen on %s: %w", p.cfg.DebugAddr, err)
		}
	}
	return ln, debugLn, nil
}

// announce logs that the hub listens on addr, and in -dev mode prints
// the banner to stdout.
func (p *parts) announce(addr string, stdout io.Writer) {
	warnTokenless(p.cfg, p.log)
	p.log.Info("listening", "addr", addr, "broker", brokerName(p.cfg), "apps", len(p.cfg.Apps), "dev", p.cfg.Dev, "tls", p.http.TLSConfig != nil)
	if p.cfg.Dev {
		printBanner(stdout, addr, p.cfg, p.demoKey, p.devIM)
	}
}

// serveHTTP is a goroutine of serve: it serves srv on ln until shutdown
// closes it, and stops the process (stop) if srv ends otherwise.
func serveHTTP(srv *http.Server, ln net.Listener, what string, stop func()) func() error {
	return func() error {
		serve := srv.Serve
		if srv.TLSConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			stop()
			return fmt.Errorf("serve %s: %w", what, err)
		}
		return nil
	}
}

// drainPeriod is how long shutdown spreads the closing of sessions over
// once ctx, serve's, is done: -drain, so that a replica's clients do not
// all reconnect elsewhere at once; but nothing for Ctrl-C in -dev mode,
// where the one at the keyboard wants the demo stopped now.
func (p *parts) drainPeriod(ctx context.Context) time.Duration {
	if p.cfg.Dev && interrupted(ctx) {
		return 0
	}
	return p.cfg.Drain
}

// shutdown drains the node. Readiness fails at once and new WebSockets
// are turned away with 1012 while sessions are closed, with 1012, over
// drain; callbacks are still served meanwhile, so a load
// balancer that has not yet noticed loses none. Then the listener closes
// and in-flight requests finish, within 5s more; the pprof server closes
// at once. It returns the HTTP server's error. The parts behind the
// server, which its last requests still use, are serve's to stop after.
func (p *parts) shutdown(drain time.Duration) error {
	p.draining.Store(true)
	p.log.Info("shutting down", "drain", drain, "sessions", p.node.Sessions())
	ctx, cancel := context.WithTimeout(context.Background(), drain+5*time.Second)
	defer cancel()
	p.node.Drain(ctx, drain)
	err := p.http.Shutdown(ctx)
	if p.debug != nil {
		_ = p.debug.Close()
	}
	if p.devIM != nil {
		// After the hub's requests, which may still be asking it.
		_ = p.devIM.http.Close()
	}
	return err
}

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
// request's headers: room for the body, the handler (a callback's
// publish, the longest a handler takes before it answers) and the write
// itself.
// Without it a client that reads no answers (one that pipelines requests
// for the dashboard's files, say) holds its connection and goroutine for
// ever. A WebSocket sets a deadline of its own before each write.
func newServer(cfg Config, handler http.Handler, log *slog.Logger) (*http.Server, error) {
	resolver := &clientaddr.Resolver{Trusted: cfg.TrustedProxies}
	srv := &http.Server{
		Handler:           resolver.Handler(handler),
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.ReadTimeout + cfg.PublishTimeout + cfg.WriteTimeout,
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
//
// With -dev-im it also says where to get a UserSig, and prints the demo
// IM key and the stand-in's address.
func printBanner(w io.Writer, addr string, cfg Config, demoKey string, im *devIM) {
	app := cfg.Apps[0].ID
	base := "http://" + addr
	ws := "ws://" + addr
	if cfg.TLSCert != "" {
		base, ws = "https://"+addr, "wss://"+addr
	}
	imLines := ""
	if im != nil {
		imLines = im.bannerLines(base)
	}
	fmt.Fprintf(w, `
imhub is running in demo mode.
  dashboard   %[1]s/
  client      %[1]s/sdk/imhub.js   (example: %[1]s/examples/chat-notify.html)
  websocket   %[3]s/ws   (token: %[1]s/dev/token?sub=jared)
  callbacks   %[1]s/im/callback?SdkAppid=%[2]s&CallbackCommand=…
  health      %[1]s/healthz  %[1]s/readyz  %[1]s/metrics
  server API  %[1]s/api/   (Authorization: apikey %[4]s)
%[5]s
Watch a group from a second terminal:

  go run ./cmd/hubcat -dev %[1]s -subscribe 'group:@TGS#2J4SZEAEL'

Post a sample group message callback:

  curl -sS -X POST '%[1]s/im/callback?SdkAppid=%[2]s&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web' \
    -H 'Content-Type: application/json' \
    -d '{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"jared","Operator_Account":"admin","Random":123456,"MsgSeq":123,"MsgTime":1490686222,"OnlineOnlyFlag":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],"CloudCustomData":"your cloud custom data"}'

`, base, app, ws, bannerAPIKey(cfg, app, demoKey), imLines)
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
