package hub

import (
	"net/netip"
	"testing"
)

// One address, or one IPv6 /64, gets max slots; a slot given back is free
// again, and an address with none taken leaves nothing behind.
func TestAddrLimit(t *testing.T) {
	l := addrLimit{max: 2}
	a := netip.MustParseAddr("198.51.100.1")
	mapped := netip.MustParseAddr("::ffff:198.51.100.1")
	if !l.acquire(a) || !l.acquire(mapped) {
		t.Fatal("two slots refused")
	}
	if l.acquire(a) {
		t.Fatal("a third slot given to the same IPv4 address (once written IPv4-mapped)")
	}
	if !l.acquire(netip.MustParseAddr("198.51.100.2")) {
		t.Fatal("another address refused")
	}
	l.release(a)
	if !l.acquire(a) {
		t.Fatal("a slot given back is not free")
	}

	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if !l.acquire(v6a) || !l.acquire(v6b) {
		t.Fatal("two slots refused to one /64")
	}
	if l.acquire(netip.MustParseAddr("2001:db8:1:2::77")) {
		t.Fatal("a third slot given to the same /64")
	}
	if !l.acquire(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("another /64 refused")
	}
	for _, x := range []netip.Addr{a, a, netip.MustParseAddr("198.51.100.2"), v6a, v6b, netip.MustParseAddr("2001:db8:1:3::1")} {
		l.release(x)
	}
	if len(l.n) != 0 {
		t.Errorf("entries left after every slot was given back: %v", l.n)
	}
}
