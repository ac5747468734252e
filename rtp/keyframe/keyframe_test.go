package keyframe

import "testing"

// rtpWith puts payload behind a minimal RTP header.
func rtpWith(payload ...byte) []byte {
	return append([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, payload...)
}

func TestIsStart(t *testing.T) {
	ts := func(pusi bool, rai bool) []byte {
		p := make([]byte, 188)
		p[0] = 0x47
		if pusi {
			p[1] = 0x40
		}
		p[3] = 0x30 // adaptation field and payload
		p[4] = 7
		if rai {
			p[5] = 0x40
		}
		return p
	}
	cases := []struct {
		name string
		c    Codec
		pkt  []byte
		want bool
	}{
		{"h264 IDR", H264, rtpWith(0x65, 0x88), true},
		{"h264 SPS", H264, rtpWith(0x67, 0x42), true},
		{"h264 PPS", H264, rtpWith(0x68, 0xce), false},
		{"h264 non-IDR", H264, rtpWith(0x41, 0x9a), false},
		{"h264 SEI", H264, rtpWith(0x06, 0x05), false},
		{"h264 STAP-A SPS+PPS", H264, rtpWith(0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce), true},
		{"h264 STAP-A SEI+IDR", H264, rtpWith(0x18, 0, 2, 0x06, 0x05, 0, 2, 0x65, 0x88), true},
		{"h264 STAP-A SEI+P", H264, rtpWith(0x18, 0, 2, 0x06, 0x05, 0, 2, 0x41, 0x9a), false},
		{"h264 STAP-A truncated", H264, rtpWith(0x18, 0, 9, 0x65), false},
		{"h264 STAP-B IDR", H264, rtpWith(0x19, 0, 7, 0, 2, 0x65, 0x88), true},
		{"h264 MTAP16 IDR", H264, rtpWith(0x1a, 0, 1, 0, 5, 0, 0, 0, 0x65, 0x88), true},
		{"h264 MTAP24 P", H264, rtpWith(0x1b, 0, 1, 0, 6, 0, 0, 0, 0, 0x41, 0x9a), false},
		{"h264 FU-A IDR start", H264, rtpWith(0x7c, 0x85, 0x88), true},
		{"h264 FU-A IDR middle", H264, rtpWith(0x7c, 0x05, 0x88), false},
		{"h264 FU-A P start", H264, rtpWith(0x5c, 0x81, 0x9a), false},
		{"h264 FU-B IDR start", H264, rtpWith(0x7d, 0x85, 0, 0), true},
		{"h264 empty", H264, rtpWith(), false},
		{"h265 IDR_W_RADL", H265, rtpWith(19<<1, 1, 0xaf), true},
		{"h265 CRA", H265, rtpWith(21<<1, 1, 0xaf), true},
		{"h265 VPS", H265, rtpWith(32<<1, 1, 0x0c), true},
		{"h265 TRAIL_R", H265, rtpWith(1<<1, 1, 0xaf), false},
		{"h265 AP VPS+SPS", H265, rtpWith(48<<1, 1, 0, 3, 32<<1, 1, 0x0c, 0, 3, 33<<1, 1, 0x01), true},
		{"h265 AP SEI", H265, rtpWith(48<<1, 1, 0, 3, 39<<1, 1, 0x05), false},
		{"h265 FU IDR start", H265, rtpWith(49<<1, 1, 0x80|19, 0xaf), true},
		{"h265 FU IDR end", H265, rtpWith(49<<1, 1, 0x40|19, 0xaf), false},
		{"h265 FU TRAIL start", H265, rtpWith(49<<1, 1, 0x80|1, 0xaf), false},
		{"h265 PACI", H265, rtpWith(50<<1, 1, 0, 0), false},
		{"mp2t random access", MP2T, rtpWith(append(ts(false, false), ts(true, true)...)...), true},
		{"mp2t no RAI", MP2T, rtpWith(append(ts(true, false), ts(false, true)...)...), false},
		{"other", Other, rtpWith(1, 2, 3), true},
		{"not RTP", H264, []byte{0x65}, false},
		{"padding beyond payload", H264, []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 0xff}, false},
		{"padding", H264, []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 0, 2}, true},
		{"extension", H264, []byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x65, 0x88}, true},
	}
	for _, tc := range cases {
		if got := IsStart(tc.c, tc.pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCodecOf(t *testing.T) {
	for name, want := range map[string]Codec{"H264": H264, "H265": H265, "MPEG-TS": MP2T, "VP8": Other, "": Other} {
		if got := CodecOf(name); got != want {
			t.Errorf("CodecOf(%q) = %d, want %d", name, got, want)
		}
	}
}

// FuzzIsStart: keyframe detection reads untrusted packets; any bytes
// give an answer without a panic, and a packet too short to be RTP is never
// a keyframe of a known codec.
func FuzzIsStart(f *testing.F) {
	f.Add(rtpWith(0x65, 0x88))
	f.Add(rtpWith(0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce))
	f.Add(rtpWith(0x1a, 0, 1, 0, 5, 0, 0, 0, 0x65, 0x88))
	f.Add(rtpWith(0x7c, 0x85, 0x88))
	f.Add(rtpWith(48<<1, 1, 0, 3, 32<<1, 1, 0x0c))
	f.Add(rtpWith(49<<1, 1, 0x80|19, 0xaf))
	f.Add([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x65})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, c := range []Codec{H264, H265, MP2T, Other} {
			k := IsStart(c, pkt)
			if c != Other && k && len(pkt) < 13 {
				t.Fatalf("codec %d: a %d-byte packet is a keyframe", c, len(pkt))
			}
		}
	})
}
