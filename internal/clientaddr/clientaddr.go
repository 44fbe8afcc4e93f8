// Package clientaddr finds the address of the client behind a request: the
// connection's peer, or, when that peer is a trusted load balancer, the
// address it forwarded in X-Forwarded-For. Start with [Resolver]; handlers
// read the result with [FromRequest].
package clientaddr

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Prefixes is a set of address ranges.
type Prefixes []netip.Prefix

// Parse reads a comma-separated list of CIDRs ("10.0.0.0/8, 2001:db8::/32")
// or single addresses ("203.0.113.7", taken as /32 or /128). Empty items
// are skipped.
func Parse(s string) (Prefixes, error) {
	var ps Prefixes
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", item)
			}
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				// ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are
				// matched unmapped.
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a CIDR such as 10.0.0.0/8", item)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

// Contains reports whether a is in one of the ranges. An IPv4 address
// written as IPv6 (::ffff:10.0.0.1) is matched as IPv4.
func (ps Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String lists the ranges as Parse reads them.
func (ps Prefixes) String() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Resolver finds client addresses. Its zero value believes no proxy: the
// client is the connection's peer.
type Resolver struct {
	// Trusted are the load balancers whose X-Forwarded-For is believed.
	Trusted Prefixes
}

// Resolve returns the client address of a request that came from
// remoteAddr (host:port, as in http.Request.RemoteAddr) with the given
// X-Forwarded-For header lines.
//
// When the peer is trusted, the header is read from the right, the end
// each proxy appends to, and the first address not in the trusted set is
// the client: everything to its left was written by the client or by
// proxies nobody vouches for. If every address is trusted, the leftmost
// is the client. An entry that is not an address ends the walk: the
// client is the last address read, the proxy that passed it on. The
// result is the zero Addr only when remoteAddr itself is not an address.
func (r *Resolver) Resolve(remoteAddr string, xff []string) netip.Addr {
	peer := parseAddr(remoteAddr)
	if !peer.IsValid() || len(xff) == 0 || !r.Trusted.Contains(peer) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a := parseAddr(strings.TrimSpace(entries[j]))
			if !a.IsValid() {
				return client
			}
			client = a
			if !r.Trusted.Contains(a) {
				return client
			}
		}
	}
	return client
}

// parseAddr reads "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]"
// or "[2001:db8::1]:80", the forms peers and proxies write.
func parseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

type ctxKey struct{}

// Handler resolves each request's client address once and gives it to
// next, which reads it with [FromRequest].
func (r *Resolver) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a := r.Resolve(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
		next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), ctxKey{}, a)))
	})
}

// FromRequest returns the client address a [Resolver.Handler] found for
// req, or, without one in front, the connection's peer.
func FromRequest(req *http.Request) netip.Addr {
	if a, ok := req.Context().Value(ctxKey{}).(netip.Addr); ok {
		return a
	}
	return parseAddr(req.RemoteAddr)
}
