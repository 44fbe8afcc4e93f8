// Package redact shows values that can hold a secret without the secret:
// a URL as its scheme, host and path, a list of id:secret pairs as their
// ids. What it returns may go to a log line, an error or a help text.
package redact

import (
	"net/url"
	"strconv"
	"strings"
)

// Mask stands in for a secret that is not shown.
const Mask = "xxxxx"

// URL shows raw as scheme://host/path: without user info, query or
// fragment, any of which may carry a credential (a password, an API key in
// the query, a signature). Text that does not parse as a URL is cut the
// same way, so that a mistyped URL is not shown whole either; text without
// "://" may be anything, a secret given in the wrong place among others,
// and is masked whole.
func URL(raw string) string {
	if !strings.Contains(raw, "://") {
		return All(raw)
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
		return v.String()
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if !ValidScheme(scheme) {
		return Mask // what stands before "://" is no scheme: anything
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	return scheme + "://" + authority + path
}

// ValidScheme reports whether s is a URL scheme as RFC 3986 §3.1 has it:
// a letter, then letters, digits, '+', '-' and '.'. What is not may be
// anything, and is not repeated as a scheme.
func ValidScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// Pairs shows a comma-separated list of id:secret pairs (sep is the
// separator, such as ':') as id:xxxxx,…; an item without sep is all
// masked, as it may be a secret given without its id.
func Pairs(list string, sep byte) string {
	if list == "" {
		return ""
	}
	items := strings.Split(list, ",")
	for i, item := range items {
		id, _, ok := strings.Cut(strings.TrimSpace(item), string(sep))
		if ok {
			items[i] = id + string(sep) + Mask
		} else {
			items[i] = Mask
		}
	}
	return strings.Join(items, ",")
}

// All masks a secret whole: "" stays "" (no secret to hide), anything
// else is Mask.
func All(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// Error returns err with every copy of the URL raw in its text shown by
// URL, and every copy of raw's password and query taken out: for errors of
// libraries that quote the URL they were given. The result still unwraps
// to err, for errors.Is and errors.As.
func Error(err error, raw string) error {
	if err == nil || raw == "" {
		return err
	}
	text := Text(err.Error(), raw)
	if text == err.Error() {
		return err
	}
	return &redacted{text: text, err: err}
}

// Text is s with every copy of the URL raw shown by URL, and every copy of
// raw's query and passwords taken out.
func Text(s, raw string) string {
	s = Replace(s, raw, URL(raw))
	if u, err := url.Parse(raw); err == nil && u.RawQuery != "" {
		s = Replace(s, "?"+u.RawQuery, "")
		s = Replace(s, u.RawQuery, Mask)
	}
	for _, p := range Passwords(raw) {
		s = Replace(s, p, Mask)
	}
	return s
}

// Replace is s with every copy of secret replaced by with, also where s
// quotes it as Go's %q does (url.Error quotes the URL it wraps, so a
// password with a quote, a backslash or a control character in it is
// written escaped).
func Replace(s, secret, with string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, with)
	if q := strconv.Quote(secret); q[1:len(q)-1] != secret {
		s = strings.ReplaceAll(s, q[1:len(q)-1], with)
	}
	return s
}

// Passwords are the passwords the URL raw carries: in its user info, and
// as the value of a password parameter of its query (Redis URLs). They are
// found also in a URL that does not parse (a mistyped port, say), whose
// error may quote it.
func Passwords(raw string) []string {
	var ps []string
	if u, err := url.Parse(raw); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			ps = append(ps, p)
		}
	} else if _, rest, ok := strings.Cut(raw, "://"); ok {
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if i := strings.LastIndexByte(authority, '@'); i >= 0 {
			if _, p, ok := strings.Cut(authority[:i], ":"); ok && p != "" {
				ps = append(ps, p)
				if d, err := url.PathUnescape(p); err == nil && d != p {
					ps = append(ps, d)
				}
			}
		}
	}
	if _, query, ok := strings.Cut(raw, "?"); ok {
		query, _, _ = strings.Cut(query, "#")
		for pair := range strings.SplitSeq(query, "&") {
			if k, v, _ := strings.Cut(pair, "="); k == "password" && v != "" {
				ps = append(ps, v)
				if d, err := url.QueryUnescape(v); err == nil && d != v {
					ps = append(ps, d)
				}
			}
		}
	}
	return ps
}

// redacted is an error shown by a text of its own.
type redacted struct {
	text string
	err  error
}

func (r *redacted) Error() string { return r.text }
func (r *redacted) Unwrap() error { return r.err }
