package main

import (
	"net/http"
	"net/url"
	"slices"
)

// devOrigins are the browser Origins a -dev hub takes WebSockets from
// besides its own: pages of the developer's own local web server (http on
// a loopback name, any port), so that a page of theirs can try the
// browser client against `make run`. A page elsewhere, even one whose name
// resolves to 127.0.0.1, has another Origin.
var devOrigins = []string{
	"http://localhost", "http://localhost:*",
	"http://127.0.0.1", "http://127.0.0.1:*",
	`http://\[::1\]`, `http://\[::1\]:*`, // brackets escaped: the patterns are path.Match's
}

// allowedOrigins is -allowed-origins, and devOrigins in -dev mode.
func allowedOrigins(cfg Config) []string {
	if !cfg.Dev {
		return cfg.AllowedOrigins
	}
	return append(slices.Clip(cfg.AllowedOrigins), devOrigins...)
}

// devCORS lets the pages of devOrigins read /dev/token, which they need
// for a token; the handler itself still answers only requests addressed
// to a loopback name.
func devCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		if o := r.Header.Get("Origin"); loopbackOrigin(o) {
			w.Header().Set("Access-Control-Allow-Origin", o)
		}
		h.ServeHTTP(w, r)
	})
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == "http" && u.Path == "" && u.Host != "" && loopbackHost(u.Host)
}
