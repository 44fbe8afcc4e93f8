package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/spool"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/clientaddr"
)

// DemoApp is the SdkAppid -dev mode accepts when -apps is empty.
const DemoApp = "1400000000"

// Config is everything the hub is configured with. Its zero value is not
// useful: parseConfig fills in the defaults and validates.
//
// The settings a part takes as they are come in that part's own config,
// embedded with its package's defaults: hub.Config the sessions'
// (-max-conns*, -max-subs, -max-frame, -send-queue*, -client-*,
// -ping-interval, -write-timeout, -node, -allowed-origins, -compression),
// broker.Config the history's (-dedupe-window, -history-*) and
// callback.Config the callbacks' (-apps, -max-body). wire fills in what no
// flag sets there: the hub's presence, revocations, logger and metrics,
// the callback handler's. The fields of Config itself are the binary's
// alone, or are given to parts under other names.
type Config struct {
	hub.Config
	brokerConfig
	// callbackConfig's Forward, the callback handler's forwarder, is set
	// by wire; Config.Forward, which hides it, is -forward and its flags.
	callbackConfig

	Addr         string
	Redis        string
	RedisCA      string
	RedisWait    broker.WaitConfig
	JWTSecret    string
	JWTPublicKey string
	JWTJWKSURL   string
	JWTMaxTTL    time.Duration
	JWTAudience  string
	JWTIssuer    string
	Dev          bool
	LogLevel     slog.Level
	LogFormat    string
	// SpoolDir and SpoolMaxBytes are the callbacks' spool and, in its
	// "forward" folder, the forwards' (forward.go).
	SpoolDir      string // resolved: empty = no spool (-spool-dir off)
	SpoolMaxBytes int64
	Drain         time.Duration
	DebugAddr     string

	// The network edge: how long a request may take to arrive, TLS, and
	// who may connect and call back.
	ReadTimeout    time.Duration
	TLSCert        string
	TLSKey         string
	CallbackAllow  clientaddr.Prefixes
	TrustedProxies clientaddr.Prefixes

	// Forward is forwarding to apps' own backends (forward.go).
	Forward ForwardConfig
	// API is the server API and presence (api.go).
	API APIConfig
	// IM is IM-native access: UserSigs and the IM's membership (imaccess.go).
	IM IMConfig
}

// brokerConfig and callbackConfig are broker.Config and callback.Config
// under names of their own, so that Config can embed them beside
// hub.Config.
type (
	brokerConfig   = broker.Config
	callbackConfig = callback.Config
)

// defaultConfig is the Config that the flags start from: each part's
// package defaults; the binary's own are in the flag definitions.
func defaultConfig() Config {
	return Config{
		Config:         hub.DefaultConfig(),
		brokerConfig:   broker.DefaultConfig(),
		callbackConfig: callback.DefaultConfig(),
		RedisWait:      broker.DefaultWaitConfig(),
		SpoolMaxBytes:  spool.DefaultConfig().MaxBytes,
		Forward:        defaultForwardConfig(),
		API:            defaultAPIConfig(),
	}
}

