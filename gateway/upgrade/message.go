package upgrade

import (
	"errors"
	"fmt"
)

// The offer message names the descriptors that ride with it in one SCM_RIGHTS control message:
//
//	"MGWU" | version (1 byte) | count (1 byte) | count × (name length (1 byte) | name)
//
// The names say what each descriptor is ("rtsp", "rtsps"), in the order of the descriptors.
const (
	magic   = "MGWU"
	version = 1
	// maxFiles bounds what an offer may carry: a gateway has a handful of listeners.
	maxFiles = 16
	// maxMessage is the largest encoded offer (header plus maxFiles names of 255 bytes).
	maxMessage = len(magic) + 2 + maxFiles*256
	// replies on the Unix connection after the offer
	replyReady    = 'R' // successor: I serve on the listeners; stop accepting
	replyReleased = 'B' // predecessor: stopped accepting, socket path released
)

// errMessage is wrapped by every decoding error.
var errMessage = errors.New("upgrade: bad offer message")

// encodeOffer is the message naming names' descriptors.
func encodeOffer(names []string) ([]byte, error) {
	if len(names) == 0 || len(names) > maxFiles {
		return nil, fmt.Errorf("upgrade: %d listeners to hand over, want 1..%d", len(names), maxFiles)
	}
	b := append([]byte(magic), version, byte(len(names)))
	for _, n := range names {
		if n == "" || len(n) > 255 {
			return nil, fmt.Errorf("upgrade: listener name %q: want 1..255 bytes", n)
		}
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b, nil
}

// decodeOffer parses an offer message that arrived with nfds descriptors and returns their names.
func decodeOffer(b []byte, nfds int) ([]string, error) {
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: no MGWU header", errMessage)
	}
	if v := b[len(magic)]; v != version {
		return nil, fmt.Errorf("%w: version %d, this meshgw speaks %d", errMessage, v, version)
	}
	n := int(b[len(magic)+1])
	if n == 0 || n > maxFiles {
		return nil, fmt.Errorf("%w: %d descriptors named, want 1..%d", errMessage, n, maxFiles)
	}
	if n != nfds {
		return nil, fmt.Errorf("%w: %d names for %d descriptors", errMessage, n, nfds)
	}
	rest := b[len(magic)+2:]
	names := make([]string, 0, n)
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		if len(rest) < 1 || int(rest[0]) == 0 || len(rest) < 1+int(rest[0]) {
			return nil, fmt.Errorf("%w: name %d truncated or empty", errMessage, i)
		}
		name := string(rest[1 : 1+int(rest[0])])
		if seen[name] {
			return nil, fmt.Errorf("%w: name %q twice", errMessage, name)
		}
		seen[name] = true
		names = append(names, name)
		rest = rest[1+int(rest[0]):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the names", errMessage, len(rest))
	}
	return names, nil
}
