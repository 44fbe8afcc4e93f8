package callback

import (
	"net/url"
	"strings"
)

// query is what a callback's query string says, each parameter as
// url.Values.Get would give it: the first value that decodes.
type query struct {
	app, command, clientIP, platform, requestTime, sign string
}

// maxQuickParams bounds the parameters readQuery reads itself; a query with
// more (the IM sends seven) goes through url.ParseQuery and its limits.
const maxQuickParams = 64

// readQuery reads the parameters the handler uses from a raw query, as
// url.ParseQuery does, without building a map of every parameter.
func readQuery(raw string) query {
	var q query
	if strings.Count(raw, "&") >= maxQuickParams {
		v, _ := url.ParseQuery(raw)
		return query{app: v.Get("SdkAppid"), command: v.Get("CallbackCommand"), clientIP: v.Get("ClientIP"),
			platform: v.Get("OptPlatform"), requestTime: v.Get("RequestTime"), sign: v.Get("Sign")}
	}
	var set [6]bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue // url.ParseQuery skips these too
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := unescapeQuery(k)
		if !ok {
			continue
		}
		var i int
		var dst *string
		switch k {
		case "SdkAppid":
			i, dst = 0, &q.app
		case "CallbackCommand":
			i, dst = 1, &q.command
		case "ClientIP":
			i, dst = 2, &q.clientIP
		case "OptPlatform":
			i, dst = 3, &q.platform
		case "RequestTime":
			i, dst = 4, &q.requestTime
		case "Sign":
			i, dst = 5, &q.sign
		default:
			continue
		}
		if set[i] {
			continue
		}
		if v, ok = unescapeQuery(v); ok {
			*dst, set[i] = v, true
		}
	}
	return q
}

// unescapeQuery is url.QueryUnescape, without a copy for text that has
// nothing to unescape.
func unescapeQuery(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	s, err := url.QueryUnescape(s)
	return s, err == nil
}
