package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/api"
)

// -api-keys: SdkAppid:key for configured apps, keys long enough, and no
// key ever echoed in an error or printed with the config.
func TestConfigAPIKeys(t *testing.T) {
	const k1, k2 = "0123456789abcdef-one", "0123456789abcdef-two"
	base := []string{"-apps", "100,200", "-jwt-secret", testSecret, "-spool-dir", "off"}
	runSecretFlagCases(t, base, []string{k1, k2, "short"}, []secretFlagCase[[]api.Key]{
		{"none", nil, nil, nil, ""},
		{"one", []string{"-api-keys", "100:" + k1}, nil, []api.Key{{App: "100", Key: k1}}, ""},
		{"two apps, spaces", []string{"-api-keys", " 100:" + k1 + " , 200:" + k2}, nil, []api.Key{{App: "100", Key: k1}, {App: "200", Key: k2}}, ""},
		{"one app twice, a key being replaced", []string{"-api-keys", "100:" + k1 + ",100:" + k2}, nil, []api.Key{{App: "100", Key: k1}, {App: "100", Key: k2}}, ""},
		{"from the environment", nil, map[string]string{"HUB_API_KEYS": "200:" + k2}, []api.Key{{App: "200", Key: k2}}, ""},
		{"unknown app", []string{"-api-keys", "300:" + k1}, nil, nil, "-api-keys: app 300 is not one of -apps"},
		{"no app", []string{"-api-keys", k1}, nil, nil, "-api-keys: an entry is not SdkAppid:key"},
		{"not an app", []string{"-api-keys", "x" + k1 + ":" + k1}, nil, nil, "-api-keys: an entry does not start with a SdkAppid"},
		{"short key", []string{"-api-keys", "100:short"}, nil, nil, "the key of app 100 is 5 characters; give at least 16"},
		{"empty key", []string{"-api-keys", "100:"}, nil, nil, "is 0 characters"},
		{"presence TTL too short", []string{"-presence-ttl", "1s"}, nil, nil, "-presence-ttl must be at least 3s"},
		{"presence TTL too long", []string{"-presence-ttl", "31s"}, nil, nil, "-presence-ttl must be at most 30s"},
		{"presence TTL too long, from the environment", nil, map[string]string{"HUB_PRESENCE_TTL": "1m"}, nil, "-presence-ttl must be at most 30s"},
	}, func(c *Config) []api.Key { return c.API.Keys }, func(t *testing.T, c *Config) {
		assert.Equal(t, 25*time.Second, c.API.PresenceTTL)
	})
}

// -revocation-check is open unless set to closed; anything else is refused
// with one line that says both choices.
func TestConfigRevocationCheck(t *testing.T) {
	base := []string{"-apps", "100", "-jwt-secret", testSecret, "-spool-dir", "off"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{"default", nil, nil, "open", ""},
		{"closed", []string{"-revocation-check", "closed"}, nil, "closed", ""},
		{"open", []string{"-revocation-check", "open"}, nil, "open", ""},
		{"from the environment", nil, map[string]string{"HUB_REVOCATION_CHECK": "closed"}, "closed", ""},
		{"other", []string{"-revocation-check", "strict"}, nil, "", `-revocation-check "strict": want open`},
		{"empty", []string{"-revocation-check", ""}, nil, "", `-revocation-check "": want open`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(append([]string(nil), base...), tc.args...), env(tc.env), &bytes.Buffer{})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.Contains(t, err.Error(), "or closed")
				assert.NotContains(t, err.Error(), "\n", "one line")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.API.RevocationCheck)
		})
	}
}

// -api-rate and -api-burst: 100 a second and 1000 at once unless set, 0
// turns the limit off, anything else that is not a number of requests is
// refused in one line.
func TestConfigAPIQuota(t *testing.T) {
	base := []string{"-apps", "100", "-jwt-secret", testSecret, "-spool-dir", "off", "-api-keys", "100:0123456789abcdef-one"}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		rate  float64
		burst int
		err   string
	}{
		{"defaults", nil, nil, 100, 1000, ""},
		{"set", []string{"-api-rate", "2.5", "-api-burst", "10"}, nil, 2.5, 10, ""},
		{"from the environment", nil, map[string]string{"HUB_API_RATE": "50", "HUB_API_BURST": "60"}, 50, 60, ""},
		{"off", []string{"-api-rate", "0", "-api-burst", "0"}, nil, 0, 0, ""},
		{"negative rate", []string{"-api-rate", "-1"}, nil, 0, 0, "-api-rate must be a number of requests a second"},
		{"rate not a number", []string{"-api-rate", "NaN"}, nil, 0, 0, "-api-rate must be a number of requests a second"},
		{"rate infinite", []string{"-api-rate", "+Inf"}, nil, 0, 0, "-api-rate must be a number of requests a second"},
		{"no burst", []string{"-api-burst", "0"}, nil, 0, 0, "-api-burst must be at least 1 with -api-rate 100"},
		{"negative burst", nil, map[string]string{"HUB_API_BURST": "-5"}, 0, 0, "-api-burst must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(append([]string(nil), base...), tc.args...), env(tc.env), &bytes.Buffer{})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.NotContains(t, err.Error(), "\n", "one line")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.rate, c.API.Rate)
			assert.Equal(t, tc.burst, c.API.Burst)
		})
	}
}
