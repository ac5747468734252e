package hls

import "strings"

// fileKind is what a requested HLS file is, for the counters.
type fileKind int

const (
	filePlaylist fileKind = iota // index.m3u8 and the media playlists
	fileInit                     // an fMP4 initialization section
	fileSegment                  // a whole segment (.mp4 or .ts)
	filePart                     // a Low-Latency HLS part
)

// maxPathLen bounds a request path; route names are short.
const maxPathLen = 1024

// splitPath splits a request path into the route and the HLS file it names:
// "/cams/door/index.m3u8" is route "cams/door", file "index.m3u8". Only the
// file names gohlslib serves are accepted (playlists, init sections,
// segments, parts); the route must be non-empty and free of empty, "." and
// ".." elements.
func splitPath(p string) (route, file string, kind fileKind, ok bool) {
	if len(p) > maxPathLen || !strings.HasPrefix(p, "/") {
		return "", "", 0, false
	}
	i := strings.LastIndexByte(p, '/')
	if i < 1 {
		return "", "", 0, false // "/index.m3u8": no route
	}
	route, file = p[1:i], p[i+1:]
	if route == "" {
		return "", "", 0, false
	}
	for _, el := range strings.Split(route, "/") {
		if el == "" || el == "." || el == ".." {
			return "", "", 0, false
		}
	}
	switch {
	case file == "index.m3u8" || strings.HasSuffix(file, "_stream.m3u8"):
		kind = filePlaylist
	case strings.HasSuffix(file, "_init.mp4"):
		kind = fileInit
	case strings.Contains(file, "_part") && strings.HasSuffix(file, ".mp4"):
		kind = filePart
	case strings.Contains(file, "_seg") && (strings.HasSuffix(file, ".mp4") || strings.HasSuffix(file, ".ts")):
		kind = fileSegment
	default:
		return "", "", 0, false
	}
	return route, file, kind, true
}
