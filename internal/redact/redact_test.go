package redact_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/imhub/imhub/internal/redact"
)

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://backend.example/im":                         "https://backend.example/im",
		"https://backend.example/im?key=s3cret":              "https://backend.example/im",
		"https://u:s3cret@backend.example:8443/a/b?k=s3cret": "https://backend.example:8443/a/b",
		"https://backend.example/a%2Fb?x=1#s3cret":           "https://backend.example/a%2Fb",
		"http://[::1]:9090/cb?Sign=s3cret":                   "http://[::1]:9090/cb",
		"ftp://u:s3cret@b.example":                           "ftp://b.example",
		"http://u:s3cret@b.example/%zz?k=s3cret":             "http://b.example/%zz",
		"http://u:s3cret@b.example:port/?k=s3cret":           "http://b.example:port/",
		"b.example/cb?k=s3cret":                              "xxxxx", // not a URL: masked whole
		"u:s3cret@b.example/cb":                              "xxxxx",
		"s3cret":                                             "xxxxx",
		"1400000000=s3cret":                                  "xxxxx",
		"":                                                   "",
		"unix://u:s3cret@/tmp/redis.sock":                    "unix:///tmp/redis.sock",
		"https://idp.example/.well-known/jwks.json?t=s3cret": "https://idp.example/.well-known/jwks.json",
		"http://u:s3cret@b.example/\x7f?k=s3cret":            "http://b.example/\x7f",
		"s3cret=https://b.example/":                          "xxxxx",
		"1=https://b.example/,s3cret":                        "xxxxx",
	} {
		assert.Equal(t, want, redact.URL(raw), raw)
	}
}

func TestPairs(t *testing.T) {
	for list, want := range map[string]string{
		"":                             "",
		"1400000000:s3cret":            "1400000000:xxxxx",
		"1:s3cret, 2:s3cret2,3":        "1:xxxxx,2:xxxxx,xxxxx",
		"1400000000=s3cret":            "xxxxx",
		"1400000000:":                  "1400000000:xxxxx",
		"1:a:b":                        "1:xxxxx",
		"s3cret,1400000000:s3cret,,x:": "xxxxx,1400000000:xxxxx,xxxxx,x:xxxxx",
	} {
		got := redact.Pairs(list, ':')
		assert.Equal(t, want, got, list)
		assert.NotContains(t, got, "s3cret", list)
	}
}

func TestAll(t *testing.T) {
	assert.Equal(t, "", redact.All(""))
	assert.Equal(t, redact.Mask, redact.All("s3cret"))
}

// An error that quotes a URL, as net/http's and other libraries' do, is
// shown without the URL's password or query, and still unwraps.
func TestError(t *testing.T) {
	raw := "https://u:pw-s3cret@idp.example/jwks?token=q-s3cret"
	u, _ := url.Parse(raw)
	inner := &url.Error{Op: "Get", URL: u.Redacted(), Err: context.DeadlineExceeded}
	for _, err := range []error{
		fmt.Errorf("refresh %q: %w", raw, inner),
		fmt.Errorf("storage for %s: %w", raw, inner),
		fmt.Errorf("query %s: %w", u.RawQuery, inner),
	} {
		got := redact.Error(err, raw)
		assert.NotContains(t, got.Error(), "s3cret")
		assert.Contains(t, got.Error(), "idp.example/jwks")
		assert.ErrorIs(t, got, context.DeadlineExceeded)
		var ue *url.Error
		assert.True(t, errors.As(got, &ue))
	}
	plain := errors.New("connection refused")
	assert.Same(t, plain, redact.Error(plain, raw), "an error without the URL is returned as it is")
	assert.Nil(t, redact.Error(nil, raw))
}

func TestValidScheme(t *testing.T) {
	for s, want := range map[string]bool{"https": true, "redis+sentinel": true, "a1.-+": true, "": false, "1http": false, "x=https": false, "s3cret marker": false} {
		assert.Equal(t, want, redact.ValidScheme(s), s)
	}
}

func TestPasswords(t *testing.T) {
	for raw, want := range map[string][]string{
		"redis://u:pw1@h:6379/0":                            {"pw1"},
		"redis://:pw1@h:63x79/0#f":                          {"pw1"}, // does not parse: found by hand
		"redis://:p%40w@h:63x79":                            {"p%40w", "p@w"},
		"redis+sentinel://h?master_name=m&password=pw2":     {"pw2"},
		"redis+sentinel://u:pw1@h:2x?password=p%2Bw2&x=1#f": {"pw1", "p%2Bw2", "p+w2"},
		"https://h/x?k=v":                                   nil,
		"s3cret":                                            nil,
	} {
		assert.Equal(t, want, redact.Passwords(raw), raw)
	}
}