// envName is the environment variable of a flag: -redis is HUB_REDIS.
func envName(flagName string) string {
	return "HUB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags from args and, for flags not given there, from
// HUB_* variables in env. It returns flag.ErrHelp after printing usage to
// out when asked for help.
func parseConfig(args []string, env func(string) string, out io.Writer) (Config, error) {
	c := defaultConfig()
	var apps, level, origins string
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen `address`")
	fs.StringVar(&c.Redis, "redis", "", "Redis `URL`: redis://, rediss://, unix:// (one server), redis+cluster:// (Redis Cluster, sharded pub/sub), redis+sentinel://…?master_name= (Sentinel); empty = in-process broker, one node")
	fs.StringVar(&c.RedisCA, "redis-ca", "", "PEM `file` of the CAs that a rediss:// server's certificate is checked against; empty = the system's")
	fs.StringVar(&apps, "apps", "", "the apps this hub accepts, comma-separated: `SdkAppid[:callbackToken]`,…")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 `secret` for client tokens, at least 32 bytes (openssl rand -base64 32)")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", "", "PEM `file` with the RS256 / ES256 / EdDSA public key for client tokens")
	fs.StringVar(&c.JWTJWKSURL, "jwt-jwks-url", "", "JWKS `URL` with the public keys for client tokens: https (http on a loopback host only)")
	fs.DurationVar(&c.JWTMaxTTL, "jwt-max-ttl", 24*time.Hour, "longest lifetime a client token may claim, exp - iat (exp - now without iat); 0 = no limit")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "when set, a client token's aud must include this `value`")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "when set, a client token's iss must be this `value`")
	fs.BoolVar(&c.Dev, "dev", false, "demo mode: serve /dev/token, accept the demo app; refused unless -addr is loopback. "+
		"/dev/token signs with a demo key, derived from -jwt-secret when one is given, that only -dev hubs accept: "+
		"its tokens are refused by hubs without -dev, so a demo token is never a production one")
	fs.StringVar(&level, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log `format`: text or json")
	fs.Var((*size)(&c.MaxBody), "max-body", "largest callback or server API body `size` (413 beyond)")
	fs.DurationVar(&c.DedupeWindow, "dedupe-window", c.DedupeWindow, "how long a repeated IM event is recognised; 0 turns deduplication off")
	fs.IntVar(&c.HistorySize, "history-size", c.HistorySize, "events kept per channel for since replay; 0 keeps none")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", c.HistoryTTL, "how long a channel's history is kept")
	fs.DurationVar(&c.HistoryHold, "history-hold", c.HistoryHold, "a busy channel keeps events beyond -history-size until this old (up to 10 times -history-size), so a node or client away for less loses none; 0 keeps -history-size alone")
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "local spool `directory` for callbacks while Redis is down, created 0700 if missing, one hub's alone; off = no spool (503 instead); without -redis there is none, as nothing goes down (default $XDG_STATE_HOME/imhub/spool, else ~/.local/state/imhub/spool)")
	fs.Var((*size)(&c.SpoolMaxBytes), "spool-max-bytes", "largest spool `size`")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "WebSocket connections per node (4009 beyond)")
	fs.IntVar(&c.MaxSubs, "max-subs", c.MaxSubs, "subscriptions per connection")
	fs.Var((*size)(&c.MaxFrame), "max-frame", "largest client frame `size` (1009 beyond)")
	fs.IntVar(&c.SendQueue, "send-queue", c.SendQueue, "frames queued per connection before it is closed with 4008")
	fs.Var((*size)(&c.SendQueueBytes), "send-queue-bytes", "bytes queued per connection, live frames and replays, before it is closed with 4008 (a replay already begun is sent whole)")
	fs.Float64Var(&c.ClientRate, "client-rate", c.ClientRate, "frames a second a connection may send on average (rate_limited beyond, 1008 if it goes on)")
	fs.IntVar(&c.ClientBurst, "client-burst", c.ClientBurst, "frames a connection may send at once; at least -max-subs, so that a client resubscribing on connect is not refused (default -max-subs + 64)")
	fs.DurationVar(&c.PingInterval, "ping-interval", c.PingInterval, "keep-alive ping interval")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "deadline of each WebSocket or SSE write")
	fs.DurationVar(&c.MaxLag, "max-lag", c.MaxLag, "close a connection with 4008 when a frame comes for it while the oldest one waiting was queued longer ago than this (a client that cannot keep up with a busy channel); 0: no such bound")
	fs.DurationVar(&c.WriteDelay, "write-delay", c.WriteDelay, "wait this long after the first frame of each backlog before writing, so that frames queued meanwhile leave in one write; 0: write at once")
	fs.StringVar(&origins, "allowed-origins", "", "browser Origin `patterns` allowed besides the hub's own host, comma-separated")
	fs.BoolVar(&c.Compression, "compression", c.Compression, "permessage-deflate for clients that offer it")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "on SIGTERM: fail readiness, then close sessions with 1012 over this period")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "loopback `address` for pprof")
	fs.StringVar(&c.Node, "node", c.Node, "this node's `name` in connected frames and logs (default: the host name)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 30*time.Second, "longest time to read a request, headers and body (WebSockets are exempt once upgraded)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate `file` (chain included): serve HTTPS and WSS; reread when it changes on disk")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.Var((*prefixes)(&c.CallbackAllow), "callback-allow", "`CIDRs` the IM's callbacks may come from, comma-separated (403 otherwise); empty = any")
	fs.Var((*prefixes)(&c.TrustedProxies), "trusted-proxies", "`CIDRs` of load balancers whose X-Forwarded-For is believed, comma-separated")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "WebSocket connections per client address, an IPv6 /64 counting as one (4009 beyond); behind a load balancer set -trusted-proxies, or every client counts as the balancer's address")
	waitFlags(fs, &c.RedisWait)
	forwardFlags(fs, &c.Forward)
	apiFlags(fs, &c.API)
	imFlags(fs, &c.IM)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: hub [flags]\n\n"+
			"imhub turns Tencent Cloud Chat (IM) callbacks into live WebSocket streams.\n"+
			"Every flag can also be set by an environment variable: -redis by HUB_REDIS,\n"+
			"-jwt-secret by HUB_JWT_SECRET, and so on; a flag on the command line wins.\n"+
			"Sizes take KiB, MiB or GiB; durations use Go syntax (10s, 5m).\n"+
			"Forwards kept as dead letters: hub forward-dead list|replay (hub forward-dead -h).\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) { f.Usage += " [$" + envName(f.Name) + "]" })
		fs.PrintDefaults()
	}

	protectSecrets(fs)
	// Environment first, so the command line overrides it.
	if err := setFromEnv(fs, env); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, unexpectedArg(fs, args)
	}
	if origins != "" {
		for o := range strings.SplitSeq(origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	var err error
	if c.Apps, err = parseApps(apps); err != nil {
		return c, err
	}
	if c.SpoolDir, err = resolveSpoolDir(c.SpoolDir, c.Redis, env); err != nil {
		return c, err
	}
	return c, c.validate()
}

// unexpectedArg is the error for the first argument after the flags. It
// is repeated unless it follows a secret flag's value: a secret with a
// space in it, unquoted, is cut there.
func unexpectedArg(fs *flag.FlagSet, args []string) error {
	name := lastFlag(fs, args[:len(args)-fs.NArg()])
	if _, secret := secretFlags[name]; secret {
		return fmt.Errorf("unexpected argument after -%s's value (not shown: it may be part of a secret); every setting is a flag, and a value with spaces needs quotes", name)
	}
	return fmt.Errorf("unexpected argument %q: every setting is a flag (see hub -h)", fs.Arg(0))
}

// lastFlag is the name of the last flag in parsed, the arguments fs took
// as flags. It walks them as fs did, so that a value which itself starts
// with '-' (a secret may) is not taken for a flag.
func lastFlag(fs *flag.FlagSet, parsed []string) string {
	var name string
	for i := 0; i < len(parsed); i++ {
		if parsed[i] == "--" {
			break
		}
		var inline bool
		name, _, inline = strings.Cut(strings.TrimLeft(parsed[i], "-"), "=")
		if !inline && !isBoolFlag(fs, name) {
			i++ // its value
		}
	}
	return name
}

// isBoolFlag reports whether fs's flag name takes no value of its own.
func isBoolFlag(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// resolveSpoolDir turns the -spool-dir value into the directory to use, ""
// for none. With Redis the spool is on unless turned off, so that a hub
// that answered a callback OK does not lose it when the broker is down:
// the IM does not retry an after-event callback, whatever the hub answers.
// Without Redis there is none: the in-process broker does not go away, so
// a spool would only take its directory's lock, and two such hubs on one
// machine (make run beside a test) would refuse each other.
func resolveSpoolDir(v, redisURL string, env func(string) string) (string, error) {
	switch {
	case redisURL == "" || v == "off":
		return "", nil
	case v != "":
		return v, nil
	}
	// The XDG base directory rule: a relative path is invalid and ignored.
	if d := env("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "imhub", "spool"), nil
	}
	if h := env("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "imhub", "spool"), nil
	}
	return "", errors.New("-spool-dir: no default directory, as neither XDG_STATE_HOME nor HOME is set to an absolute path: " +
		"give -spool-dir (HUB_SPOOL_DIR) a directory, or off to run without a spool (callbacks answered 503 while Redis is down)")
}

// parseApps parses "SdkAppid[:callbackToken],…".
func parseApps(s string) ([]callback.App, error) {
	var apps []callback.App
	seen := map[string]bool{}
	n := 0
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		id, token, hasToken := strings.Cut(item, ":")
		if !isAppID(id) {
			// Not repeated: what stands where the SdkAppid should may
			// be a callback token (SdkAppid=token, or the token alone).
			return nil, fmt.Errorf("-apps: entry %d does not start with a SdkAppid (the number the IM console shows); want SdkAppid[:callbackToken],…", n)
		}
		if hasToken && token == "" {
			return nil, fmt.Errorf("-apps: app %s has an empty callback token after ':'; give the token or drop the ':'", id)
		}
		if seen[id] {
			return nil, fmt.Errorf("-apps: app %s is listed twice", id)
		}
		seen[id] = true
		apps = append(apps, callback.App{ID: id, Token: token})
	}
	return apps, nil
}

func (c *Config) validate() error {
	if c.Dev {
		if !isLoopback(c.Addr) {
			return fmt.Errorf("-dev serves /dev/token, which mints tokens for anyone, so it needs a loopback -addr such as 127.0.0.1:8080, not %q", c.Addr)
		}
		if len(c.Apps) == 0 {
			c.Apps = []callback.App{{ID: DemoApp}}
		}
	}
	if len(c.Apps) == 0 {
		return errors.New("no apps configured: set -apps (HUB_APPS) to your SdkAppid, with :callbackToken if the IM console has one")
	}
	keys := 0
	for _, k := range []string{c.JWTSecret, c.JWTPublicKey, c.JWTJWKSURL} {
		if k != "" {
			keys++
		}
	}
	switch {
	case keys == 0 && !c.Dev && strings.TrimSpace(c.IM.Spec) == "":
		return errors.New("no JWT key configured: set one of -jwt-secret, -jwt-public-key or -jwt-jwks-url, or -im-keys for clients that log in with their IM UserSig (or use -dev for a local demo)")
	case keys > 1:
		return errors.New("more than one JWT key configured: set only one of -jwt-secret, -jwt-public-key and -jwt-jwks-url")
	}
	if c.JWTPublicKey != "" {
		if _, err := os.Stat(c.JWTPublicKey); err != nil {
			return fmt.Errorf("-jwt-public-key: %w", err)
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < auth.MinSecretLen {
		return fmt.Errorf("-jwt-secret is %d bytes; HS256 needs at least %d (RFC 7518 §3.2): make one with openssl rand -base64 32", len(c.JWTSecret), auth.MinSecretLen)
	}
	if c.JWTJWKSURL != "" {
		if err := auth.CheckJWKSURL(c.JWTJWKSURL); err != nil {
			return fmt.Errorf("-jwt-jwks-url %s: %w", showFlag("jwt-jwks-url", c.JWTJWKSURL), err)
		}
	}
	if c.JWTMaxTTL < 0 {
		return errors.New("-jwt-max-ttl must not be negative (0 = no limit)")
	}
	if c.Redis != "" {
		if err := checkRedisURL(c.Redis, c.RedisCA); err != nil {
			return err
		}
	} else if c.RedisCA != "" {
		return errors.New("-redis-ca is for a rediss:// -redis URL, and there is no -redis")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format %q: want text or json", c.LogFormat)
	}
	if err := c.validateEdge(); err != nil {
		return err
	}
	if err := c.validateForward(); err != nil {
		return err
	}
	if err := c.validateWait(); err != nil {
		return err
	}
	if err := c.validateAPI(); err != nil {
		return err
	}
	if err := c.validateIM(); err != nil {
		return err
	}
	if c.DebugAddr != "" && !isLoopback(c.DebugAddr) {
		return fmt.Errorf("-debug-addr %q: pprof is served on loopback only, such as 127.0.0.1:6060", c.DebugAddr)
	}
	for _, p := range []struct {
		name string
		v    int64
	}{
		{"-max-body", c.MaxBody}, {"-max-conns", int64(c.MaxConns)}, {"-max-subs", int64(c.MaxSubs)},
		{"-max-frame", c.MaxFrame}, {"-send-queue", int64(c.SendQueue)}, {"-send-queue-bytes", c.SendQueueBytes},
		{"-ping-interval", int64(c.PingInterval)}, {"-write-timeout", int64(c.WriteTimeout)},
		{"-spool-max-bytes", c.SpoolMaxBytes}, {"-history-ttl", int64(c.HistoryTTL)},
	} {
		if p.v <= 0 {
			return fmt.Errorf("%s must be greater than zero", p.name)
		}
	}
	if !(c.ClientRate > 0) { // NaN too
		return errors.New("-client-rate must be greater than zero, such as 50 (frames a second)")
	}
	if c.ClientBurst != 0 && c.ClientBurst < c.MaxSubs {
		return fmt.Errorf("-client-burst %d is below -max-subs %d: a client resubscribing to its channels on connect would be refused; raise it or leave it unset", c.ClientBurst, c.MaxSubs)
	}
	for _, p := range []struct {
		name string
		v    int64
	}{
		{"-dedupe-window", int64(c.DedupeWindow)}, {"-history-size", int64(c.HistorySize)},
		{"-history-hold", int64(c.HistoryHold)}, {"-drain", int64(c.Drain)},
		{"-max-lag", int64(c.MaxLag)}, {"-write-delay", int64(c.WriteDelay)},
	} {
		if p.v < 0 {
			return fmt.Errorf("%s must not be negative", p.name)
		}
	}
	return nil
}

// validateEdge checks the settings of the network edge.
func (c *Config) validateEdge() error {
	if c.ReadTimeout <= 0 {
		return errors.New("-read-timeout must be greater than zero")
	}
	if c.MaxConnsPerIP <= 0 {
		return errors.New("-max-conns-per-ip must be greater than zero")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together: give both files to serve HTTPS, or neither")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
	}
	return nil
}

// prefixes is a flag of comma-separated CIDRs or addresses.
type prefixes clientaddr.Prefixes

func (p *prefixes) String() string { return clientaddr.Prefixes(*p).String() }

func (p *prefixes) Set(v string) error {
	ps, err := clientaddr.Parse(v)
	if err != nil {
		return err
	}
	*p = prefixes(ps)
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// size is a byte count flag that takes KiB, MiB and GiB suffixes.
type size int64

func (s *size) String() string {
	n := int64(*s)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *size) Set(v string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("want a size such as 1048576, 64KiB, 1MiB or 1GiB")
	}
	*s = size(n * mult)
	return nil
}
