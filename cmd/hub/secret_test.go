package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// marker stands for a secret in the values below.
const marker = "s3cr3t-marker"

// malformed are values of a secret flag, good and bad, each holding the
// marker where a secret can be: alone, after an id, in a URL's user info,
// as a Redis URL's ?password=, cut by a space.
var malformed = []string{
	marker, "1400000000:" + marker, "1400000000=" + marker, "x:" + marker, marker + ":" + marker,
	"1400000000:" + marker + ",1400000000:" + marker, "1400000000:short" + marker[:2], ",," + marker + ",",
	"\x00" + marker, marker + " " + marker, marker + "=https://127.0.0.1/", "1400000000=https://127.0.0.1/," + marker,
	"http://u:" + marker + "@127.0.0.1:1/", "https://u:" + marker + "@127.0.0.1:1/%zz", "ftp://u:" + marker + "@127.0.0.1/",
	"redis://:" + marker + "@127.0.0.1:port/0", "redis://u:" + marker + "@127.0.0.1:1/notadb",
	"redis+sentinel://127.0.0.1:1?password=" + marker, "redis+cluster://u:" + marker + "@127.0.0.1:1?bogus=1",
	"1400000000=ftp://u:" + marker + "@127.0.0.1/", "9=https://u:" + marker + "@127.0.0.1/", "1400000000=" + marker + "/cb",
}

// inQuery are values with the marker in a URL's query or fragment, which
// can hold a credential in every URL flag but -redis, whose query holds
// its options.
var inQuery = []string{
	"http://127.0.0.1:1/?k=" + marker + "#f", "ftp://127.0.0.1/?k=" + marker, "http://u:p@127.0.0.1:1/x?k=" + marker,
	"https://127.0.0.1/%zz?k=" + marker, "1400000000=https://127.0.0.1/?k=%zz" + marker, "1400000000=https://127.0.0.1/?k=" + marker + "#f",
	"1400000000=http://127.0.0.1/#" + marker, "redis://127.0.0.1:1/0#" + marker, "1400000000=ftp://127.0.0.1/?k=" + marker,
}

// valuesOf are the values TestSecretFlagErrors gives the flag name.
func valuesOf(name string) []string {
	if name == "redis" {
		return append(slices.Clone(malformed), "redis://127.0.0.1:1/0#"+marker)
	}
	return append(slices.Clone(malformed), inQuery...)
}

// flagNames lists the flags a usage text shows.
func flagNames(usage string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(usage, -1) {
		names = append(names, m[1])
	}
	return names
}

func hubFlags(t *testing.T) []string {
	var out bytes.Buffer
	_, _ = parseConfig([]string{"-h"}, env(nil), &out)
	names := flagNames(out.String())
	require.Contains(t, names, "jwt-secret")
	return names
}

func forwardDeadFlags(t *testing.T) []string {
	var stdout, stderr bytes.Buffer
	forwardDead(t.Context(), []string{"-h"}, env(nil), &stdout, &stderr)
	names := flagNames(stderr.String())
	require.Contains(t, names, "redis")
	return names
}

// Every flag whose name suggests a secret is either a secret flag, shown
// redacted, or known not to be one; a new one (such as -im-keys) fails
// here until it is put in secretFlags.
func TestSecretFlagsClassified(t *testing.T) {
	suggests := regexp.MustCompile(`^(apps|forward|redis)$|secret|key|token|pass|cred|sig|auth|url`)
	for _, name := range append(hubFlags(t), forwardDeadFlags(t)...) {
		_, secret := secretFlags[name]
		if suggests.MatchString(name) {
			assert.True(t, secret || notSecretFlags[name], "-%s: put it in secretFlags, or in notSecretFlags if its value is never a secret", name)
		}
	}
	for _, name := range []string{"apps", "api-keys", "jwt-secret", "jwt-jwks-url", "redis", "forward"} {
		assert.Contains(t, secretFlags, name)
	}
	assert.Contains(t, secretFlags, "im-keys", "the IM's secret keys (PROTOCOL §8) are shown redacted once the flag is there")
}

