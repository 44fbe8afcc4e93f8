package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/redact"
)

// redisTarget is what a Redis URL names: one server, a Redis Cluster, or a
// primary found through Sentinel.
type redisTarget struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless a cluster
	desc    string               // for logs; no password
}

// CheckRedisURL reports whether NewRedis accepts u and, if not empty,
// caFile. The error never contains the URL's password.
func CheckRedisURL(u, caFile string) error {
	roots, err := loadCA(caFile)
	if err != nil {
		return err
	}
	_, err = parseRedisURL(u, roots)
	return err
}

// loadCA reads a PEM file of CA certificates; "" means none.
func loadCA(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("redis CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("redis CA file %s: no PEM certificate in it", file)
	}
	return roots, nil
}

type redisOptions struct {
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// parseRedisURL reads the URL forms NewRedis documents.
func parseRedisURL(raw string, roots *x509.CertPool) (redisOptions, error) {
	scheme, _, _ := strings.Cut(raw, "://")
	base, mode, _ := strings.Cut(scheme, "+")
	var o redisOptions
	var err error
	// go-redis's own parsers take "redis"/"rediss"; the "+cluster" and
	// "+sentinel" suffix only chooses which of them reads the rest.
	rest := base + raw[len(scheme):]
	switch {
	case mode == "" && (base == "redis" || base == "rediss" || base == "unix"):
		o.single, err = redis.ParseURL(raw)
	case mode == "cluster" && (base == "redis" || base == "rediss"):
		o.cluster, err = redis.ParseClusterURL(rest)
	case mode == "sentinel" && (base == "redis" || base == "rediss"):
		o.failover, err = redis.ParseFailoverURL(rest)
		if err == nil && o.failover.MasterName == "" {
			err = errors.New("a sentinel URL needs ?master_name=<name>")
		}
	case !strings.Contains(raw, "://") || !redact.ValidScheme(scheme):
		// Not repeated: text that is no URL may be anything, a password
		// given in the wrong place among others.
		err = errors.New("not a URL")
	default:
		err = fmt.Errorf("unknown scheme %q", scheme)
	}
	if err != nil {
		return o, fmt.Errorf("redis url %s: %w", RedactURL(raw), redactErr(redactErr(err, raw), rest))
	}
	tlsCfg := o.tls()
	if roots != nil && tlsCfg == nil {
		return o, fmt.Errorf("redis url %s: a CA file is given but the URL is not rediss://", RedactURL(raw))
	}
	if tlsCfg != nil {
		tlsCfg.MinVersion = tls.VersionTLS12
		if roots != nil {
			tlsCfg.RootCAs = roots
		}
	}
	return o, nil
}

func (o redisOptions) tls() *tls.Config {
	switch {
	case o.single != nil:
		return o.single.TLSConfig
	case o.cluster != nil:
		return o.cluster.TLSConfig
	default:
		return o.failover.TLSConfig
	}
}

// newRedisTarget builds the client for cfg's URL, with the broker's
// timeouts.
func newRedisTarget(cfg RedisConfig) (redisTarget, error) {
	roots, err := loadCA(cfg.CAFile)
	if err != nil {
		return redisTarget{}, err
	}
	o, err := parseRedisURL(cfg.URL, roots)
	if err != nil {
		return redisTarget{}, err
	}
	// Fail fast while Redis is down: callers answer 503 and the IM backend
	// retries, which beats holding callbacks for the default timeouts.
	// Contexts' deadlines bound the socket's reads and writes too (go-redis
	// otherwise keeps to ReadTimeout alone): a caller that gives a command
	// 200 ms is not held for 3 s by a server that stopped answering.
	const dial, rw, retries = 2 * time.Second, 3 * time.Second, 1
	switch {
	case o.single != nil:
		o.single.DialTimeout, o.single.ReadTimeout, o.single.WriteTimeout, o.single.MaxRetries = dial, rw, rw, retries
		o.single.ContextTimeoutEnabled = true
		return redisTarget{client: redis.NewClient(o.single), desc: o.single.Addr}, nil
	case o.cluster != nil:
		o.cluster.DialTimeout, o.cluster.ReadTimeout, o.cluster.WriteTimeout, o.cluster.MaxRetries = dial, rw, rw, retries
		o.cluster.ContextTimeoutEnabled = true
		o.cluster.Dialer = tlsDialer(o.cluster.TLSConfig, dial)
		c := redis.NewClusterClient(o.cluster)
		return redisTarget{client: c, cluster: c, desc: "cluster " + strings.Join(o.cluster.Addrs, ",")}, nil
	default:
		o.failover.DialTimeout, o.failover.ReadTimeout, o.failover.WriteTimeout, o.failover.MaxRetries = dial, rw, rw, retries
		o.failover.ContextTimeoutEnabled = true
		o.failover.Dialer = tlsDialer(o.failover.TLSConfig, dial)
		return redisTarget{
			client: redis.NewFailoverClient(o.failover),
			desc:   "primary " + o.failover.MasterName + " via sentinel " + strings.Join(o.failover.SentinelAddrs, ","),
		}, nil
	}
}

// tlsDialer dials TLS connections that check each server's certificate
// against the server's own host name, where it has one. go-redis would
// check every node of a cluster, and a primary found through Sentinel,
// against the host name of the URL. A node announced by IP address is
// checked against the URL's host name when that is a name (a certificate
// for the service's name, as managed Redis services give), else against
// its address. Without TLS it returns nil: go-redis's own dialer.
func tlsDialer(cfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if cfg == nil {
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c := cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if net.ParseIP(host) == nil || c.ServerName == "" || net.ParseIP(c.ServerName) != nil {
				c.ServerName = host
			}
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}, Config: c}
		return d.DialContext(ctx, network, addr)
	}
}

// RedactURL shows a Redis URL in any form NewRedis takes without its
// passwords, in the user part or the query, and without a fragment, which
// no Redis URL has; the rest (hosts, options) stays, to say which Redis is
// meant. Text that is no URL is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if !strings.Contains(raw, "://") {
		return "(not a URL)"
	}
	// A query that does not decode is hidden whole: url.Query would drop
	// the pair it cannot read, a password among them, and show it as given.
	if q, err := url.ParseQuery(u.RawQuery); err != nil {
		u.RawQuery = redact.Mask
	} else if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	shown := u.Redacted()
	for _, p := range redact.Passwords(raw) {
		shown = redact.Replace(shown, p, redact.Mask)
	}
	return shown
}

// redactErr is err with any copy of the raw URL (parsers quote it, or a
// part of it) shown redacted, and any copy of its passwords masked, so that
// no password reaches a log.
func redactErr(err error, raw string) error {
	text := redact.Replace(err.Error(), raw, RedactURL(raw))
	for _, p := range redact.Passwords(raw) {
		text = redact.Replace(text, p, redact.Mask)
	}
	if text == err.Error() {
		return err
	}
	return errors.New(text)
}

// NewRedisClient returns a client of the Redis that url names, in any form
// NewRedis takes (one server, Cluster, Sentinel), with the broker's
// timeouts, for other parts of the hub that keep state in the same Redis.
// On a Cluster, keys that one script or transaction touches must share a
// hash tag.
func NewRedisClient(url, caFile string) (redis.UniversalClient, error) {
	t, err := newRedisTarget(RedisConfig{URL: url, CAFile: caFile})
	if err != nil {
		return nil, err
	}
	return t.client, nil
}
