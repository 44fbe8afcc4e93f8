package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Key is one app's API key.
type Key struct {
	App string
	Key string
}

// keyring finds the app of a presented key. Keys are compared as SHA-256
// digests, all of them every time, in constant time: neither the time an
// answer takes nor where a loop stopped tells a caller how close a guess
// came, or which app's key it nearly matched.
type keyring struct {
	apps    []string
	digests [][sha256.Size]byte
}

func newKeyring(keys []Key) keyring {
	var k keyring
	for _, key := range keys {
		k.apps = append(k.apps, key.App)
		k.digests = append(k.digests, sha256.Sum256([]byte(key.Key)))
	}
	return k
}

// app returns the app whose key was presented, "" for none.
func (k keyring) app(presented string) string {
	d := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.digests {
		if subtle.ConstantTimeCompare(d[:], k.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return ""
	}
	return k.apps[found]
}

// presentedKey is the key of "Authorization: apikey <key>", "" if none.
func presentedKey(r *http.Request) string {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "apikey") {
		return ""
	}
	return strings.TrimSpace(key)
}
