package st2110

import (
	"strings"
	"testing"
	"time"
)

// dupSDP is a 2110 flow set as a sender publishes it: video on two legs (2022-7) with SSM
// filters, L24 audio, ANC and a JPEG XS flow.
const dupSDP = `v=0
o=- 1 1 IN IP4 192.0.2.10
s=cam1
t=0 0
a=group:DUP primary secondary
m=video 50000 RTP/AVP 96
c=IN IP4 239.10.0.1/32
a=source-filter: incl IN IP4 239.10.0.1 192.0.2.10
a=rtpmap:96 raw/90000
a=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; exactframerate=60000/1001; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN; 
a=ts-refclk:ptp=IEEE1588-2008:00-11-22-FF-FE-33-44-55:127
a=mediaclk:direct=0
a=mid:primary
m=video 50002 RTP/AVP 96
c=IN IP4 239.20.0.1/32
a=source-filter: incl IN IP4 239.20.0.1 192.0.2.11
a=rtpmap:96 raw/90000
a=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; exactframerate=60000/1001; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN
a=mid:secondary
m=audio 50010 RTP/AVP 97
c=IN IP4 239.10.0.2/32
a=rtpmap:97 L24/48000/8
a=fmtp:97 channel-order=SMPTE2110.(SGRP,SGRP)
a=ptime:0.125
m=video 50020 RTP/AVP 100
c=IN IP4 239.10.0.3/32
a=rtpmap:100 smpte291/90000
a=fmtp:100 DID_SDID={0x61,0x01}
m=video 50030 RTP/AVP 112
c=IN IP4 239.10.0.4/32
a=rtpmap:112 jxsv/90000
a=fmtp:112 packetmode=0; profile=High444.12; level=1k-1; sublevel=Sublev3bpp; sampling=YCbCr-4:2:2; width=1920; height=1080; depth=10; exactframerate=50
`

func TestParseSDP(t *testing.T) {
	s, err := ParseSDP([]byte(strings.ReplaceAll(dupSDP, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Essences) != 4 {
		t.Fatalf("%d essences, want 4 (the DUP pair folded)", len(s.Essences))
	}
	v := s.Essences[0]
	if v.Kind != KindVideo || len(v.Legs) != 2 || v.Legs[0].Port != 50000 || v.Legs[1].Port != 50002 ||
		v.Legs[0].Dest.String() != "239.10.0.1" || v.Legs[0].Source.String() != "192.0.2.10" ||
		v.Legs[1].Dest.String() != "239.20.0.1" || v.Legs[1].Source.String() != "192.0.2.11" {
		t.Fatalf("video essence %+v", v)
	}
	vf := v.Video
	if vf.Width != 1920 || vf.Height != 1080 || vf.Depth != 10 || vf.RateNum != 60000 || vf.RateDen != 1001 ||
		vf.Colorimetry != "BT709" || vf.PM != "2110GPM" || vf.SSN != "ST2110-20:2017" || vf.TP != "2110TPN" ||
		vf.PGroup != (PGroup{5, 2, 1}) || vf.FrameSize() != 5184000 {
		t.Fatalf("video format %+v", vf)
	}
	if d := vf.FramePeriod(); d < 16683*time.Microsecond || d > 16684*time.Microsecond {
		t.Fatalf("frame period %v", d)
	}
	a := s.Essences[1]
	if a.Kind != KindAudio || a.Audio.BitsPerSample != 24 || a.Audio.Channels != 8 || a.Audio.Rate != 48000 ||
		a.Audio.PTime != 125*time.Microsecond || a.Audio.ChannelOrder != "SMPTE2110.(SGRP,SGRP)" {
		t.Fatalf("audio essence %+v %+v", a, a.Audio)
	}
	if s.Essences[2].Kind != KindAnc || s.Essences[2].PayloadType != 100 || s.Essences[3].Kind != KindJXSV {
		t.Fatalf("anc/jxsv %+v %+v", s.Essences[2], s.Essences[3])
	}
}

func TestParseSDPErrors(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"no exactframerate", "exactframerate=60000/1001; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN; ", "depth=10;", "exactframerate"},
		{"bad depth", "depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN; ", "depth=11;", "depth"},
		{"odd width", "width=1920; height=1080; exactframerate=60000/1001; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN; ", "width=1921; height=1080; exactframerate=50; depth=10;", "pixel groups"},
		{"bad TP", "TP=2110TPN; ", "TP=fast;", "TP="},
		{"filter for another group", "incl IN IP4 239.10.0.1 192.0.2.10", "incl IN IP4 239.10.0.9 192.0.2.10", "source-filter"},
		{"dup to nothing", "a=group:DUP primary secondary", "a=group:DUP primary third", "a=mid:third"},
		{"srtp", "m=audio 50010 RTP/AVP 97", "m=audio 50010 RTP/SAVP 97", "RTP/AVP"},
		{"not 2110", "L24/48000/8", "opus/48000/2", "not ST 2110"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := strings.Replace(dupSDP, c.from, c.to, 1)
			if in == dupSDP {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := ParseSDP([]byte(in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

func FuzzParseSDP(f *testing.F) {
	f.Add([]byte(dupSDP))
	f.Add([]byte(strings.ReplaceAll(dupSDP, "\n", "\r\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSDP(b)
		if err != nil {
			return
		}
		for _, e := range s.Essences {
			if len(e.Legs) < 1 || len(e.Legs) > 2 {
				t.Fatalf("%d legs", len(e.Legs))
			}
			if e.Video != nil {
				if sz := e.Video.FrameSize(); sz <= 0 || sz > maxFrameSz {
					t.Fatalf("frame size %d", sz)
				}
				if e.Video.FramePeriod() <= 0 {
					t.Fatalf("frame period %v", e.Video.FramePeriod())
				}
			}
		}
	})
}
