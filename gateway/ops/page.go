package ops

import (
	"embed"
	"net/http"
)

// pageFiles is the status page: plain HTML, CSS and JavaScript drawing inline SVG, with no
// external assets and no build step. It reads the REST API of the same listener.
//
//go:embed page
var pageFiles embed.FS

// mountPage serves the status page at /. It needs the read role like the API it polls: a
// browser asks for the password once and sends it with every poll after.
func (s *Server) mountPage() {
	for pattern, name := range map[string]string{
		"GET /{$}":      "page/index.html",
		"GET /page.js":  "page/page.js",
		"GET /page.css": "page/page.css",
	} {
		s.handle(pattern, readRole, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			// Nothing but this listener: the page has no external assets, and a script
			// injected through data it shows could not reach anywhere else.
			w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
			http.ServeFileFS(w, r, pageFiles, name)
		}))
	}
}
