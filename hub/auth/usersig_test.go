package auth

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vector is one UserSig made by the IM's own signing library
// (testdata/usersig/gen.mjs says how).
type vector struct {
	App     string `json:"app"`
	Key     string `json:"key"`
	User    string `json:"user"`
	Time    int64  `json:"time"`
	Expire  int64  `json:"expire"`
	UserBuf bool   `json:"userbuf"`
	UserSig string `json:"usersig"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/usersig/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// verifierAt verifies with the keys of vs, its clock at now.
func verifierAt(vs []vector, now time.Time) *UserSigVerifier {
	keys := map[string][]byte{}
	for _, v := range vs {
		keys[v.App] = []byte(v.Key)
	}
	u := NewUserSigVerifier(keys)
	u.Now = func() time.Time { return now }
	return u
}

func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "not an *Error: " + err.Error()
}

// checkVector holds the verifier to one vector of the IM's library: taken
// while it lives, for its user and app only, expired at its end.
func checkVector(t *testing.T, v vector) {
	t.Helper()
	at := func(sec int64) *UserSigVerifier { return verifierAt([]vector{v}, time.Unix(sec, 0)) }
	u, err := at(v.Time).Verify(v.UserSig, v.App, v.User)
	if err != nil {
		t.Fatalf("%s of app %s: the IM's own UserSig refused: %v", v.User, v.App, err)
	}
	if u.User != v.User || u.App != v.App || u.Issued.Unix() != v.Time || u.Expires.Unix() != v.Time+v.Expire {
		t.Fatalf("verified as %+v, want %s/%s from %d for %d s", u, v.App, v.User, v.Time, v.Expire)
	}
	if _, err := at(v.Time+v.Expire-1).Verify(v.UserSig, v.App, v.User); err != nil {
		t.Errorf("refused in its last second: %v", err)
	}
	if _, err := at(v.Time+v.Expire).Verify(v.UserSig, v.App, v.User); reason(err) != ReasonExpired {
		t.Errorf("at its expiry: %v, want expired", err)
	}
	if _, err := at(v.Time).Verify(v.UserSig, v.App, v.User+"x"); reason(err) != ReasonClaims {
		t.Errorf("for another user: %v, want claims", err)
	}
	other := NewUserSigVerifier(map[string][]byte{v.App: []byte(v.Key + "0")})
	other.Now = func() time.Time { return time.Unix(v.Time, 0) }
	if _, err := other.Verify(v.UserSig, v.App, v.User); reason(err) != ReasonSignature {
		t.Errorf("with another key: %v, want signature", err)
	}
}

func TestUserSigOfTheIMLibrary(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.User, func(t *testing.T) { checkVector(t, v) })
	}
}

// TestUserSigAgainstTheIMLibrary runs the IM's own library for fresh random
// vectors, and has SignUserSig sign the same: the documents must be the
// same, field for field, signature included. make test installs the
// library; run elsewhere without it, the test says so and does not pass.
func TestUserSigAgainstTheIMLibrary(t *testing.T) {
	modules, err := filepath.Abs("../../.cache/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "tls-sig-api-v2")); err != nil {
		msg := "the IM's signing library (npm tls-sig-api-v2) is not installed in .cache/node: run make test, which installs it"
		if os.Getenv("IMHUB_REQUIRE_NODE_TESTS") != "" {
			t.Fatal(msg)
		}
		t.Skip("NOT CHECKED: " + msg)
	}
	cmd := exec.Command("node", "testdata/usersig/gen.mjs", "random", "60")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node gen.mjs: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(out, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		checkVector(t, v)
		if v.UserBuf {
			continue // the hub never signs a privilege map
		}
		ours, err := SignUserSig([]byte(v.Key), v.App, v.User, time.Unix(v.Time, 0), time.Duration(v.Expire)*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := openDoc(t, ours), openDoc(t, v.UserSig); a != b {
			t.Errorf("SignUserSig made\n%s\nthe IM's library\n%s", a, b)
		}
	}
}

// openDoc unwraps a UserSig by hand, as a reader of the documentation
// would, into its document with keys sorted.
func openDoc(t *testing.T, s string) string {
	t.Helper()
	b64 := strings.NewReplacer("*", "+", "-", "/", "_", "=").Replace(s)
	z, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	sorted, _ := json.Marshal(doc) // maps marshal with sorted keys
	return string(sorted)
}

// craft makes a UserSig of any document, written field by field as raw
// JSON, and signs the lines named in signed with key: a second
// implementation, kept apart from the one under test, that can also make
// what no signer would.
func craft(key string, fields [][2]string, signed []string, mangle func([]byte) []byte) string {
	var mac bytes.Buffer
	lit := map[string]string{}
	for _, f := range fields {
		lit[f[0]] = f[1]
	}
	for _, name := range signed {
		v := lit[name]
		if strings.HasPrefix(v, `"`) {
			json.Unmarshal([]byte(v), &v)
		}
		mac.WriteString(name + ":" + v + "\n")
	}
	h := hmac.New(sha256.New, []byte(key))
	h.Write(mac.Bytes())
	doc := "{"
	for i, f := range fields {
		if i > 0 {
			doc += ","
		}
		doc += `"` + f[0] + `":` + f[1]
	}
	doc += `,"TLS.sig":"` + base64.StdEncoding.EncodeToString(h.Sum(nil)) + `"}`
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write([]byte(doc))
	w.Close()
	b := z.Bytes()
	if mangle != nil {
		b = mangle(b)
	}
	return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(base64.StdEncoding.EncodeToString(b))
}

