package hub

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/textclip"
)

// A client proves who it is with one credential (docs/protocol.md#credentials):
// a JWT, as "Authorization: Bearer <jwt>" or the token query parameter,
// or, for an app whose IM key the hub holds, the IM's own UserSig, as the
// usersig query parameter or "Authorization: UserSig <sig>", with the
// sdkappid and userid query parameters naming whose it is.

// credential is what a client presented.
type credential struct {
	sig bool // a UserSig; otherwise a JWT
	jwt string
	// The UserSig, and the app and user the client says it is of.
	userSig, app, user string
}

// Names of the credential label of imhub_ws_auth_failures_total.
const (
	credJWT     = "jwt"
	credUserSig = "usersig"
)

func (c credential) label() string {
	if c.sig {
		return credUserSig
	}
	return credJWT
}

// Reasons a credential is refused before it is verified, beside the
// auth.Reason values.
const (
	// reasonMixed: a JWT and a UserSig together, or one of them twice.
	reasonMixed = "mixed"
)

// The answers a refused UserSig gets, as close reasons and refresh
// errors: one for every failure but expiry, so that a client learns
// nothing of which part failed (the debug log says).
const (
	userSigRefused = "usersig refused"
	userSigExpired = "usersig expired"
)

// errMixed: more than one credential, or one given twice.
var errMixed = &auth.Error{Reason: reasonMixed, Err: errors.New("give one credential: a token or a usersig (with sdkappid and userid), each once")}

// credentialOf reads the credential of a /ws request. Only its own
// query parameters are read, each of which must come at most once: a
// proxy in front of the hub must not be shown one value while the hub
// acts on another.
func credentialOf(r *http.Request) (credential, error) {
	var c credential
	headerSig := false
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			c.jwt = strings.TrimSpace(t)
		} else if s, ok := strings.CutPrefix(a, "UserSig"); ok && (s == "" || s[0] == ' ') {
			// "UserSig" alone: an empty one, its space trimmed on the way.
			c.userSig, headerSig = strings.TrimSpace(s), true
		}
	}
	// As before UserSigs: a pair that does not decode is left out.
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for _, k := range []string{"usersig", "sdkappid", "userid"} {
		if len(q[k]) > 1 {
			c.sig = true
			return c, errMixed
		}
	}
	if c.jwt == "" {
		c.jwt = q.Get("token")
	}
	if q.Has("usersig") {
		if headerSig {
			c.sig = true
			return c, errMixed
		}
		c.userSig, headerSig = q.Get("usersig"), true
	}
	if !headerSig {
		return c, nil // a JWT, or nothing
	}
	c.sig = true
	if c.jwt != "" {
		return c, errMixed
	}
	c.app, c.user = q.Get("sdkappid"), q.Get("userid")
	return c, nil
}

// verify checks c and says who it names. The error is an *auth.Error.
func (h *Hub) verify(c credential) (*auth.Identity, error) {
	if !c.sig {
		if h.auth == nil {
			return nil, &auth.Error{Reason: auth.ReasonMissing, Err: errors.New("this hub takes no tokens: connect with a usersig, sdkappid and userid")}
		}
		return h.auth.Verify(c.jwt)
	}
	return h.verifyUserSig(c.userSig, c.app, c.user)
}

// verifyUserSig checks sig as app's user's UserSig. One longer than any
// real one is refused before it is decoded, and so is one of an app whose
// key the hub does not hold.
func (h *Hub) verifyUserSig(sig, app, user string) (*auth.Identity, error) {
	switch {
	case sig == "" || app == "" || user == "":
		return nil, &auth.Error{Reason: auth.ReasonMissing, Err: errors.New("usersig: usersig, sdkappid and userid are all needed")}
	case len(sig) > auth.MaxUserSigLen:
		return nil, &auth.Error{Reason: auth.ReasonMalformed, Err: errors.New("usersig: longer than any the IM makes")}
	case h.cfg.UserSigs == nil || !h.cfg.UserSigs.Has(app):
		return nil, &auth.Error{Reason: auth.ReasonUnknownApp, Err: errors.New("usersig: the hub holds no IM key for this app")}
	}
	u, err := h.cfg.UserSigs.Verify(sig, app, user)
	if err != nil {
		return nil, err
	}
	return u.Identity(), nil
}

// refused counts a credential refused at connect or refresh and says what
// the client is told: the error itself for a token, one of two fixed
// answers for a UserSig, whose failures the debug log alone tells apart.
func (h *Hub) refused(c credential, err error, at string) string {
	h.m.authFailures.WithLabelValues(reasonOf(err), c.label()).Inc()
	if !c.sig || errors.Is(err, errMixed) {
		return err.Error()
	}
	h.log.Debug("usersig refused", "at", at, "reason", reasonOf(err), "app", textclip.Cut(c.app, maxEcho), "user", textclip.Cut(c.user, maxEcho), "err", err)
	if auth.Expired(err) {
		return userSigExpired
	}
	return userSigRefused
}
