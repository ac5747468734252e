package st2110

import (
	"fmt"
	"strings"
)

// rfc4175Colorimetry maps ST 2110-20 colorimetry names to the RFC 4175 ones GStreamer's
// rtpvrawdepay knows (ffmpeg reads both by prefix).
var rfc4175Colorimetry = map[string]string{"BT601": "BT601-5", "BT709": "BT709-2"}

// ReaderSDP is the session description RTSP readers of the session get: one m= line per essence
// (the first leg's format; 2022-7 legs are merged before readers), no multicast addresses,
// source filters or PTP clock lines, and video colorimetry in RFC 4175's names, which GStreamer's
// rtspsrc ! rtpvrawdepay and ffmpeg both parse.
func (s *Session) ReaderSDP() []byte {
	var b strings.Builder
	name := s.Name
	if strings.TrimSpace(name) == "" {
		name = "meshgw st2110"
	}
	fmt.Fprintf(&b, "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=%s\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n", name)
	for _, e := range s.Essences {
		fmt.Fprintf(&b, "m=%s 0 RTP/AVP %d\r\n", e.Media, e.PayloadType)
		if e.Kind == KindAudio {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d/%d\r\n", e.PayloadType, e.Encoding, e.ClockRate, e.Audio.Channels)
		} else {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", e.PayloadType, e.Encoding, e.ClockRate)
		}
		if f := readerFmtp(e); f != "" {
			fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", e.PayloadType, f)
		}
		if e.Audio != nil && e.Audio.PTime > 0 {
			fmt.Fprintf(&b, "a=ptime:%s\r\n", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", e.Audio.PTime.Seconds()*1000), "0"), "."))
		}
	}
	return []byte(b.String())
}

// readerFmtp is e's fmtp with the video colorimetry renamed.
func readerFmtp(e Essence) string {
	if e.Kind != KindVideo {
		return e.Fmtp
	}
	parts := strings.Split(e.Fmtp, ";")
	out := parts[:0]
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if k, v, ok := strings.Cut(p, "="); ok && strings.TrimSpace(k) == "colorimetry" {
			if r, ok := rfc4175Colorimetry[strings.TrimSpace(v)]; ok {
				p = "colorimetry=" + r
			}
		}
		out = append(out, p)
	}
	return strings.Join(out, "; ")
}