var fourLines = []string{"TLS.identifier", "TLS.sdkappid", "TLS.time", "TLS.expire"}

func doc(ver, user, app, issued, expire string) [][2]string {
	return [][2]string{{"TLS.ver", ver}, {"TLS.identifier", user}, {"TLS.sdkappid", app}, {"TLS.expire", expire}, {"TLS.time", issued}}
}

func zlibOf(b []byte) string {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(b)
	w.Close()
	return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(base64.StdEncoding.EncodeToString(z.Bytes()))
}

func TestUserSigRefusals(t *testing.T) {
	const key = "the-app-secret-key"
	now := time.Unix(1796100000, 0)
	ok := doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `86400`)
	bomb := zlibOf(bytes.Repeat([]byte(" "), 1<<20)) // 1 MiB of spaces from about 1 KiB
	cases := []struct {
		name, sig, user, app, reason string
	}{
		{"crafted as documented is taken", craft(key, ok, fourLines, nil), "jared", "1400000000", ""},
		{"empty", "", "jared", "1400000000", ReasonMalformed},
		{"not base64", "eJ!!", "jared", "1400000000", ReasonMalformed},
		{"not zlib", strings.Repeat("QUFB", 20), "jared", "1400000000", ReasonMalformed},
		{"longer than the cap", strings.Repeat("A", MaxUserSigLen+1), "jared", "1400000000", ReasonMalformed},
		{"a zlib bomb", bomb, "jared", "1400000000", ReasonMalformed},
		{"truncated", craft(key, ok, fourLines, nil)[:60], "jared", "1400000000", ReasonMalformed},
		{"a broken zlib sum", craft(key, ok, fourLines, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "jared", "1400000000", ReasonMalformed},
		{"bytes after the stream", craft(key, ok, fourLines, func(b []byte) []byte { return append(b, 0) }), "jared", "1400000000", ReasonMalformed},
		{"JSON that is not an object", zlibOf([]byte(`["TLS.ver"]`)), "jared", "1400000000", ReasonMalformed},
		{"two JSON values", zlibOf([]byte(`{"TLS.ver":"2.0","TLS.identifier":"jared","TLS.sig":"x"} {}`)), "jared", "1400000000", ReasonMalformed},
		{"version 1", craft(key, doc(`"1.0"`, `"jared"`, `1400000000`, `1796100000`, `86400`), fourLines, nil), "jared", "1400000000", ReasonMalformed},
		{"no signature", zlibOf([]byte(`{"TLS.ver":"2.0","TLS.identifier":"jared","TLS.sdkappid":1400000000,"TLS.time":1,"TLS.expire":1}`)), "jared", "1400000000", ReasonMalformed},
		{"another key", craft("another", ok, fourLines, nil), "jared", "1400000000", ReasonSignature},
		{"the time left out of the signature", craft(key, ok, []string{"TLS.identifier", "TLS.sdkappid", "TLS.expire"}, nil), "jared", "1400000000", ReasonSignature},
		{"a userbuf not signed", craft(key, append(ok, [2]string{"TLS.userbuf", `"AAAA"`}), fourLines, nil), "jared", "1400000000", ReasonSignature},
		{"a signed userbuf is taken", craft(key, append(ok, [2]string{"TLS.userbuf", `"AAAA"`}), append(fourLines, "TLS.userbuf"), nil), "jared", "1400000000", ""},
		{"another user's", craft(key, ok, fourLines, nil), "bob", "1400000000", ReasonClaims},
		{"another app's", craft(key, doc(`"2.0"`, `"jared"`, `1400000001`, `1796100000`, `86400`), fourLines, nil), "jared", "1400000000", ReasonClaims},
		{"the app as a string is taken: its digits are what is signed", craft(key, doc(`"2.0"`, `"jared"`, `"1400000000"`, `1796100000`, `86400`), fourLines, nil), "jared", "1400000000", ""},
		{"a time in exponent form", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1.7961e9`, `86400`), fourLines, nil), "jared", "1400000000", ReasonClaims},
		{"a negative lifetime", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `-1`), fourLines, nil), "jared", "1400000000", ReasonClaims},
		{"a lifetime past the year 9999", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `253402300000`), fourLines, nil), "jared", "1400000000", ReasonClaims},
		{"a lifetime that overflows", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `9223372036854775807`), fourLines, nil), "jared", "1400000000", ReasonClaims},
		{"a time with a leading zero", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `01796100000`, `86400`), fourLines, nil), "jared", "1400000000", ReasonMalformed},
		{"made in the future", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1796100600`, `86400`), fourLines, nil), "jared", "1400000000", ReasonNotYet},
		{"expired", craft(key, doc(`"2.0"`, `"jared"`, `1400000000`, `1796000000`, `100000`), fourLines, nil), "jared", "1400000000", ReasonExpired},
		{"an app without a key", craft(key, ok, fourLines, nil), "jared", "1400000009", ReasonUnknownApp},
	}
	v := NewUserSigVerifier(map[string][]byte{"1400000000": []byte(key)})
	v.Now = func() time.Time { return now }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.sig, c.app, c.user)
			switch {
			case c.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.reason != "" && err == nil:
				t.Fatalf("taken, want %s", c.reason)
			case c.reason != "" && reason(err) != c.reason:
				t.Fatalf("refused as %s (%v), want %s", reason(err), err, c.reason)
			}
		})
	}
}

