package sdp

import (
	"fmt"
	"strings"

	"github.com/meshgw/meshgw/rtp"
)

// mpegTSSDP describes a plain RTP source that needs no SDP file: one
// MPEG-TS track, payload type 33 (RFC 3551 static), clock 90 kHz.
const mpegTSSDP = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=meshgw rtp source\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n"

// MPEGTSSource returns the description of an rtp:// source without an
// SDP file (MPEG-TS over RTP) and its one track.
func MPEGTSSource() ([]byte, []rtp.Track) {
	return []byte(mpegTSSDP), []rtp.Track{{Media: "video", PayloadType: 33, ClockRate: 90000}}
}

// ParseSource reads the SDP file of a plain RTP source (rtp://): its
// tracks, one per media section, and the UDP port each m= line names (0
// where the line leaves it to the route's URL). The sections must be plain
// RTP/AVP (no SRTP keys can be given to an rtp:// source) on even ports,
// so that RTCP fits on port+1.
func ParseSource(b []byte) ([]rtp.Track, []int, error) {
	ssd, tracks, err := Parse(b)
	if err != nil {
		return nil, nil, err
	}
	ports := make([]int, len(tracks))
	for i, md := range ssd.MediaDescriptions {
		proto := strings.Join(md.MediaName.Protos, "/")
		if proto != "RTP/AVP" {
			return nil, nil, fmt.Errorf("media %d (%s): transport %q, an rtp:// source takes RTP/AVP", i+1, md.MediaName.Media, proto)
		}
		p := md.MediaName.Port.Value
		if p < 0 || p > 65534 || p%2 != 0 {
			return nil, nil, fmt.Errorf("media %d (%s): port %d, want an even port 2-65534 (RTCP takes the next one), or 0 for the route's port", i+1, md.MediaName.Media, p)
		}
		if md.MediaName.Port.Range != nil && *md.MediaName.Port.Range != 1 {
			return nil, nil, fmt.Errorf("media %d (%s): a port range is not supported", i+1, md.MediaName.Media)
		}
		ports[i] = p
	}
	return tracks, ports, nil
}
