package clientaddr

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func mustParse(t *testing.T, s string) Prefixes {
	t.Helper()
	ps, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestResolve(t *testing.T) {
	lb := &Resolver{Trusted: mustParse(t, "10.0.0.0/8, 192.168.1.1, fd00::/8")}
	for _, tc := range []struct {
		name   string
		r      *Resolver
		remote string
		xff    []string
		want   string
	}{
		{"no proxies trusted, no header", &Resolver{}, "203.0.113.7:5000", nil, "203.0.113.7"},
		{"no proxies trusted: header ignored", &Resolver{}, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer, no header", lb, "10.0.0.2:5000", nil, "10.0.0.2"},
		{"header from an untrusted peer ignored", lb, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"one trusted hop", lb, "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client's own claim left of the real address", lb, "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"several trusted hops", lb, "10.0.0.2:5000", []string{"198.51.100.1, 192.168.1.1, 10.9.9.9"}, "198.51.100.1"},
		{"hops over several header lines", lb, "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1", "192.168.1.1", "10.9.9.9"}, "198.51.100.1"},
		{"every hop trusted: the leftmost", lb, "10.0.0.2:5000", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage header: the peer", lb, "10.0.0.2:5000", []string{"not-an-address"}, "10.0.0.2"},
		{"garbage left of the real address ignored", lb, "10.0.0.2:5000", []string{"<script>, 198.51.100.1"}, "198.51.100.1"},
		{"garbage behind a trusted hop: that hop", lb, "10.0.0.2:5000", []string{"junk, 10.3.3.3"}, "10.3.3.3"},
		{"empty entry ends the walk", lb, "10.0.0.2:5000", []string{", 10.3.3.3"}, "10.3.3.3"},
		{"empty header", lb, "10.0.0.2:5000", []string{""}, "10.0.0.2"},
		{"address with port in the header", lb, "10.0.0.2:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 peer and header", lb, "[fd00::1]:443", []string{"2001:db8::7"}, "2001:db8::7"},
		{"bracketed IPv6 in the header", lb, "10.0.0.2:5000", []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		{"IPv4-mapped peer matched as IPv4", lb, "[::ffff:10.0.0.2]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"peer that is no address", lb, "@", []string{"198.51.100.1"}, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Resolve(tc.remote, tc.xff).String(); got != tc.want {
				t.Errorf("Resolve(%q, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ps := mustParse(t, " 10.0.0.0/8 ,, 203.0.113.7, 2001:db8::/32, 10.1.2.3/16")
	if got, want := ps.String(), "10.0.0.0/8,203.0.113.7/32,2001:db8::/32,10.1.0.0/16"; got != want {
		t.Errorf("Parse = %s, want %s", got, want)
	}
	for addr, want := range map[string]bool{"10.200.0.1": true, "203.0.113.7": true, "203.0.113.8": false, "2001:db8::1": true, "::ffff:10.0.0.1": true, "11.0.0.1": false} {
		if got := ps.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	// A range written as IPv4-mapped IPv6 matches IPv4 peers.
	mapped := mustParse(t, "::ffff:10.0.0.0/104")
	if got, want := mapped.String(), "10.0.0.0/8"; got != want {
		t.Errorf("Parse(::ffff:10.0.0.0/104) = %s, want %s", got, want)
	}
	for addr, want := range map[string]bool{"10.9.8.7": true, "::ffff:10.9.8.7": true, "11.0.0.1": false} {
		if got := mapped.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("mapped range: Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/x", "1.2.3"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) gave no error", bad)
		}
	}
}

func TestFromRequest(t *testing.T) {
	r := &Resolver{Trusted: mustParse(t, "127.0.0.1")}
	var got netip.Addr
	h := r.Handler(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) { got = FromRequest(req) }))
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:9000"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got.String() != "198.51.100.1" {
		t.Errorf("behind the handler: %s, want 198.51.100.1", got)
	}
	if a := FromRequest(req); a.String() != "127.0.0.1" {
		t.Errorf("without the handler: %s, want the peer 127.0.0.1", a)
	}
}
