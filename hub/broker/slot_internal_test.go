package broker

import "testing"

// The slots agree with Redis Cluster's own (CLUSTER KEYSLOT), and every
// slot has a tag in it.
func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		slot int
	}{
		{"123456789", 12739}, // the CRC-16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"{user1000}.following", 3443},
		{"foo{}{bar}", 8363},
		{"foo{{bar}}zap", 4015},
		{"imhub:{1:group:G1}:meta", keySlot("1:group:G1")},
	} {
		if got := keySlot(tc.key); got != tc.slot {
			t.Errorf("keySlot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
	}
	for s, tag := range slotTags() {
		if tag == "" || keySlot("x{"+tag+"}y") != s {
			t.Fatalf("slot %d has tag %q", s, tag)
		}
	}
}

// The hash tag is what lies between the first '{' and the next '}', when
// there is something there; otherwise the whole key is hashed.
func TestHashTag(t *testing.T) {
	for key, want := range map[string]string{
		"plain":             "plain",
		"a{tag}b":           "tag",
		"a{tag}b{other}":    "tag",
		"a{}{tag}":          "a{}{tag}",
		"a{{tag}}":          "{tag",
		"a{open":            "a{open",
		"a}b{c}":            "c",
		"{1:group:G1}:meta": "1:group:G1",
		"imhub:{k9}:run":    "k9",
	} {
		if got := hashTag(key); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
}
