package hub

import (
	"net/netip"
	"sync"
)

// addrLimit counts the sessions of each client address, so that one
// address cannot take a node's every connection.
type addrLimit struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

// addrKey is what the limit counts by: the address, or for IPv6 its /64,
// which one subscriber holds whole and can pick addresses from at will.
func addrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire takes a slot of a's, or reports that its slots are all taken.
func (l *addrLimit) acquire(a netip.Addr) bool {
	k := addrKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[k] >= l.max {
		return false
	}
	if l.n == nil {
		l.n = make(map[netip.Addr]int)
	}
	l.n[k]++
	return true
}

// release gives back a slot that acquire took.
func (l *addrLimit) release(a netip.Addr) {
	k := addrKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[k] <= 1 {
		delete(l.n, k) // no entry outlives an address's last session
		return
	}
	l.n[k]--
}