// A leading zero is not valid JSON, so it is refused as malformed before
// its digits are looked at; "a time in exponent form" shows the digits
// check on a number JSON takes.

func TestSignUserSigRefusesWhatNoSignerMakes(t *testing.T) {
	for _, c := range []struct {
		app, user string
		ttl       time.Duration
	}{
		{"", "jared", time.Hour},
		{"14000x", "jared", time.Hour},
		{"1400000000", "", time.Hour},
		{"1400000000", "jared", time.Millisecond},
	} {
		if _, err := SignUserSig([]byte("k"), c.app, c.user, time.Now(), c.ttl); err == nil {
			t.Errorf("signed app %q user %q for %v", c.app, c.user, c.ttl)
		}
	}
}

func FuzzUserSig(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		f.Add(v.UserSig)
	}
	f.Add(craft("k", doc(`"2.0"`, `"jared"`, `1400000000`, `1796100000`, `86400`), fourLines, nil))
	f.Add("")
	f.Add("eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80")
	v := verifierAt(vs, time.Unix(vs[0].Time, 0))
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseUserSig(s)
		if err == nil && d.Identifier == "" {
			t.Fatal("parsed a UserSig without an identifier")
		}
		for _, vec := range vs {
			u, err := v.Verify(s, vec.App, vec.User)
			if err == nil && (u.User != vec.User || u.App != vec.App || !u.Expires.After(u.Issued)) {
				t.Fatalf("verified as %+v for %s/%s", u, vec.App, vec.User)
			}
		}
	})
}

func BenchmarkUserSigVerify(b *testing.B) {
	vs := loadVectors(b)
	v := verifierAt(vs, time.Unix(vs[0].Time, 0))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(vs[0].UserSig, vs[0].App, vs[0].User); err != nil {
			b.Fatal(err)
		}
	}
}
