// Package web holds the dashboard, the browser client (imhub.js) and its
// example page, embedded in the hub binary so that one file is the whole
// product. Handler serves them: the dashboard at the site root, the client
// under /sdk/, the examples under /examples/.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static sdk/imhub.js sdk/imhub.d.ts examples
var files embed.FS

// csp lets the page load its own files, talk to its own hub, and show
// thumbnails whose URLs come in message bodies, and nothing else: should
// rendering ever let markup through, no script of it runs.
const csp = "default-src 'self'; img-src 'self' https: http: data:; connect-src 'self'; " +
	"script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// exampleCSP is csp for the example pages, which keep their script and
// style inline so that each is one file to read and copy; they render
// text as text.
const exampleCSP = "default-src 'self'; connect-src 'self'; script-src 'self' 'unsafe-inline'; " +
	"style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func sub(dir string) http.Handler {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(f)
}

// Handler serves the dashboard, the client and the examples.
func Handler() http.Handler {
	dashboard, sdk, examples := sub("static"), sub("sdk"), sub("examples")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch {
		case strings.HasPrefix(r.URL.Path, "/sdk/"):
			// An app's page on another origin imports the client as a
			// module, which browsers fetch with CORS.
			h.Set("Access-Control-Allow-Origin", "*")
			if strings.HasSuffix(r.URL.Path, ".d.ts") {
				// Not the MPEG transport stream the system's table says.
				h.Set("Content-Type", "application/typescript; charset=utf-8")
			}
			http.StripPrefix("/sdk", sdk).ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/examples/"):
			h.Set("Content-Security-Policy", exampleCSP)
			http.StripPrefix("/examples", examples).ServeHTTP(w, r)
		default:
			h.Set("Content-Security-Policy", csp)
			dashboard.ServeHTTP(w, r)
		}
	})
}
