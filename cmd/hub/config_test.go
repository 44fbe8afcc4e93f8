package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
)

// testSecret is a -jwt-secret of the length HS256 needs.
const testSecret = "config-test-secret-config-test-secret"

// env is a process environment holding m, and a HOME unless m sets one (a
// real environment has one, and the spool's default directory is under it).
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if k == "HOME" {
			return "/home/hub"
		}
		return ""
	}
}

// With Redis the spool is on unless turned off; its default directory is
// the user's state directory, and with no home to put it in the hub refuses
// to start with a line naming the flag rather than running without it.
func TestConfigSpoolDir(t *testing.T) {
	ok := []string{"-apps", "1", "-jwt-secret", testSecret, "-redis", "redis://127.0.0.1:6379/0"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the directory; "" = no spool
		err  string
	}{
		{"XDG_STATE_HOME set", nil, map[string]string{"XDG_STATE_HOME": "/var/lib/u", "HOME": "/home/u"}, "/var/lib/u/imhub/spool", ""},
		{"HOME only", nil, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/imhub/spool", ""},
		{"relative XDG_STATE_HOME is ignored", nil, map[string]string{"XDG_STATE_HOME": "state", "HOME": "/home/u"}, "/home/u/.local/state/imhub/spool", ""},
		{"neither", nil, map[string]string{"HOME": ""}, "", "-spool-dir: no default directory, as neither XDG_STATE_HOME nor HOME"},
		{"relative HOME", nil, map[string]string{"HOME": "home"}, "", "give -spool-dir (HUB_SPOOL_DIR) a directory, or off"},
		{"off", []string{"-spool-dir", "off"}, map[string]string{"HOME": ""}, "", ""},
		{"off from the environment", nil, map[string]string{"HUB_SPOOL_DIR": "off"}, "", ""},
		{"given", []string{"-spool-dir", "/srv/spool"}, map[string]string{"HOME": ""}, "/srv/spool", ""},
		{"given in the environment", nil, map[string]string{"HUB_SPOOL_DIR": "/var/spool/imhub"}, "/var/spool/imhub", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(append([]string(nil), ok...), tc.args...), env(tc.env), &bytes.Buffer{})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.NotContains(t, err.Error(), "\n", "one line")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.SpoolDir)
		})
	}
}

// Without Redis there is no spool, given or not: the in-process broker does
// not go away, and a spool would take a directory's lock for nothing.
func TestConfigNoSpoolWithoutRedis(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"default", nil, nil},
		{"no home either", nil, map[string]string{"HOME": ""}},
		{"given", []string{"-spool-dir", "/srv/spool"}, nil},
		{"given in the environment", nil, map[string]string{"HUB_SPOOL_DIR": "/var/spool/imhub"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append([]string{"-apps", "1", "-jwt-secret", testSecret}, tc.args...), env(tc.env), &bytes.Buffer{})
			require.NoError(t, err)
			assert.Empty(t, c.SpoolDir)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig([]string{"-apps", "1400000000", "-jwt-secret", testSecret}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, ":8080", c.Addr)
	assert.Equal(t, int64(1<<20), c.MaxBody)
	assert.Equal(t, 10*time.Minute, c.DedupeWindow)
	assert.Equal(t, 100, c.HistorySize)
	assert.Equal(t, 10*time.Minute, c.HistoryTTL)
	assert.Zero(t, c.HistoryHold)
	assert.Equal(t, int64(256<<20), c.SpoolMaxBytes)
	assert.Equal(t, 100000, c.MaxConns)
	assert.Equal(t, 256, c.MaxSubs)
	assert.Equal(t, int64(64<<10), c.MaxFrame)
	assert.Equal(t, 1024, c.SendQueue)
	assert.Equal(t, int64(4<<20), c.SendQueueBytes)
	assert.Equal(t, 25*time.Second, c.PingInterval)
	assert.Equal(t, 50.0, c.ClientRate)
	assert.Zero(t, c.ClientBurst, "the hub's own default: -max-subs + 64")
	assert.Equal(t, 10*time.Second, c.WriteTimeout)
	assert.Zero(t, c.MaxLag, "no bound on lag but the queue's")
	assert.Zero(t, c.WriteDelay, "frames written at once")
	assert.Equal(t, 10*time.Second, c.Drain)
	assert.Equal(t, "text", c.LogFormat)
	assert.Equal(t, 24*time.Hour, c.JWTMaxTTL)
	assert.Empty(t, c.JWTAudience)
	assert.Empty(t, c.JWTIssuer)
	assert.Equal(t, []callback.App{{ID: "1400000000"}}, c.Apps)
}

