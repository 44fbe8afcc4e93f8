package hub

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// refusalEvery is how often at most one address's refusals are logged.
const refusalEvery = time.Minute

// maxRefusalAddrs bounds the addresses refusalLog remembers; past it the
// refusals of further addresses are told together, as "others".
const maxRefusalAddrs = 4096

// proxyHint is said with a refusal of a private address when no proxy is
// trusted: behind a load balancer or ingress every client arrives from
// its address, and one limit then holds them all.
const proxyHint = "-trusted-proxies is empty and this address is private: if a load balancer or ingress stands in front of the hub, every client arrives from its address; set -trusted-proxies to its range so that clients are counted by their own"

// refusalLog logs the connections refused for their address's limit
// (MaxConnsPerIP): an address's first at once, then at most one line a
// minute per address with how many were refused since its last line, so
// that a client retrying in a loop cannot flood the log.
type refusalLog struct {
	log   *slog.Logger
	limit int
	// proxied says the addresses come from trusted proxies' headers; when
	// false, a private address gets proxyHint.
	proxied bool
	now     func() time.Time

	mu     sync.Mutex
	byAddr map[netip.Addr]*refusals
	others refusals // the addresses past maxRefusalAddrs
}

// refusals are one address's refusals since its last line.
type refusals struct {
	logged time.Time // when its last line was written; zero: never
	count  int       // refused since then, not yet told
}

func newRefusalLog(log *slog.Logger, limit int, proxied bool) *refusalLog {
	return &refusalLog{log: log, limit: limit, proxied: proxied, now: time.Now, byAddr: make(map[netip.Addr]*refusals)}
}

// refused counts one refusal of the address key (an addrKey) and logs it
// if key's minute has passed.
func (l *refusalLog) refused(key netip.Addr) {
	l.mu.Lock()
	now := l.now()
	r, others := l.entry(key, now)
	r.count++
	due := r.logged.IsZero() || now.Sub(r.logged) >= refusalEvery
	n := r.count
	if due {
		r.logged, r.count = now, 0
	}
	l.mu.Unlock()
	if !due {
		return
	}
	attrs := []any{"limit", l.limit, "refused", n}
	if others {
		l.log.Warn("connections refused: too many from their addresses (more addresses than are told one by one)", attrs...)
		return
	}
	attrs = append([]any{"addr", key.String()}, attrs...)
	if !l.proxied && (key.IsPrivate() || key.IsLoopback()) {
		attrs = append(attrs, "hint", proxyHint)
	}
	l.log.Warn("connections refused: too many from this address (-max-conns-per-ip)", attrs...)
}

// entry is key's refusals, made if need be; when the table is full it
// forgets the addresses whose minute has passed, and if it is still full
// it is the shared one of the others (reported true). l.mu is held.
func (l *refusalLog) entry(key netip.Addr, now time.Time) (*refusals, bool) {
	if r, ok := l.byAddr[key]; ok {
		return r, false
	}
	if len(l.byAddr) >= maxRefusalAddrs {
		for k, r := range l.byAddr {
			// What such an address was refused since its line goes
			// untold: a refusal after it would have been told.
			if now.Sub(r.logged) >= refusalEvery {
				delete(l.byAddr, k)
			}
		}
		if len(l.byAddr) >= maxRefusalAddrs {
			return &l.others, true
		}
	}
	r := &refusals{}
	l.byAddr[key] = r
	return r, false
}
