package auth

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imhub/imhub/internal/textclip"
)

// A UserSig is the signature the IM's own SDKs log in with (version 2 of
// the IM's TLS signature, documented at
// https://www.tencentcloud.com/document/product/1047/34385). Its form, from
// the outside in:
//
//   - base64 (the standard alphabet) with '*', '-' and '_' standing for
//     '+', '/' and '=', so that it can travel in a URL unescaped;
//   - a zlib stream;
//   - a JSON object: "TLS.ver" "2.0", "TLS.identifier" (the UserID),
//     "TLS.sdkappid", "TLS.time" (when it was made, unix seconds) and
//     "TLS.expire" (its lifetime in seconds) as JSON numbers, "TLS.userbuf"
//     (base64, optional) and "TLS.sig";
//   - "TLS.sig" is the base64 of an HMAC-SHA256 keyed by the app's secret
//     key over one line "name:value\n" for each of TLS.identifier,
//     TLS.sdkappid, TLS.time and TLS.expire, in that order, then
//     TLS.userbuf when it is there.
//
// The numbers are signed as the signer wrote them, so they are read here
// as the digits they are, never through a float.

// Bounds on what a presented UserSig may cost to look at. A real one is
// about 200 bytes; a privilege map in userbuf makes it a few hundred more.
const (
	// MaxUserSigLen is the longest UserSig taken, as presented.
	MaxUserSigLen = 2048
	// maxUserSigDoc bounds the inflated document: a zlib stream of 2 KiB
	// can inflate to megabytes, and it is read only up to this.
	maxUserSigDoc = 4096
)

// userSigVersion is the only version of the format there is a spec for.
const userSigVersion = "2.0"

// UserSig is a verified UserSig: who signed in, to which app, and for how
// long.
type UserSig struct {
	User    string
	App     string
	Issued  time.Time // TLS.time
	Expires time.Time // TLS.time + TLS.expire
}

// Identity is who the UserSig lets in: its user, of its app, until it
// expires, issued at TLS.time (by which a revocation judges it), with the
// groups the IM says the user is in (AllGroups, for the hub to ask) and no
// admin rights.
func (u UserSig) Identity() *Identity {
	return &Identity{User: u.User, App: u.App, AllGroups: true, Expires: u.Expires, Issued: u.Issued, UserSig: true}
}

// userSigDoc is the JSON inside a UserSig.
type userSigDoc struct {
	Ver        string      `json:"TLS.ver"`
	Identifier string      `json:"TLS.identifier"`
	SDKAppID   json.Number `json:"TLS.sdkappid"`
	Time       json.Number `json:"TLS.time"`
	Expire     json.Number `json:"TLS.expire"`
	UserBuf    *string     `json:"TLS.userbuf,omitempty"`
	Sig        string      `json:"TLS.sig"`
}

// signedText is what TLS.sig signs.
func (d *userSigDoc) signedText() []byte {
	var b bytes.Buffer
	line := func(name, value string) {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	line("TLS.identifier", d.Identifier)
	line("TLS.sdkappid", d.SDKAppID.String())
	line("TLS.time", d.Time.String())
	line("TLS.expire", d.Expire.String())
	if d.UserBuf != nil {
		line("TLS.userbuf", *d.UserBuf)
	}
	return b.Bytes()
}

func (d *userSigDoc) mac(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(d.signedText())
	return m.Sum(nil)
}

// The URL-safe alphabet of a UserSig, mapped to and from standard base64.
var (
	fromUserSigAlphabet = strings.NewReplacer("*", "+", "-", "/", "_", "=")
	toUserSigAlphabet   = strings.NewReplacer("+", "*", "/", "-", "=", "_")
)

// inflaters keeps zlib readers between connects: one costs tens of KiB to
// make, and a reconnect storm makes thousands.
var inflaters sync.Pool

func inflate(compressed []byte) ([]byte, error) {
	src := bytes.NewReader(compressed)
	var zr io.ReadCloser
	if r, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(src, nil); err != nil {
			return nil, err
		}
		zr = r
	} else {
		r, err := zlib.NewReader(src)
		if err != nil {
			return nil, err
		}
		zr = r
	}
	defer inflaters.Put(zr)
	doc, err := io.ReadAll(io.LimitReader(zr, maxUserSigDoc+1))
	if err != nil {
		return nil, err
	}
	if len(doc) > maxUserSigDoc {
		return nil, fmt.Errorf("inflates to more than %d bytes", maxUserSigDoc)
	}
	// ReadAll stopped at the stream's end, where zlib checks its sum;
	// bytes after the stream are not part of any UserSig.
	if src.Len() > 0 {
		return nil, errors.New("bytes after the zlib stream")
	}
	return doc, nil
}

