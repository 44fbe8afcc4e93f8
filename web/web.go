// Package web holds the dashboard, embedded in the hub binary so that one
// file is the whole product. Handler serves it at the site root.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// csp lets the page load its own files, talk to its own hub, and show
// thumbnails whose URLs come in message bodies, and nothing else: should
// rendering ever let markup through, no script of it runs.
const csp = "default-src 'self'; img-src 'self' https: http: data:; connect-src 'self'; " +
	"script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the dashboard's files.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
