package keyframe

import "encoding/binary"

// Codec is what keyframe detection knows of a track's payload: enough to
// find the packets where a decoder can start.
type Codec uint8

// The codecs whose keyframes IsStart finds.
const (
	// Other cannot be classified: every packet is a start point.
	Other Codec = iota
	// H264 is H.264 over RTP (RFC 6184).
	H264
	// H265 is H.265 over RTP (RFC 7798).
	H265
	// MP2T is MPEG-TS over RTP (RFC 2250).
	MP2T
)

// CodecOf maps a codec name, as rtsp/sdp.TrackCodecs gives it, to a Codec.
func CodecOf(name string) Codec {
	switch name {
	case "H264":
		return H264
	case "H265":
		return H265
	case "MPEG-TS":
		return MP2T
	}
	return Other
}

// rtpPayload returns the payload of an RTP packet (after CSRCs, extension and
// without padding), or nil when the packet is malformed.
func rtpPayload(b []byte) []byte {
	if len(b) < 12 || b[0]>>6 != 2 {
		return nil
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension
		if len(b) < n+4 {
			return nil
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last byte counts it
		end -= int(b[len(b)-1])
	}
	if n > end {
		return nil
	}
	return b[n:end]
}

// IsStart reports whether the RTP packet pkt begins a point where a decoder
// can start the stream of codec c: the parameter sets or the first slice of an
// H.264 IDR or H.265 IRAP picture, or an MPEG-TS packet flagged random access.
// A codec it cannot classify gives true: such a stream is switched at once.
//
// pkt is untrusted: any byte sequence gives an answer, never a panic.
func IsStart(c Codec, pkt []byte) bool {
	p := rtpPayload(pkt)
	switch c {
	case H264:
		return h264KeyStart(p)
	case H265:
		return h265KeyStart(p)
	case MP2T:
		return mp2tKeyStart(p)
	}
	return true
}

// h264Key: IDR slice (5), SPS (7). The SPS comes first in the access unit of
// an IDR that carries its parameter sets, and the new stream's SPS/PPS must
// reach the decoder before its IDR.
func h264Key(t byte) bool { return t == 5 || t == 7 }

// h264KeyStart classifies an RFC 6184 payload.
func h264KeyStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case 24, 25: // STAP-A, STAP-B (with a 16-bit DON first)
		off := 1
		if t == 25 {
			off = 3
		}
		for off+2 < len(p) {
			size := int(binary.BigEndian.Uint16(p[off:]))
			off += 2
			if size == 0 || off+size > len(p) {
				return false
			}
			if h264Key(p[off] & 0x1f) {
				return true
			}
			off += size
		}
		return false
	case 26, 27: // MTAP16, MTAP24: DONB, then units of size, DOND, TS offset
		tsLen := 2
		if t == 27 {
			tsLen = 3
		}
		off := 3
		for off+2 < len(p) {
			size := int(binary.BigEndian.Uint16(p[off:]))
			off += 2
			if size < 1+tsLen+1 || off+size > len(p) {
				return false
			}
			if h264Key(p[off+1+tsLen] & 0x1f) {
				return true
			}
			off += size
		}
		return false
	case 28, 29: // FU-A, FU-B: the start fragment carries the NAL type
		return len(p) >= 2 && p[1]&0x80 != 0 && h264Key(p[1]&0x1f)
	default:
		return h264Key(t)
	}
}

// h265Key: IRAP pictures (BLA, IDR, CRA and reserved IRAP types 16-23), VPS
// (32) and SPS (33).
func h265Key(t byte) bool { return t >= 16 && t <= 23 || t == 32 || t == 33 }

// h265KeyStart classifies an RFC 7798 payload (without DONL fields, the
// default when sprop-max-don-diff is absent).
func h265KeyStart(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch t := p[0] >> 1 & 0x3f; t {
	case 48: // AP: units of 16-bit size and NAL unit
		off := 2
		for off+2 < len(p) {
			size := int(binary.BigEndian.Uint16(p[off:]))
			off += 2
			if size < 2 || off+size > len(p) {
				return false
			}
			if h265Key(p[off] >> 1 & 0x3f) {
				return true
			}
			off += size
		}
		return false
	case 49: // FU: the start fragment carries the NAL type
		return len(p) >= 3 && p[2]&0x80 != 0 && h265Key(p[2]&0x3f)
	case 50: // PACI: its payload header extension hides the type; not a switch point
		return false
	default:
		return h265Key(t)
	}
}

// mp2tKeyStart looks for an MPEG-TS packet (ISO/IEC 13818-1) that starts a
// PES packet with the adaptation field's random_access_indicator set, which
// muxers set on keyframes.
func mp2tKeyStart(p []byte) bool {
	for off := 0; off+188 <= len(p); off += 188 {
		ts := p[off : off+188]
		if ts[0] != 0x47 || ts[1]&0x40 == 0 { // sync byte, payload_unit_start_indicator
			continue
		}
		// adaptation_field_control has an adaptation field, of length ≥ 1
		if ts[3]&0x20 != 0 && ts[4] > 0 && ts[5]&0x40 != 0 {
			return true
		}
	}
	return false
}