// No value of a secret flag, whatever its mistake, is repeated by an error
// or the flag package: given on the command line, from the environment,
// or followed by a stray argument; for hub and hub forward-dead.
func TestSecretFlagErrors(t *testing.T) {
	base := map[string][]string{
		"apps":         {"-jwt-secret", testSecret},
		"jwt-secret":   {"-apps", "1400000000"},
		"jwt-jwks-url": {"-apps", "1400000000"},
	}
	hub := hubFlags(t)
	for name := range secretFlags {
		if !slices.Contains(hub, name) {
			continue
		}
		args, ok := base[name]
		if !ok {
			args = []string{"-apps", "1400000000", "-jwt-secret", testSecret}
		}
		for _, v := range valuesOf(name) {
			for how, run := range map[string]func() (string, error){
				"flag": func() (string, error) {
					var out bytes.Buffer
					_, err := parseConfig(append(append([]string(nil), args...), "-"+name, v), env(nil), &out)
					return out.String(), err
				},
				"flag=": func() (string, error) {
					var out bytes.Buffer
					_, err := parseConfig(append(append([]string(nil), args...), "-"+name+"="+v), env(nil), &out)
					return out.String(), err
				},
				"environment": func() (string, error) {
					var out bytes.Buffer
					_, err := parseConfig(args, env(map[string]string{envName(name): v}), &out)
					return out.String(), err
				},
				"stray argument": func() (string, error) {
					var out bytes.Buffer
					_, err := parseConfig(append(append([]string(nil), args...), "-"+name, v, marker), env(nil), &out)
					return out.String(), err
				},
			} {
				out, err := run()
				assert.NotContains(t, out, marker, "-%s %q (%s): usage or flag error", name, v, how)
				if err != nil {
					assert.NotContains(t, err.Error(), marker, "-%s %q (%s)", name, v, how)
					assert.NotContains(t, err.Error(), "invalid value", "-%s %q (%s): a secret flag's value always sets", name, v, how)
				}
			}
		}
	}

	dead := forwardDeadFlags(t)
	for name := range secretFlags {
		if !slices.Contains(dead, name) {
			continue
		}
		for _, v := range valuesOf(name) {
			for how, args := range map[string][]string{
				"flag":           {"list", "-app", "1400000000", "-" + name, v},
				"stray argument": {"list", "-app", "1400000000", "-" + name, v, marker},
				"bad command":    {"purge", "-" + name, v},
			} {
				var stdout, stderr bytes.Buffer
				forwardDead(t.Context(), args, env(nil), &stdout, &stderr)
				assert.NotContains(t, stdout.String()+stderr.String(), marker, "forward-dead -%s %q (%s)", name, v, how)
			}
			var stdout, stderr bytes.Buffer
			forwardDead(t.Context(), []string{"list", "-app", "1400000000"}, env(map[string]string{envName(name): v}), &stdout, &stderr)
			assert.NotContains(t, stdout.String()+stderr.String(), marker, "forward-dead with %s=%q", envName(name), v)
		}
	}
}

// -h shows no secret flag's value from the environment, for hub and hub
// forward-dead.
func TestSecretFlagsHelp(t *testing.T) {
	e := map[string]string{}
	for name := range secretFlags {
		e[envName(name)] = "1400000000:" + marker + ",https://u:" + marker + "@127.0.0.1/?k=" + marker
	}
	var out bytes.Buffer
	_, _ = parseConfig([]string{"-h"}, env(e), &out)
	assert.Contains(t, out.String(), "$HUB_JWT_SECRET")
	assert.NotContains(t, out.String(), marker)
	for _, args := range [][]string{{"-h"}, {"list", "-h"}, {"replay", "-h"}, {}} {
		var stdout, stderr bytes.Buffer
		forwardDead(t.Context(), args, env(e), &stdout, &stderr)
		assert.Contains(t, stderr.String(), "$HUB_REDIS", args)
		assert.NotContains(t, stdout.String()+stderr.String(), marker, args)
	}
}

// Each secret flag is shown by its own rule.
func TestShowFlag(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"apps", "1400000000:tok,1400000001", "1400000000:xxxxx,xxxxx"},
		{"api-keys", "1400000000:" + marker, "1400000000:xxxxx"},
		{"jwt-secret", marker, "xxxxx"},
		{"jwt-secret", "", ""},
		{"jwt-jwks-url", "https://u:p@idp.example/jwks?t=" + marker, "https://idp.example/jwks"},
		{"redis", "redis://u:" + marker + "@10.0.0.1:6379/0", "redis://u:xxxxx@10.0.0.1:6379/0"},
		{"redis", "redis+sentinel://10.0.0.1:26379?master_name=m&password=" + marker, "redis+sentinel://10.0.0.1:26379?master_name=m&password=xxxxx"},
		{"forward", "1=https://u:p@b.example/im?key=" + marker + ", 2=http://c.example/", "1=https://b.example/im,2=http://c.example/"},
		{"addr", ":8080", ":8080"},
	} {
		got := showFlag(tc.name, tc.value)
		assert.Equal(t, tc.want, got, "-%s %s", tc.name, tc.value)
		assert.False(t, strings.Contains(got, marker))
	}
}
