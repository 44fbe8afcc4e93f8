package hub

import (
	"log/slog"
	"net/http"
	"path"
	"strings"
)

// originPolicy decides which browser pages may open a WebSocket to the
// hub (RFC 6455, section 4.2.2, /origin/): those served by the hub's own
// host, and those Config.AllowedOrigins names. Without it any page a user
// visits could connect with the user's cookies or stored token.
//
// A request without Origin is let through: it does not come from a page,
// and a program that is not a browser could send any Origin it likes.
type originPolicy struct {
	// Patterns in path.Match syntax, lower case: hosts are matched
	// against an Origin's host[:port], origins (those with "://")
	// against all of it, scheme://host[:port].
	hosts, origins []string
}

// newOriginPolicy compiles patterns. One that path.Match cannot read is
// logged and left out: it allows nothing.
func newOriginPolicy(patterns []string, log *slog.Logger) *originPolicy {
	p := &originPolicy{}
	for _, pat := range patterns {
		pat = strings.ToLower(pat)
		if _, err := path.Match(pat, ""); err != nil {
			log.Error("allowed origin pattern ignored: it is not path.Match syntax", "pattern", pat, "err", err)
			continue
		}
		if strings.Contains(pat, "://") {
			p.origins = append(p.origins, pat)
		} else {
			p.hosts = append(p.hosts, pat)
		}
	}
	return p
}

// check refuses with 403 a request from a page the policy does not allow,
// and one whose Origin names no host: an opaque origin (null: a sandboxed
// frame, a file) could be any page at all.
func (p *originPolicy) check(r *http.Request) error {
	values := r.Header.Values("Origin")
	switch {
	case len(values) == 0:
		return nil
	case len(values) > 1:
		// A browser sends one (RFC 6454, section 7.3); which would be
		// the page's?
		return refuseHandshake(http.StatusForbidden, "Origin sent %d times", len(values))
	}
	origin := values[0]
	scheme, host, ok := splitOrigin(origin)
	if !ok {
		return refuseHandshake(http.StatusForbidden, "Origin %q names no page the hub could allow", origin)
	}
	if strings.EqualFold(host, r.Host) {
		return nil
	}
	// Browsers send origins in lower case already.
	host, scheme = strings.ToLower(host), strings.ToLower(scheme)
	if matchAny(p.hosts, host) || len(p.origins) > 0 && matchAny(p.origins, scheme+"://"+host) {
		return nil
	}
	return refuseHandshake(http.StatusForbidden, "pages of %s may not connect to %s", origin, r.Host)
}

// splitOrigin splits an Origin serialized as RFC 6454, section 6.2, has
// it: scheme://host[:port], nothing before or after.
func splitOrigin(origin string) (scheme, host string, ok bool) {
	scheme, host, ok = strings.Cut(origin, "://")
	if !ok || !validScheme(scheme) || host == "" || strings.ContainsAny(host, "/?#@ \t") {
		return "", "", false
	}
	return scheme, host, true
}

// validScheme: a letter, then letters, digits, "+", "-" or "." (RFC 3986,
// section 3.1).
func validScheme(s string) bool {
	for i, c := range []byte(s) {
		letter := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// matchAny says whether one of patterns, checked when compiled, matches s.
func matchAny(patterns []string, s string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, s); ok {
			return true
		}
	}
	return false
}
