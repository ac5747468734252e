package sdp

import (
	"strings"
	"testing"
)

const sourceSDP = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=cam\r\nc=IN IP4 239.1.1.1/16\r\nt=0 0\r\n" +
	"m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n" +
	"m=audio 5006 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n" +
	"a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n"

func TestParseSource(t *testing.T) {
	tracks, ports, err := ParseSource([]byte(sourceSDP))
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || tracks[0].PayloadType != 96 || tracks[0].ClockRate != 90000 || tracks[1].ClockRate != 48000 ||
		ports[0] != 5004 || ports[1] != 5006 {
		t.Fatalf("tracks %+v ports %v", tracks, ports)
	}
	sdp, ts := MPEGTSSource()
	got, ports, err := ParseSource(sdp)
	if err != nil || len(got) != 1 || got[0] != ts[0] || ports[0] != 0 {
		t.Fatalf("MPEG-TS SDP: %+v %v %v", got, ports, err)
	}
	for name, c := range map[string]struct{ sdp, want string }{
		"odd port": {strings.Replace(sourceSDP, "5006", "5007", 1), "port 5007"},
		"srtp":     {strings.Replace(sourceSDP, "5004 RTP/AVP", "5004 RTP/SAVP", 1), `transport "RTP/SAVP"`},
		"range":    {strings.Replace(sourceSDP, "5004 RTP", "5004/2 RTP", 1), "port range"},
		"empty":    {"", "invalid SDP"},
		"no media": {"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\n", "no media"},
	} {
		if _, _, err := ParseSource([]byte(c.sdp)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
}

func FuzzParseSource(f *testing.F) {
	f.Add([]byte(sourceSDP))
	f.Add([]byte(mpegTSSDP))
	f.Add([]byte("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tracks, ports, err := ParseSource(b)
		if err != nil {
			return
		}
		if len(tracks) == 0 || len(ports) != len(tracks) {
			t.Fatalf("%d tracks, %d ports", len(tracks), len(ports))
		}
		for i, p := range ports {
			if p < 0 || p > 65534 || p%2 != 0 || tracks[i].ClockRate == 0 {
				t.Fatalf("media %d: port %d track %+v", i, p, tracks[i])
			}
		}
	})
}
