package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -im-keys: SdkAppid:SDKSecretKey of configured apps; the IM API flags
// with their defaults; each mistake refused in one line that repeats no
// key; a printed config shows no key.
func TestConfigIM(t *testing.T) {
	const k1, k2 = "im-secret-key-one-5f0c", "im-secret-key-two-9a1b"
	base := []string{"-apps", "100,200", "-jwt-secret", testSecret, "-spool-dir", "off"}
	runSecretFlagCases(t, base, []string{k1, k2}, []secretFlagCase[map[string][]byte]{
		{"none", nil, nil, nil, ""},
		{"one", []string{"-im-keys", "100:" + k1}, nil, map[string][]byte{"100": []byte(k1)}, ""},
		{"two, spaces", []string{"-im-keys", " 100:" + k1 + " , 200:" + k2}, nil, map[string][]byte{"100": []byte(k1), "200": []byte(k2)}, ""},
		{"from the environment", nil, map[string]string{"HUB_IM_KEYS": "200:" + k2}, map[string][]byte{"200": []byte(k2)}, ""},
		{"http on loopback", []string{"-im-keys", "100:" + k1, "-im-api-url", "http://127.0.0.1:9000"}, nil, map[string][]byte{"100": []byte(k1)}, ""},
		{"unknown app", []string{"-im-keys", "300:" + k1}, nil, nil, "-im-keys: app 300 is not one of -apps"},
		{"no app", []string{"-im-keys", k1}, nil, nil, "-im-keys: an entry is not SdkAppid:SDKSecretKey"},
		{"not an app", []string{"-im-keys", "x" + k1 + ":" + k1}, nil, nil, "-im-keys: an entry does not start with a SdkAppid"},
		{"empty key", []string{"-im-keys", "100:"}, nil, nil, "-im-keys: app 100 has an empty key"},
		{"twice", []string{"-im-keys", "100:" + k1 + ",100:" + k2}, nil, nil, "-im-keys: app 100 is listed twice"},
		{"no admin", []string{"-im-admin", ""}, nil, nil, "-im-admin must name"},
		{"http elsewhere", []string{"-im-api-url", "http://console.tim.qq.com"}, nil, nil, "http is allowed on a loopback host, or with -dev, only"},
		{"not a URL", []string{"-im-api-url", "console.tim.qq.com"}, nil, nil, "-im-api-url xxxxx: want https://host"},
		{"a password", []string{"-im-api-url", "https://u:" + k1 + "@console.tim.qq.com"}, nil, nil, "-im-api-url takes no user, query or fragment"},
		{"a query", []string{"-im-api-url", "https://console.tim.qq.com/?k=" + k1}, nil, nil, "-im-api-url takes no user, query or fragment"},
		{"no rate", []string{"-im-api-rate", "0"}, nil, nil, "-im-api-rate must be"},
		{"no timeout", []string{"-im-api-timeout", "0s"}, nil, nil, "-im-api-timeout must be greater than zero"},
		{"no TTL", []string{"-im-membership-ttl", "0s"}, nil, nil, "-im-membership-ttl must be greater than zero"},
	}, func(c *Config) map[string][]byte { return c.IM.Keys }, nil)

	c, err := parseConfig(base, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, IMConfig{Admin: "administrator", APIURL: "https://adminapisgp.im.qcloud.com", APIRate: 80, APITimeout: 2 * time.Second, MembershipTTL: 10 * time.Minute}, c.IM)
	_, err = parseConfig([]string{"-dev", "-addr", "127.0.0.1:0", "-im-keys", DemoApp + ":" + k1, "-im-api-url", "http://im.example"}, env(nil), &bytes.Buffer{})
	assert.NoError(t, err, "-dev takes an http IM API anywhere, such as a stand-in")
}
