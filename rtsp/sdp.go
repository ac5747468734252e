package rtsp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	psdp "github.com/pion/sdp/v3"

	"github.com/meshgw/meshgw/rtp"
	meshsdp "github.com/meshgw/meshgw/rtsp/sdp"
)

// maxSDPTracks bounds how many media sections a description may carry (see sdp.MaxTracks).
const maxSDPTracks = meshsdp.MaxTracks

// controlOf returns the a=control attribute of each media section (empty where absent).
func controlOf(ssd *sdp.SessionDescription) []string {
	out := make([]string, len(ssd.MediaDescriptions))
	for i, md := range ssd.MediaDescriptions {
		for _, a := range md.Attributes {
			if a.Key == "control" {
				out[i] = a.Value
			}
		}
	}
	return out
}

// dropAttr lists the attributes that describe the source's transport or identity rather than the
// media: readers get meshgw's own SSRC, ports and keys, so these would mislead them.
var dropAttr = map[string]bool{
	"control": true, "ssrc": true, "ssrc-group": true, "rtcp": true, "key-mgmt": true, "crypto": true,
	"range": true, "sendonly": true, "recvonly": true, "sendrecv": true, "inactive": true,
	"source-filter": true, "rtcp-mux": true,
}

// ReaderSDP rewrites a stream's description for readers: meshgw is the origin, every media section
// is addressed as trackID=N relative to the Content-Base, and attributes about the source's
// transport are removed. It returns the rewritten SDP.
func ReaderSDP(src []byte, title string, origin netip.Addr, sessionID uint64) ([]byte, error) {
	return readerSDP(src, title, origin, sessionID, nil)
}

// mediaKey is what a secure reader description says of one media: its key,
// as MIKEY a=key-mgmt (GStreamer, gortsplib) and SDES a=crypto (FFmpeg).
type mediaKey struct {
	key   rtp.SRTPKey
	ssrcs []uint32
}

// readerSDP is ReaderSDP with, when keys is not nil, RTP/SAVP media that
// carry keys[i].
func readerSDP(src []byte, title string, origin netip.Addr, sessionID uint64, keys []mediaKey) ([]byte, error) {
	in, _, err := meshsdp.Parse(src)
	if err != nil {
		return nil, err
	}
	ip := "IN IP4"
	if origin.Is6() && !origin.Is4In6() {
		ip = "IN IP6"
	}
	if !origin.IsValid() {
		origin = netip.IPv4Unspecified()
	}
	var b strings.Builder
	b.WriteString("v=0\r\n")
	fmt.Fprintf(&b, "o=- %d %d %s %s\r\n", sessionID, sessionID, ip, origin.Unmap())
	if title == "" {
		title = "meshgw"
	}
	fmt.Fprintf(&b, "s=%s\r\n", sanitizeLine(title))
	fmt.Fprintf(&b, "c=%s %s\r\n", ip, zeroAddr(origin))
	b.WriteString("t=0 0\r\n")
	b.WriteString("a=tool:meshgw\r\n")
	b.WriteString("a=control:*\r\n")
	b.WriteString("a=range:npt=0-\r\n")
	for i, md := range in.MediaDescriptions {
		var k *mediaKey
		if keys != nil {
			if i >= len(keys) {
				return nil, fmt.Errorf("no SRTP key for media %d", i)
			}
			k = &keys[i]
		}
		if err := writeMedia(&b, md, i, k); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}

func writeMedia(b *strings.Builder, md *psdp.MediaDescription, i int, k *mediaKey) error {
	proto := "RTP/AVP"
	if k != nil {
		proto = "RTP/SAVP"
	}
	fmt.Fprintf(b, "m=%s 0 %s %s\r\n", md.MediaName.Media, proto, strings.Join(md.MediaName.Formats, " "))
	if md.MediaTitle != nil {
		fmt.Fprintf(b, "i=%s\r\n", sanitizeLine(string(*md.MediaTitle)))
	}
	for _, bw := range md.Bandwidth {
		if bw.Experimental {
			fmt.Fprintf(b, "b=X-%s:%d\r\n", bw.Type, bw.Bandwidth)
		} else {
			fmt.Fprintf(b, "b=%s:%d\r\n", bw.Type, bw.Bandwidth)
		}
	}
	for _, a := range md.Attributes {
		if dropAttr[a.Key] {
			continue
		}
		if a.Value == "" {
			fmt.Fprintf(b, "a=%s\r\n", sanitizeLine(a.Key))
		} else {
			fmt.Fprintf(b, "a=%s:%s\r\n", sanitizeLine(a.Key), sanitizeLine(a.Value))
		}
	}
	if k != nil {
		km, err := keyMgmtAttr(k.key, k.ssrcs)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "a=key-mgmt:%s\r\n", km)
		fmt.Fprintf(b, "a=crypto:%s\r\n", cryptoAttr(k.key))
	}
	fmt.Fprintf(b, "a=control:trackID=%d\r\n", i)
	return nil
}

