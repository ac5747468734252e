package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/rtsp/hls"
)

// HLS variants accepted in hls.variant, spelled as mediamtx spells its hlsVariant.
const (
	// HLSLowLatency is Low-Latency HLS: fMP4 segments split into parts (#EXT-X-PART) and
	// blocking playlist reloads.
	HLSLowLatency = hls.VariantLowLatency
	// HLSFMP4 is plain HLS with fMP4 segments.
	HLSFMP4 = hls.VariantFMP4
	// HLSMPEGTS is plain HLS with MPEG-TS segments (H.264 and AAC only).
	HLSMPEGTS = hls.VariantMPEGTS
)

// HLS is the hls: section, the HTTP listener that serves routes as HLS. It is off unless the
// section is present.
type HLS struct {
	// Listen is hls.listen, the TCP host:port of the HLS server. Default ":8888", the port
	// mediamtx uses.
	Listen string
	// Muxing is hls.variant (HLSLowLatency, the default, HLSFMP4 or HLSMPEGTS),
	// hls.segment_count (default 7, the least Low-Latency HLS allows; at least 3 otherwise),
	// hls.segment_duration (1s), hls.part_duration (200ms), hls.idle_stop (60s: a route's muxer
	// stops after this long without a request) and hls.allow_origin ("*"; "" sends no CORS
	// headers).
	hls.Muxing
	// Cert and Key are hls.cert and hls.key, PEM files that turn the listener into HTTPS. Both
	// or neither; they are re-read when they change, as for rtsps.
	Cert, Key string
}

// Enabled reports whether the section was given.
func (h HLS) Enabled() bool { return h.Listen != "" }

// TLS reports whether the listener serves HTTPS.
func (h HLS) TLS() bool { return h.Cert != "" }

func (p *parser) hls(h *HLS, v *yaml.Node) {
	const path = "hls"
	*h = HLS{Listen: ":8888", Muxing: hls.Muxing{Variant: HLSLowLatency, SegmentCount: 7, SegmentDuration: time.Second,
		PartDuration: 200 * time.Millisecond, IdleStop: time.Minute, AllowOrigin: "*"}}
	m := p.section(path, v)
	if m == nil {
		// hls: with nothing under it turns HLS on with every default
		if !isNull(resolve(v)) {
			*h = HLS{}
		}
		return
	}
	countNode, partNode := v, v
	p.fields(m, path, []field{
		{"listen", func(_, v *yaml.Node) { p.listen(&h.Listen, "hls.listen", v, `":8888"`, false) }},
		{"variant", func(_, v *yaml.Node) { p.enum(&h.Variant, "hls.variant", v, HLSLowLatency, HLSFMP4, HLSMPEGTS) }},
		{"segment_count", func(_, v *yaml.Node) { countNode = v; p.integer(&h.SegmentCount, "hls.segment_count", v, 3, 100) }},
		{"segment_duration", func(_, v *yaml.Node) { p.duration(&h.SegmentDuration, "hls.segment_duration", v, false) }},
		{"part_duration", func(_, v *yaml.Node) { partNode = v; p.duration(&h.PartDuration, "hls.part_duration", v, false) }},
		{"idle_stop", func(_, v *yaml.Node) { p.duration(&h.IdleStop, "hls.idle_stop", v, false) }},
		{"allow_origin", func(_, v *yaml.Node) { p.str(&h.AllowOrigin, "hls.allow_origin", v) }},
		{"cert", func(_, v *yaml.Node) { p.str(&h.Cert, "hls.cert", v) }},
		{"key", func(_, v *yaml.Node) { p.str(&h.Key, "hls.key", v) }},
	})
	if (h.Cert == "") != (h.Key == "") {
		p.errorf(v, "hls: cert and key go together (PEM files of the server certificate and its key); give both for HTTPS or neither for HTTP")
	}
	if h.Variant == HLSLowLatency && h.SegmentCount < 7 {
		p.errorf(countNode, "hls.segment_count: Low-Latency HLS needs at least 7 segments, got %d (or set hls.variant: fmp4 or mpegts)", h.SegmentCount)
	}
	if h.Variant == HLSLowLatency && h.PartDuration >= h.SegmentDuration {
		p.errorf(partNode, "hls.part_duration: %s must be shorter than hls.segment_duration (%s); parts split segments", h.PartDuration, h.SegmentDuration)
	}
}
