package gateway

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// st2110OutputFlow is the SinkST2110 flow of one track of an st2110: output, or ok false for a
// track that is not raw video (audio and ANC outputs are not implemented, and other codecs
// cannot be sent as 2110-20).
func st2110OutputFlow(rd *reader, idx, track int) (f node.Flow, ok bool, err error) {
	o := rd.output
	enc, pt, fmtp, err := trackFormat(rd.sdp, track)
	if err != nil {
		return f, false, err
	}
	if !strings.EqualFold(enc, "raw") {
		return f, false, nil
	}
	spec := node.ST2110Sink{Track: track, Video: o.ST2110.Video, Leg2: o.ST2110.Leg2, Fmtp: fmtp, PayloadType: pt,
		TP: o.ST2110.TP, TTL: o.TTL, SDPFile: o.SDPFile}
	return node.Flow{ID: newID("out"), Version: 1, Stream: rd.s.id, Spec: spec,
		Meta: map[string]string{metaRole: roleOutput, metaRoute: rd.s.path, metaSession: rd.id, metaOutput: strconv.Itoa(idx)}}, true, nil
}

// trackFormat reads the rtpmap encoding name, payload type and fmtp parameters of one media
// section of a stream's description.
func trackFormat(b []byte, track int) (enc string, pt uint8, fmtp string, err error) {
	ssd, _, err := sdp.Parse(b)
	if err != nil {
		return "", 0, "", err
	}
	if track >= len(ssd.MediaDescriptions) {
		return "", 0, "", fmt.Errorf("track %d: the description has %d media", track, len(ssd.MediaDescriptions))
	}
	md := ssd.MediaDescriptions[track]
	if len(md.MediaName.Formats) == 0 {
		return "", 0, "", fmt.Errorf("track %d has no format", track)
	}
	n, err := strconv.Atoi(md.MediaName.Formats[0])
	if err != nil || n < 0 || n > 127 {
		return "", 0, "", fmt.Errorf("track %d: payload type %q", track, md.MediaName.Formats[0])
	}
	for _, a := range md.Attributes {
		num, rest, _ := strings.Cut(a.Value, " ")
		if num != md.MediaName.Formats[0] {
			continue
		}
		switch a.Key {
		case "rtpmap":
			enc, _, _ = strings.Cut(rest, "/")
		case "fmtp":
			fmtp = strings.TrimSpace(rest)
		}
	}
	return enc, uint8(n), fmtp, nil
}
