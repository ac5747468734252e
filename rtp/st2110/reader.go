package st2110

import (
	"fmt"
	"net/netip"
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

// Fmtp is the complete ST 2110-20 fmtp of v for a sender of type tp (the keys ffmpeg leaves
// out included: exactframerate, colorimetry, PM, SSN, TP).
func (v *Video) Fmtp(tp string) string {
	rate := fmt.Sprint(v.RateNum)
	if v.RateDen != 1 {
		rate = fmt.Sprintf("%d/%d", v.RateNum, v.RateDen)
	}
	col := v.Colorimetry
	for k, r := range rfc4175Colorimetry {
		if col == r {
			col = k // back to the 2110 name
		}
	}
	if col == "" {
		col = "BT709"
	}
	tcs := v.TCS
	if tcs == "" {
		tcs = "SDR"
	}
	s := fmt.Sprintf("sampling=%s; width=%d; height=%d; exactframerate=%s; depth=%d; TCS=%s; colorimetry=%s; PM=2110GPM; SSN=ST2110-20:2017; TP=%s",
		v.Sampling, v.Width, v.Height, rate, v.Depth, tcs, col, tp)
	if v.Interlace {
		s += "; interlace"
	}
	if v.Range != "" {
		s += "; RANGE=" + v.Range
	}
	return s
}

// SenderSDP is the description of one video flow a 2110 sender writes for its receivers: the
// destination (with a=source-filter for a multicast group when source is valid), the complete
// fmtp, and the clock lines of ST 2110-10 (refclk names what the media clock follows, e.g.
// "ptp=IEEE1588-2008:traceable" or "localmac=02-00-00-00-00-01").
func SenderSDP(name string, v *Video, tp string, pt uint8, dest netip.AddrPort, source netip.Addr, refclk string) []byte {
	var b strings.Builder
	origin := "0.0.0.0"
	if source.IsValid() {
		origin = source.String()
	}
	fmt.Fprintf(&b, "v=0\r\no=- 1 1 IN IP4 %s\r\ns=%s\r\nt=0 0\r\n", origin, name)
	fmt.Fprintf(&b, "m=video %d RTP/AVP %d\r\n", dest.Port(), pt)
	if dest.Addr().IsMulticast() {
		fmt.Fprintf(&b, "c=IN IP4 %s/64\r\n", dest.Addr())
		if source.IsValid() {
			fmt.Fprintf(&b, "a=source-filter: incl IN IP4 %s %s\r\n", dest.Addr(), source)
		}
	} else {
		fmt.Fprintf(&b, "c=IN IP4 %s\r\n", dest.Addr())
	}
	fmt.Fprintf(&b, "a=rtpmap:%d raw/90000\r\na=fmtp:%d %s\r\n", pt, pt, v.Fmtp(tp))
	fmt.Fprintf(&b, "a=ts-refclk:%s\r\na=mediaclk:direct=0\r\n", refclk)
	return []byte(b.String())
}