// publisherKeys reads the keys an announced description gives for each media
// (a=key-mgmt MIKEY, else a=crypto SDES); nil entries are media without
// keys. A key attribute that cannot be used is an error, not plain RTP.
func publisherKeys(ssd *sdp.SessionDescription, now time.Time) ([]*SRTPParams, error) {
	out := make([]*SRTPParams, len(ssd.MediaDescriptions))
	var session *SRTPParams
	for _, a := range ssd.Attributes {
		if a.Key == "key-mgmt" {
			p, err := parseKeyMgmtAttr(a.Value, now)
			if err != nil {
				return nil, err
			}
			session = &p
		}
	}
	for i, md := range ssd.MediaDescriptions {
		out[i] = session
		for _, a := range md.Attributes {
			var p SRTPParams
			var err error
			switch a.Key {
			case "key-mgmt":
				p, err = parseKeyMgmtAttr(a.Value, now)
			case "crypto":
				if out[i] != nil && out[i] != session {
					continue // MIKEY wins over SDES
				}
				p.Key, err = ParseCrypto(a.Value)
			default:
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("media %d: %w", i+1, err)
			}
			out[i] = &p
		}
	}
	return out, nil
}

func zeroAddr(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "::"
	}
	return "0.0.0.0"
}

// sanitizeLine keeps a value on its line: a CR or LF from a source must not inject SDP lines.
func sanitizeLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// trackFromControl finds which media a SETUP URL addresses. base is the URL path the session was
// described or announced under; controls are the media's a=control values (for readers always
// "trackID=N"). It returns -1 when none matches.
func trackFromControl(reqPath, basePath string, controls []string) int {
	for i, c := range controls {
		if c == "" {
			continue
		}
		if strings.Contains(c, "://") {
			// absolute control URL: compare its path
			if j := strings.Index(c[strings.Index(c, "://")+3:], "/"); j >= 0 {
				p := c[strings.Index(c, "://")+3+j:]
				if strings.TrimSuffix(p, "/") == strings.TrimSuffix(reqPath, "/") {
					return i
				}
			}
			continue
		}
		if strings.TrimSuffix(reqPath, "/") == strings.TrimSuffix(basePath, "/")+"/"+c {
			return i
		}
	}
	// a single-media stream may be set up on the aggregate URL
	if len(controls) == 1 && strings.TrimSuffix(reqPath, "/") == strings.TrimSuffix(basePath, "/") {
		return 0
	}
	return -1
}

// splitTrackPath splits "/path/trackID=N" into ("/path", N); ok is false when the last segment is
// not a trackID.
func splitTrackPath(p string) (string, int, bool) {
	p = strings.TrimSuffix(p, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return p, 0, false
	}
	last := p[i+1:]
	if !strings.HasPrefix(last, "trackID=") {
		return p, 0, false
	}
	n, err := strconv.Atoi(last[len("trackID="):])
	if err != nil || n < 0 || n >= maxSDPTracks {
		return p, 0, false
	}
	return p[:i], n, true
}
