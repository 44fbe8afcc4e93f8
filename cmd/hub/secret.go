package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redact"
)

// secretFlags are the flags whose value can hold a secret, each with how
// the value is shown. It is the one place such a flag is named: every flag
// set of the hub (hub, hub forward-dead) goes through protectSecrets, so
// that -h and the flag package show these values only this way, and every
// error or log line that repeats one uses showFlag. A flag whose name
// suggests a secret and that is neither here nor in notSecretFlags fails
// TestSecretFlagsClassified.
var secretFlags = map[string]func(string) string{
	"apps":         pairs,            // SdkAppid:callbackToken,…
	"api-keys":     pairs,            // SdkAppid:key,…
	"im-keys":      pairs,            // SdkAppid:SDKSecretKey,… (PROTOCOL §8)
	"im-api-url":   redact.URL,       // refused with a password or a query, which are then not shown
	"jwt-secret":   redact.All,       // the HS256 key itself
	"jwt-jwks-url": redact.URL,       // may carry a password or a token in its query
	"redis":        broker.RedactURL, // a password in the user part or ?password=
	"forward":      showForward,      // SdkAppid=URL,…: each URL's password and query
}

// notSecretFlags are flags whose names suggest a secret but whose values
// are not one: file names, a CA.
var notSecretFlags = map[string]bool{"jwt-public-key": true, "tls-key": true, "tls-cert": true, "redis-ca": true}

func pairs(v string) string { return redact.Pairs(v, ':') }

// showForward shows -forward as SdkAppid=scheme://host/path,…
func showForward(v string) string {
	if v == "" {
		return ""
	}
	items := strings.Split(v, ",")
	for i, item := range items {
		app, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		if ok {
			items[i] = app + "=" + forward.BackendName(raw)
		} else {
			items[i] = forward.BackendName(item)
		}
	}
	return strings.Join(items, ",")
}

// showFlag is how the value v of the flag name may be shown: redacted for
// a secret flag, as it is for any other.
func showFlag(name, v string) string {
	if show, ok := secretFlags[name]; ok {
		return show(v)
	}
	return v
}

// protectSecrets makes fs show the value of every secret flag, its default
// included, only as secretFlags shows it. The flag package quotes a value
// it cannot set in its error: a secret flag's Value must accept any text
// (TestSecretFlagsClassified checks), its checks made after parsing, with
// messages that do not repeat it.
func protectSecrets(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		show, ok := secretFlags[f.Name]
		if !ok {
			return
		}
		f.Value = &secretValue{Value: f.Value, show: show}
		// An empty default is no default: shown as a redacted "" (for
		// -redis, "(not a URL)"), hub -h would print it as one.
		if f.DefValue != "" {
			f.DefValue = show(f.DefValue)
		}
	})
}

// secretValue is a flag's Value shown redacted.
type secretValue struct {
	flag.Value
	show func(string) string
}

// String is the value redacted; the zero secretValue, which the flag
// package makes to tell a default from none, shows "".
func (v *secretValue) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.show(v.Value.String())
}

// setFromEnv sets each flag of fs named in names (every flag when names is
// empty) from its HUB_* variable in env, when that is set: before the
// command line is parsed, so that the command line wins. The error names
// the variable and repeats no value (a secret flag's never fails to set).
func setFromEnv(fs *flag.FlagSet, env func(string) string, names ...string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || (len(names) > 0 && !slices.Contains(names, f.Name)) {
			return
		}
		if v := env(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), serr)
			}
		}
	})
	return err
}