// parseUserSig decodes a UserSig into its document without checking the
// signature.
func parseUserSig(s string) (*userSigDoc, error) {
	if len(s) > MaxUserSigLen {
		return nil, fmt.Errorf("longer than %d bytes", MaxUserSigLen)
	}
	std := strings.TrimRight(fromUserSigAlphabet.Replace(s), "=")
	compressed, err := base64.RawStdEncoding.DecodeString(std)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	raw, err := inflate(compressed)
	if err != nil {
		return nil, fmt.Errorf("not zlib: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var d userSigDoc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	if d.Ver != userSigVersion {
		return nil, fmt.Errorf("version %q, not %q", textclip.Cut(d.Ver, 32), userSigVersion)
	}
	if d.Identifier == "" || d.Sig == "" {
		return nil, errors.New("no TLS.identifier or no TLS.sig")
	}
	return &d, nil
}

// maxUnixSeconds is the end of year 9999: times past it are not times.
const maxUnixSeconds = 253402300799

// digits parses a JSON number that must be a plain non-negative integer, as
// every signer writes them.
func digits(n json.Number, name string) (int64, error) {
	s := n.String()
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%s is not a whole number: %q", name, textclip.Cut(s, 32))
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > maxUnixSeconds {
		return 0, fmt.Errorf("%s is out of range: %q", name, textclip.Cut(s, 32))
	}
	return v, nil
}

// UserSigVerifier checks UserSigs of the apps whose secret keys it holds.
// The zero value holds none.
type UserSigVerifier struct {
	keys map[string][]byte
	// Skew is how far in the future a TLS.time may lie, for the app
	// backend's clock; default one minute.
	Skew time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewUserSigVerifier returns a verifier for the apps of keys (SdkAppid to
// the IM's secret key). It keeps its own copy of the keys.
func NewUserSigVerifier(keys map[string][]byte) *UserSigVerifier {
	v := &UserSigVerifier{keys: make(map[string][]byte, len(keys))}
	for app, k := range keys {
		v.keys[app] = bytes.Clone(k)
	}
	return v
}

// Has reports whether the verifier holds app's key.
func (v *UserSigVerifier) Has(app string) bool {
	_, ok := v.keys[app]
	return ok
}

// Verify checks that sig is a UserSig of user for app, signed with app's key
// and not expired. The error is an *Error whose Reason says what failed,
// for metrics; its message is for the operator's debug log, never for the
// client, who is told only that the credential was refused.
func (v *UserSigVerifier) Verify(sig, app, user string) (UserSig, error) {
	key, ok := v.keys[app]
	if !ok {
		return UserSig{}, &Error{Reason: ReasonUnknownApp, Err: errors.New("no IM key for this app")}
	}
	d, err := parseUserSig(sig)
	if err != nil {
		return UserSig{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("usersig: %w", err)}
	}
	got, err := base64.StdEncoding.DecodeString(d.Sig)
	if err != nil || !hmac.Equal(got, d.mac(key)) {
		return UserSig{}, &Error{Reason: ReasonSignature, Err: errors.New("usersig: signature does not match")}
	}
	// The signature holds from here on: what follows was signed with the
	// app's key, and is refused only for what it says.
	if d.Identifier != user || d.SDKAppID.String() != app {
		return UserSig{}, &Error{Reason: ReasonClaims, Err: errors.New("usersig: made for another user or app")}
	}
	issued, err := digits(d.Time, "TLS.time")
	if err != nil {
		return UserSig{}, &Error{Reason: ReasonClaims, Err: fmt.Errorf("usersig: %w", err)}
	}
	ttl, err := digits(d.Expire, "TLS.expire")
	if err != nil {
		return UserSig{}, &Error{Reason: ReasonClaims, Err: fmt.Errorf("usersig: %w", err)}
	}
	if issued+ttl > maxUnixSeconds {
		return UserSig{}, &Error{Reason: ReasonClaims, Err: errors.New("usersig: expires past the year 9999")}
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := v.Skew
	if skew == 0 {
		skew = time.Minute
	}
	t := now()
	u := UserSig{User: user, App: app, Issued: time.Unix(issued, 0), Expires: time.Unix(issued+ttl, 0)}
	if u.Issued.After(t.Add(skew)) {
		return UserSig{}, &Error{Reason: ReasonNotYet, Err: errors.New("usersig: made in the future")}
	}
	if !t.Before(u.Expires) {
		return UserSig{}, &Error{Reason: ReasonExpired, Err: errors.New("usersig: expired")}
	}
	return u, nil
}

// SignUserSig makes a UserSig of user for app with the app's secret key,
// valid for ttl from issued: the hub signs its own as the IM admin to call
// the IM's REST API, and the demo signs its users'.
func SignUserSig(key []byte, app, user string, issued time.Time, ttl time.Duration) (string, error) {
	if user == "" || app == "" || strings.TrimLeft(app, "0123456789") != "" {
		return "", errors.New("sign usersig: the user is empty or the app is not a number")
	}
	if ttl < time.Second {
		return "", errors.New("sign usersig: lifetime under a second")
	}
	d := userSigDoc{
		Ver:        userSigVersion,
		Identifier: user,
		SDKAppID:   json.Number(app),
		Time:       json.Number(strconv.FormatInt(issued.Unix(), 10)),
		Expire:     json.Number(strconv.FormatInt(int64(ttl/time.Second), 10)),
	}
	d.Sig = base64.StdEncoding.EncodeToString(d.mac(key))
	doc, err := json.Marshal(&d)
	if err != nil {
		return "", fmt.Errorf("sign usersig: %w", err)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write(doc); err != nil {
		return "", fmt.Errorf("sign usersig: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("sign usersig: %w", err)
	}
	return toUserSigAlphabet.Replace(base64.StdEncoding.EncodeToString(z.Bytes())), nil
}

// ReadUserSig decodes sig without checking its signature, which takes the
// app's secret key: for a client that holds a UserSig to learn whom it
// names and when it expires, so that it hands over a fresh one in time.
// Nothing it returns is verified; the hub verifies with Verify.
func ReadUserSig(sig string) (UserSig, error) {
	d, err := parseUserSig(sig)
	if err != nil {
		return UserSig{}, fmt.Errorf("read usersig: %w", err)
	}
	issued, err := digits(d.Time, "TLS.time")
	if err != nil {
		return UserSig{}, fmt.Errorf("read usersig: %w", err)
	}
	ttl, err := digits(d.Expire, "TLS.expire")
	if err != nil {
		return UserSig{}, fmt.Errorf("read usersig: %w", err)
	}
	if issued+ttl > maxUnixSeconds {
		return UserSig{}, errors.New("read usersig: expires past the year 9999")
	}
	return UserSig{User: d.Identifier, App: d.SDKAppID.String(), Issued: time.Unix(issued, 0), Expires: time.Unix(issued+ttl, 0)}, nil
}