func TestConfigEnvAndFlags(t *testing.T) {
	c, err := parseConfig([]string{"-max-subs", "9"}, env(map[string]string{
		"HUB_APPS":             "1:tok, 2",
		"HUB_JWT_SECRET":       testSecret,
		"HUB_JWT_MAX_TTL":      "1h",
		"HUB_JWT_AUDIENCE":     "imhub",
		"HUB_JWT_ISSUER":       "https://idp.example",
		"HUB_MAX_SUBS":         "5",
		"HUB_MAX_BODY":         "2MiB",
		"HUB_ALLOWED_ORIGINS":  "https://a.example, https://*.b.example",
		"HUB_COMPRESSION":      "true",
		"HUB_LOG_LEVEL":        "debug",
		"HUB_CLIENT_RATE":      "2.5",
		"HUB_CLIENT_BURST":     "10",
		"HUB_SEND_QUEUE_BYTES": "16MiB",
		"HUB_MAX_LAG":          "5s",
		"HUB_WRITE_DELAY":      "20ms",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []callback.App{{ID: "1", Token: "tok"}, {ID: "2"}}, c.Apps)
	assert.Equal(t, 9, c.MaxSubs, "the command line wins over the environment")
	assert.Equal(t, int64(2<<20), c.MaxBody)
	assert.Equal(t, []string{"https://a.example", "https://*.b.example"}, c.AllowedOrigins)
	assert.True(t, c.Compression)
	assert.Equal(t, "DEBUG", c.LogLevel.String())
	assert.Equal(t, time.Hour, c.JWTMaxTTL)
	assert.Equal(t, "imhub", c.JWTAudience)
	assert.Equal(t, "https://idp.example", c.JWTIssuer)
	assert.Equal(t, 2.5, c.ClientRate)
	assert.Equal(t, 10, c.ClientBurst)
	assert.Equal(t, int64(16<<20), c.SendQueueBytes)
	assert.Equal(t, 5*time.Second, c.MaxLag)
	assert.Equal(t, 20*time.Millisecond, c.WriteDelay)
}

// A JWKS URL over plain http is taken only on loopback (tests, a sidecar).
func TestConfigJWKSURL(t *testing.T) {
	for _, u := range []string{"https://idp.example/jwks", "http://127.0.0.1:8081/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"} {
		c, err := parseConfig([]string{"-apps", "1", "-jwt-jwks-url", u}, env(nil), &bytes.Buffer{})
		require.NoError(t, err, u)
		assert.Equal(t, u, c.JWTJWKSURL)
	}
}

func TestConfigDev(t *testing.T) {
	c, err := parseConfig([]string{"-dev", "-addr", "127.0.0.1:8080"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []callback.App{{ID: DemoApp}}, c.Apps, "-dev brings the demo app")
	for _, addr := range []string{"localhost:0", "[::1]:8080", "127.0.0.2:1"} {
		_, err := parseConfig([]string{"-dev", "-addr", addr}, env(nil), &bytes.Buffer{})
		assert.NoError(t, err, addr)
	}
}

// Every invalid configuration is refused with one line that says what is
// wrong and how to fix it.
func TestConfigErrors(t *testing.T) {
	ok := []string{"-apps", "1", "-jwt-secret", testSecret}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no apps", []string{"-jwt-secret", testSecret}, nil, "no apps configured: set -apps"},
		{"bad app id", []string{"-apps", "1,abc", "-jwt-secret", testSecret}, nil, `-apps: entry 2 does not start with a SdkAppid`},
		{"empty token", []string{"-apps", "1:", "-jwt-secret", testSecret}, nil, "empty callback token"},
		{"app twice", []string{"-apps", "1,1:t", "-jwt-secret", testSecret}, nil, "app 1 is listed twice"},
		{"no jwt key", []string{"-apps", "1"}, nil, "no JWT key configured"},
		{"two jwt keys", append(ok, "-jwt-jwks-url", "https://idp.example/jwks"), nil, "more than one JWT key"},
		{"missing pem", []string{"-apps", "1", "-jwt-public-key", "/nonexistent.pem"}, nil, "-jwt-public-key"},
		{"bad jwks url", []string{"-apps", "1", "-jwt-jwks-url", "ftp://x"}, nil, "want an https URL"},
		{"plain http jwks url", []string{"-apps", "1", "-jwt-jwks-url", "http://idp.example/jwks"}, nil, "http is allowed on a loopback host only"},
		{"short jwt secret", []string{"-apps", "1", "-jwt-secret", "hunter2"}, nil, "-jwt-secret is 7 bytes; HS256 needs at least 32"},
		{"short jwt secret env", []string{"-apps", "1"}, map[string]string{"HUB_JWT_SECRET": "hunter2hunter2hunter2hunter2hun"}, "-jwt-secret is 31 bytes"},
		{"short jwt secret with dev", []string{"-dev", "-addr", "127.0.0.1:0", "-jwt-secret", "hunter2"}, nil, "-jwt-secret is 7 bytes"},
		{"negative max ttl", append(ok, "-jwt-max-ttl", "-1h"), nil, "-jwt-max-ttl must not be negative"},
		{"dev on all interfaces", []string{"-dev"}, nil, "needs a loopback -addr"},
		{"dev on public address", []string{"-dev", "-addr", "0.0.0.0:8080"}, nil, "needs a loopback -addr"},
		{"bad redis url", append(ok, "-redis", "http://localhost:6379"), nil, `-redis: redis url http://localhost:6379: unknown scheme "http"`},
		{"sentinel without primary", append(ok, "-redis", "redis+sentinel://10.0.0.1:26379"), nil, "master_name"},
		{"redis ca without redis", append(ok, "-redis-ca", "/etc/ssl/ca.pem"), nil, "there is no -redis"},
		{"redis ca not tls", append(ok, "-redis", "redis://10.0.0.1", "-redis-ca", "config_test.go"), nil, "no PEM certificate"},
		{"bad redis env", ok, map[string]string{"HUB_REDIS": "redis://localhost:6379/notadb"}, "-redis"},
		{"bad size", append(ok, "-max-body", "1MB"), nil, "want a size"},
		{"bad size env", ok, map[string]string{"HUB_MAX_FRAME": "big"}, "HUB_MAX_FRAME"},
		{"bad duration", append(ok, "-drain", "10"), nil, "-drain"},
		{"bad level", append(ok, "-log-level", "loud"), nil, "-log-level"},
		{"bad format", append(ok, "-log-format", "xml"), nil, "-log-format"},
		{"zero conns", append(ok, "-max-conns", "0"), nil, "-max-conns must be greater than zero"},
		{"negative history", append(ok, "-history-size", "-1"), nil, "-history-size must not be negative"},
		{"zero history ttl", append(ok, "-history-ttl", "0s"), nil, "-history-ttl must be greater than zero"},
		{"negative history hold", append(ok, "-history-hold", "-1s"), nil, "-history-hold must not be negative"},
		{"negative max lag", append(ok, "-max-lag", "-1s"), nil, "-max-lag must not be negative"},
		{"negative write delay", append(ok, "-write-delay", "-1ms"), nil, "-write-delay must not be negative"},
		{"redis password not shown", append(ok, "-redis", "redis://:hunter2@localhost:6379/notadb"), nil, "-redis"},
		{"zero send queue bytes", append(ok, "-send-queue-bytes", "0"), nil, "-send-queue-bytes must be greater than zero"},
		{"zero client rate", append(ok, "-client-rate", "0"), nil, "-client-rate must be greater than zero"},
		{"NaN client rate", append(ok, "-client-rate", "NaN"), nil, "-client-rate must be greater than zero"},
		{"client burst below max subs", append(ok, "-client-burst", "100"), nil, "-client-burst 100 is below -max-subs 256"},
		{"negative client burst", append(ok, "-client-burst", "-1", "-max-subs", "1"), nil, "-client-burst -1 is below -max-subs 1"},
		{"public pprof", append(ok, "-debug-addr", ":6060"), nil, "loopback only"},
		{"stray argument", append(ok, "serve"), nil, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "hunter2", "no secret in the message")
		})
	}
}

func TestConfigHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, env(nil), &out)
	assert.True(t, errors.Is(err, flag.ErrHelp))
	assert.Contains(t, out.String(), "$HUB_REDIS")
	// Behind a load balancer the per-address limit needs the balancer
	// trusted: its help says so where the limit is described.
	_, perIP, ok := strings.Cut(out.String(), "-max-conns-per-ip")
	require.True(t, ok)
	perIP, _, _ = strings.Cut(perIP, "\n  -")
	assert.Contains(t, perIP, "-trusted-proxies")
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "64KiB": 64 << 10, "1MiB": 1 << 20, "3GiB": 3 << 30, "10B": 10} {
		var s size
		require.NoError(t, s.Set(in), in)
		assert.Equal(t, want, int64(s), in)
	}
	for _, in := range []string{"", "1MB", "-1", "1.5MiB", "KiB", "99999999999GiB"} {
		var s size
		assert.Error(t, s.Set(in), in)
	}
	s := size(64 << 10)
	assert.Equal(t, "64KiB", s.String())
}

// The settings of the network edge: defaults, the environment, and one
// line that says what to fix for each mistake.
func TestConfigEdge(t *testing.T) {
	ok := []string{"-apps", "1", "-jwt-secret", testSecret}
	c, err := parseConfig(ok, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, c.ReadTimeout)
	assert.Equal(t, 1000, c.MaxConnsPerIP)
	assert.Empty(t, c.CallbackAllow, "callbacks from anywhere by default")
	assert.Empty(t, c.TrustedProxies)
	assert.Empty(t, c.TLSCert)

	dir := t.TempDir()
	writeCert(t, dir, "hub")
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	c, err = parseConfig(append(ok, "-tls-cert", certFile), env(map[string]string{
		"HUB_TLS_KEY":          keyFile,
		"HUB_CALLBACK_ALLOW":   "183.192.202.0/25, 127.0.0.2",
		"HUB_TRUSTED_PROXIES":  "10.0.0.0/8",
		"HUB_MAX_CONNS_PER_IP": "5",
		"HUB_READ_TIMEOUT":     "5s",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "183.192.202.0/25,127.0.0.2/32", c.CallbackAllow.String())
	assert.Equal(t, "10.0.0.0/8", c.TrustedProxies.String())
	assert.Equal(t, 5, c.MaxConnsPerIP)
	assert.Equal(t, 5*time.Second, c.ReadTimeout)
	assert.Equal(t, keyFile, c.TLSKey)

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"cert without key", []string{"-tls-cert", certFile}, nil, "-tls-cert and -tls-key go together"},
		{"key without cert", nil, map[string]string{"HUB_TLS_KEY": keyFile}, "-tls-cert and -tls-key go together"},
		{"missing cert", []string{"-tls-cert", dir + "/nope.pem", "-tls-key", keyFile}, nil, "-tls-cert/-tls-key: open " + dir + "/nope.pem"},
		{"key of another cert", []string{"-tls-cert", certFile, "-tls-key", "config_test.go"}, nil, "-tls-cert/-tls-key:"},
		{"bad allow range", []string{"-callback-allow", "10.0.0.0/33"}, nil, `invalid value "10.0.0.0/33" for flag -callback-allow: "10.0.0.0/33" is not a CIDR`},
		{"host name in allow", []string{"-callback-allow", "im.example.com"}, nil, `"im.example.com" is not an address or a CIDR`},
		{"bad proxy env", nil, map[string]string{"HUB_TRUSTED_PROXIES": "lb1"}, `HUB_TRUSTED_PROXIES: "lb1" is not an address or a CIDR`},
		{"zero per-address", []string{"-max-conns-per-ip", "0"}, nil, "-max-conns-per-ip must be greater than zero"},
		{"zero read timeout", []string{"-read-timeout", "0s"}, nil, "-read-timeout must be greater than zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(append(append([]string(nil), ok...), tc.args...), env(tc.env), &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}
