// Package redact shows values that can hold a secret without the secret:
// a URL as its scheme, host and path, a list of id:secret pairs as their
// ids. What it returns may go to a log line, an error or a help text.
package redact

import (
	"net/url"
	"strings"
)

// Mask stands in for a secret that is not shown.
const Mask = "xxxxx"

// URL shows raw as scheme://host/path: without user info, query or
// fragment, any of which may carry a credential (a password, an API key in
// the query, a signature). Text that does not parse as a URL is cut the
// same way, so that a mistyped URL is not shown whole either.
func URL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
		return v.String()
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if !ok {
		return authority + path
	}
	return scheme + "://" + authority + path
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
// raw's password and query taken out.
func Text(s, raw string) string {
	s = strings.ReplaceAll(s, raw, URL(raw))
	u, err := url.Parse(raw)
	if err != nil {
		return s
	}
	if u.RawQuery != "" {
		s = strings.ReplaceAll(s, "?"+u.RawQuery, "")
		s = strings.ReplaceAll(s, u.RawQuery, Mask)
	}
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, Mask)
	}
	return s
}

// redacted is an error shown by a text of its own.
type redacted struct {
	text string
	err  error
}

func (r *redacted) Error() string { return r.text }
func (r *redacted) Unwrap() error { return r.err }
