package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// ReadUserSig reads the IM library's UserSigs as they are, whatever the
// key or the clock: a client learns whom one names and when it ends.
func TestReadUserSig(t *testing.T) {
	for _, v := range loadVectors(t) {
		u, err := ReadUserSig(v.UserSig)
		if err != nil {
			t.Fatalf("%s of app %s: %v", v.User, v.App, err)
		}
		want := UserSig{User: v.User, App: v.App, Issued: time.Unix(v.Time, 0), Expires: time.Unix(v.Time+v.Expire, 0)}
		if u != want {
			t.Errorf("read as %+v, want %+v", u, want)
		}
	}
	// Signed with any key, long expired: read all the same.
	old, err := SignUserSig([]byte("any key"), "1400000000", "jared", time.Unix(1000000000, 0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := ReadUserSig(old); err != nil || !u.Expires.Equal(time.Unix(1000003600, 0)) {
		t.Errorf("an expired UserSig read as %+v, %v", u, err)
	}
}

func TestReadUserSigRefusals(t *testing.T) {
	for _, c := range []struct{ name, sig, want string }{
		{"empty", "", "not zlib"},
		{"not base64", "eJ!!", "not base64"},
		{"not zlib", strings.Repeat("QUFB", 20), "not zlib"},
		{"longer than the cap", strings.Repeat("A", MaxUserSigLen+1), "longer than"},
		{"a zlib bomb", zlibOf(bytes.Repeat([]byte(" "), 1<<20)), "inflates to more than"},
		{"version 1", craft("k", doc(`"1.0"`, `"jared"`, `1400000000`, `1796100000`, `86400`), fourLines, nil), "version"},
		{"no signature", zlibOf([]byte(`{"TLS.ver":"2.0","TLS.identifier":"jared","TLS.sdkappid":1400000000,"TLS.time":1,"TLS.expire":1}`)), "no TLS.sig"},
		{"a time in exponent form", craft("k", doc(`"2.0"`, `"jared"`, `1400000000`, `1.7961e9`, `86400`), fourLines, nil), "TLS.time is not a whole number"},
		{"a negative lifetime", craft("k", doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `-1`), fourLines, nil), "TLS.expire is not a whole number"},
		{"a lifetime past the year 9999", craft("k", doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `253402300000`), fourLines, nil), "past the year 9999"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := ReadUserSig(c.sig)
			if err == nil {
				t.Fatalf("read as %+v", u)
			}
			if !strings.HasPrefix(err.Error(), "read usersig: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to say %q", err, c.want)
			}
		})
	}
}
