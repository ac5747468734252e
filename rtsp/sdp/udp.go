package sdp

import (
	"fmt"
	"net/netip"
	"strings"
)

// udpDrop are the attributes a plain RTP/UDP description must not keep from its source: RTSP
// controls and keys, and RTCP ports that would point elsewhere.
var udpDrop = map[string]bool{"control": true, "key-mgmt": true, "crypto": true, "rtcp": true, "range": true, "rtcp-mux": true}

// ForUDP rewrites a stream's description for a player that receives it as plain RTP over UDP
// at addr: media i on port basePort+2i, its RTCP on the port after. It is what a RoQ client
// writes next to the RTP it relays, so ffplay, ffmpeg and GStreamer can play the stream.
func ForUDP(src []byte, addr netip.Addr, basePort int) ([]byte, error) {
	ssd, _, err := Parse(src)
	if err != nil {
		return nil, err
	}
	if basePort <= 0 || basePort+2*len(ssd.MediaDescriptions) > 65535 {
		return nil, fmt.Errorf("sdp: base port %d leaves no room for %d media", basePort, len(ssd.MediaDescriptions))
	}
	ip := "IN IP4"
	if addr.Is6() && !addr.Is4In6() {
		ip = "IN IP6"
	}
	var b strings.Builder
	b.WriteString("v=0\r\n")
	fmt.Fprintf(&b, "o=- 0 0 %s %s\r\n", ip, addr.Unmap())
	b.WriteString("s=meshgw RoQ\r\n")
	fmt.Fprintf(&b, "c=%s %s\r\n", ip, addr.Unmap())
	b.WriteString("t=0 0\r\n")
	for i, md := range ssd.MediaDescriptions {
		fmt.Fprintf(&b, "m=%s %d RTP/AVP %s\r\n", md.MediaName.Media, basePort+2*i, strings.Join(md.MediaName.Formats, " "))
		for _, a := range md.Attributes {
			if udpDrop[a.Key] || strings.ContainsAny(a.Key+a.Value, "\r\n") {
				continue
			}
			if a.Value == "" {
				fmt.Fprintf(&b, "a=%s\r\n", a.Key)
			} else {
				fmt.Fprintf(&b, "a=%s:%s\r\n", a.Key, a.Value)
			}
		}
	}
	return []byte(b.String()), nil
}
