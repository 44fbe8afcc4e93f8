package forward

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/internal/redact"
)

// backend is one app's backend as attempts reach it: its URL split into
// what a request is sent to and the operator's own query, and the name it
// goes by in logs and errors.
type backend struct {
	// base is the URL without query or fragment.
	base *url.URL
	// query is the operator's own parameters, sent before the callback's.
	query []param
	// name is the URL as scheme://host/path: the query of an attempt
	// holds a fresh Sign, good for any body for a minute, and the
	// operator's query or user info may hold credentials of their own.
	name  string
	token string
	// err is why the URL could not be used, if it could not.
	err error
}

func newBackend(t Target) *backend {
	b := &backend{name: redact.URL(t.URL), token: t.Token}
	u, err := url.Parse(t.URL)
	switch {
	case err != nil:
		b.err = fmt.Errorf("the backend URL %s does not parse", b.name)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		b.err = fmt.Errorf("the backend URL %s is not an http or https URL", b.name)
	default:
		b.query = parseQuery(u.RawQuery)
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		b.base = u
	}
	return b
}

// url is the URL an attempt at a callback with query raw is posted to:
// the operator's query, then the callback's with RequestTime and Sign
// made afresh for now.
func (b *backend) url(raw string, now time.Time) *url.URL {
	u := *b.base
	ps := append(slices.Clone(b.query), parseQuery(raw)...)
	u.RawQuery = encodeQuery(resign(ps, len(b.query), b.token, now))
	return &u
}

// postError is err of a request to the backend, without the URL that
// net/http puts in it (*url.Error): with the query, that is a working
// signature.
func (b *backend) postError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("post to %s: %w", b.name, err)
}

// param is one name=value of a query, both decoded.
type param struct{ name, value string }

// parseQuery splits a raw query into its parameters, in order, each name
// and value decoded. A pair that does not decode, or holds a ';', is
// dropped, as url.ParseQuery and the callback handler drop it. What is
// left is encoded again by encodeQuery, so that a raw '#' or space in the
// IM's query reaches the backend as a value, not as the start of a
// fragment that would cut the query short.
func parseQuery(raw string) []param {
	var ps []param
	for pair := range strings.SplitSeq(raw, "&") {
		if p, ok := decodePair(pair); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// decodePair is one name=value of a query, both decoded. It refuses what
// a server reading the query with url.ParseQuery would not see either (a
// pair that is empty, holds a ';' or does not decode), and a pair with no
// name, which no backend could read.
func decodePair(pair string) (param, bool) {
	if pair == "" || strings.ContainsRune(pair, ';') {
		return param{}, false
	}
	rawName, rawValue, _ := strings.Cut(pair, "=")
	name, err := url.QueryUnescape(rawName)
	if err != nil || name == "" {
		return param{}, false
	}
	value, err := url.QueryUnescape(rawValue)
	if err != nil {
		return param{}, false
	}
	return param{name, value}, true
}

// WithoutSign is a callback's raw query with every Sign left out, its
// other parameters in order and encoded again: a dead letter's query as
// it is shown, where a signature is of no use (a replay is signed
// afresh) and should not be seen.
func WithoutSign(raw string) string {
	ps := parseQuery(raw)
	return encodeQuery(slices.DeleteFunc(ps, func(p param) bool { return p.name == "Sign" }))
}

// encodeQuery is ps as a query string, in order.
func encodeQuery(ps []param) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.value))
	}
	return b.String()
}

// resign returns ps with RequestTime set to now and Sign computed afresh
// with token, from the parameter at from on (the callback's), leaving
// every other parameter as it was, in place. Without a token ps is
// unchanged.
func resign(ps []param, from int, token string, now time.Time) []param {
	if token == "" {
		return ps
	}
	rt := strconv.FormatInt(now.Unix(), 10)
	sign := callback.Sign(token, rt)
	var haveRT, haveSign bool
	for i := from; i < len(ps); i++ {
		switch ps[i].name {
		case "RequestTime":
			ps[i].value, haveRT = rt, true
		case "Sign":
			ps[i].value, haveSign = sign, true
		}
	}
	if !haveRT {
		ps = append(ps, param{"RequestTime", rt})
	}
	if !haveSign {
		ps = append(ps, param{"Sign", sign})
	}
	return ps
}
