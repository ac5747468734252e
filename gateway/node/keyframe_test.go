package node

import "testing"

// rtpWith puts payload behind a minimal RTP header.
func rtpWith(payload ...byte) []byte {
	return append([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, payload...)
}

func TestIsKeyStart(t *testing.T) {
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
		c    codec
		pkt  []byte
		want bool
	}{
		{"h264 IDR", codecH264, rtpWith(0x65, 0x88), true},
		{"h264 SPS", codecH264, rtpWith(0x67, 0x42), true},
		{"h264 PPS", codecH264, rtpWith(0x68, 0xce), false},
		{"h264 non-IDR", codecH264, rtpWith(0x41, 0x9a), false},
		{"h264 SEI", codecH264, rtpWith(0x06, 0x05), false},
		{"h264 STAP-A SPS+PPS", codecH264, rtpWith(0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce), true},
		{"h264 STAP-A SEI+IDR", codecH264, rtpWith(0x18, 0, 2, 0x06, 0x05, 0, 2, 0x65, 0x88), true},
		{"h264 STAP-A SEI+P", codecH264, rtpWith(0x18, 0, 2, 0x06, 0x05, 0, 2, 0x41, 0x9a), false},
		{"h264 STAP-A truncated", codecH264, rtpWith(0x18, 0, 9, 0x65), false},
		{"h264 STAP-B IDR", codecH264, rtpWith(0x19, 0, 7, 0, 2, 0x65, 0x88), true},
		{"h264 MTAP16 IDR", codecH264, rtpWith(0x1a, 0, 1, 0, 5, 0, 0, 0, 0x65, 0x88), true},
		{"h264 MTAP24 P", codecH264, rtpWith(0x1b, 0, 1, 0, 6, 0, 0, 0, 0, 0x41, 0x9a), false},
		{"h264 FU-A IDR start", codecH264, rtpWith(0x7c, 0x85, 0x88), true},
		{"h264 FU-A IDR middle", codecH264, rtpWith(0x7c, 0x05, 0x88), false},
		{"h264 FU-A P start", codecH264, rtpWith(0x5c, 0x81, 0x9a), false},
		{"h264 FU-B IDR start", codecH264, rtpWith(0x7d, 0x85, 0, 0), true},
		{"h264 empty", codecH264, rtpWith(), false},
		{"h265 IDR_W_RADL", codecH265, rtpWith(19<<1, 1, 0xaf), true},
		{"h265 CRA", codecH265, rtpWith(21<<1, 1, 0xaf), true},
		{"h265 VPS", codecH265, rtpWith(32<<1, 1, 0x0c), true},
		{"h265 TRAIL_R", codecH265, rtpWith(1<<1, 1, 0xaf), false},
		{"h265 AP VPS+SPS", codecH265, rtpWith(48<<1, 1, 0, 3, 32<<1, 1, 0x0c, 0, 3, 33<<1, 1, 0x01), true},
		{"h265 AP SEI", codecH265, rtpWith(48<<1, 1, 0, 3, 39<<1, 1, 0x05), false},
		{"h265 FU IDR start", codecH265, rtpWith(49<<1, 1, 0x80|19, 0xaf), true},
		{"h265 FU IDR end", codecH265, rtpWith(49<<1, 1, 0x40|19, 0xaf), false},
		{"h265 FU TRAIL start", codecH265, rtpWith(49<<1, 1, 0x80|1, 0xaf), false},
		{"h265 PACI", codecH265, rtpWith(50<<1, 1, 0, 0), false},
		{"mp2t random access", codecMP2T, rtpWith(append(ts(false, false), ts(true, true)...)...), true},
		{"mp2t no RAI", codecMP2T, rtpWith(append(ts(true, false), ts(false, true)...)...), false},
		{"other", codecOther, rtpWith(1, 2, 3), true},
		{"not RTP", codecH264, []byte{0x65}, false},
		{"padding beyond payload", codecH264, []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 0xff}, false},
		{"padding", codecH264, []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x65, 0, 2}, true},
		{"extension", codecH264, []byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x65, 0x88}, true},
	}
	for _, tc := range cases {
		if got := isKeyStart(tc.c, tc.pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCodecOf(t *testing.T) {
	for name, want := range map[string]codec{"H264": codecH264, "H265": codecH265, "MPEG-TS": codecMP2T, "VP8": codecOther, "": codecOther} {
		if got := codecOf(name); got != want {
			t.Errorf("codecOf(%q) = %d, want %d", name, got, want)
		}
	}
}

// FuzzIsKeyStart: keyframe detection reads untrusted packets; any bytes
// give an answer without a panic, and a packet too short to be RTP is never
// a keyframe of a known codec.
func FuzzIsKeyStart(f *testing.F) {
	f.Add(rtpWith(0x65, 0x88))
	f.Add(rtpWith(0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce))
	f.Add(rtpWith(0x1a, 0, 1, 0, 5, 0, 0, 0, 0x65, 0x88))
	f.Add(rtpWith(0x7c, 0x85, 0x88))
	f.Add(rtpWith(48<<1, 1, 0, 3, 32<<1, 1, 0x0c))
	f.Add(rtpWith(49<<1, 1, 0x80|19, 0xaf))
	f.Add([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x65})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, c := range []codec{codecH264, codecH265, codecMP2T, codecOther} {
			k := isKeyStart(c, pkt)
			if c != codecOther && k && len(pkt) < 13 {
				t.Fatalf("codec %d: a %d-byte packet is a keyframe", c, len(pkt))
			}
		}
	})
}
