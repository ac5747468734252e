package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const rtpSDP = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=cam\r\nc=IN IP4 239.1.1.1/16\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
	"m=audio 5010 RTP/AVP 0\r\n"

func TestRTPSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cam.sdp"), []byte(rtpSDP), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `routes:
  ts:
    source: rtp://239.1.1.1:5000
    source_interface: lo
    fec: {columns: 10, rows: 10}
    live_live: {leg2: "rtp://127.0.0.1:6000", skew: C}
  cam:
    source: rtp://0.0.0.0:5000
    sdp: cam.sdp
  col:
    source: rtp://127.0.0.1:7000
    fec: {columns: 2}
    live_live: {leg2: "rtp://127.0.0.1:7100", skew: 80ms}
  plain:
    source: RTP://[::1]:8000
    live_live: {leg2: "rtp://[::1]:8010"}
`
	c, err := Parse(filepath.Join(dir, "meshgw.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := c.Match("ts")
	s := ts.RTPSource
	if !ts.IsRTP() || ts.IsPull() || s == nil || s.Addr.String() != "239.1.1.1" || s.Port != 5000 || s.Interface != "lo" || s.SDP != nil ||
		*s.FEC != (FEC{10, 10}) || s.LiveLive.Port != 6000 || s.LiveLive.Skew != 450*time.Millisecond || s.Leg2Ports()[0] != 6000 {
		t.Errorf("ts: %+v", s)
	}
	cam, _ := c.Match("cam")
	if s := cam.RTPSource; s == nil || string(s.SDP) != rtpSDP || len(s.Ports) != 2 || s.Ports[0] != 5000 || s.Ports[1] != 5010 || s.FEC != nil || s.LiveLive != nil {
		t.Errorf("cam: %+v", cam.RTPSource)
	}
	col, _ := c.Match("col")
	if s := col.RTPSource; *s.FEC != (FEC{2, 0}) || s.LiveLive.Skew != 80*time.Millisecond {
		t.Errorf("col: %+v", s)
	}
	plain, _ := c.Match("plain")
	if s := plain.RTPSource; s.Addr.String() != "::1" || s.LiveLive.Skew != 50*time.Millisecond || s.LiveLive.Leg2 != "rtp://[::1]:8010" {
		t.Errorf("plain: %+v %+v", s, s.LiveLive)
	}
}

func TestRTPSourceErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("two.sdp", strings.Replace(rtpSDP, "m=audio 5010", "m=audio 0", 1))
	write("bad.sdp", "hello")
	write("mismatch.sdp", strings.Replace(rtpSDP, "m=video 0", "m=video 4000", 1))
	write("srtp.sdp", strings.Replace(rtpSDP, "RTP/AVP 96", "RTP/SAVP 96", 1))
	for _, tc := range []struct{ name, route, want string }{
		{"fec on rtsp", "source: rtsp://h/s\n    fec: {columns: 5, rows: 5}", `:4: routes.r.fec: applies only to rtp:// sources`},
		{"sdp on publisher", "sdp: x.sdp", `:3: routes.r.sdp: applies only to rtp:// sources`},
		{"live_live on demo", "source: demo\n    live_live: {leg2: rtp://1.2.3.4:5000}", `:4: routes.r.live_live: applies only`},
		{"host name", "source: rtp://cam.local:5000", `"rtp://cam.local:5000": HOST must be an IP address`},
		{"odd port", "source: rtp://1.2.3.4:5001", `port 5001, want an even port 2-65530`},
		{"no port", "source: rtp://1.2.3.4", `is not rtp://HOST:PORT with a numeric port`},
		{"path", "source: rtp://1.2.3.4:5000/x", `no path, query or user`},
		{"L too big", "source: rtp://1.2.3.4:5000\n    fec: {columns: 21, rows: 4}", `routes.r.fec.columns: 21 is out of range (1-20)`},
		{"L×D too big", "source: rtp://1.2.3.4:5000\n    fec: {columns: 20, rows: 10}", `:4: routes.r.fec: L×D=20×10=200 exceeds 100`},
		{"D too small", "source: rtp://1.2.3.4:5000\n    fec: {columns: 10, rows: 2}", `D=2 out of range 4..20`},
		{"no columns", "source: rtp://1.2.3.4:5000\n    fec: {rows: 5}", `routes.r.fec: columns (L) is required`},
		{"fec unknown key", "source: rtp://1.2.3.4:5000\n    fec: {columns: 5, depth: 5}", `routes.r.fec: unknown key "depth"`},
		{"no leg2", "source: rtp://1.2.3.4:5000\n    live_live: {skew: A}", `routes.r.live_live: leg2 (rtp://HOST2:PORT2) is required`},
		{"bad leg2", "source: rtp://1.2.3.4:5000\n    live_live: {leg2: udp://1.2.3.4:6000}", `routes.r.live_live.leg2: "udp://1.2.3.4:6000" is not rtp://HOST:PORT`},
		{"bad skew", "source: rtp://1.2.3.4:5000\n    live_live: {leg2: rtp://1.2.3.4:6000, skew: D}", `skew: "D", want A (10ms), B (50ms), C (450ms)`},
		{"leg collision", "source: rtp://1.2.3.4:5000\n    fec: {columns: 5, rows: 5}\n    live_live: {leg2: rtp://0.0.0.0:5004}", `leg 2 track 1 port 5004 collides with leg 1 track 1 port 5004`},
		{"unicast interface", "source: rtp://1.2.3.4:5000\n    source_interface: eth0", `source_interface: applies to a multicast group; 1.2.3.4 is unicast`},
		{"regex", "source: rtp://1.2.3.4:5000", `cannot serve a regex route`},
		{"device sdp", "source: rtp://1.2.3.4:5000\n    sdp: /dev/zero", `/dev/zero is not a regular file of at most 65536 bytes`},
		{"missing sdp", "source: rtp://1.2.3.4:5000\n    sdp: nope.sdp", `:4: routes.r.sdp: stat `},
		{"bad sdp", "source: rtp://1.2.3.4:5000\n    sdp: bad.sdp", `bad.sdp: invalid SDP`},
		{"srtp sdp", "source: rtp://1.2.3.4:5000\n    sdp: srtp.sdp", `transport "RTP/SAVP", an rtp:// source takes RTP/AVP`},
		{"second media port 0", "source: rtp://1.2.3.4:5000\n    sdp: two.sdp", `media 2 (audio) has port 0`},
		{"sdp port mismatch", "source: rtp://1.2.3.4:5000\n    sdp: mismatch.sdp", `first m= line names port 4000 but the source URL port 5000`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "r"
			if tc.name == "regex" {
				key = `"~^r$"`
			}
			yaml := "routes:\n  " + key + ":\n    " + tc.route + "\n"
			_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}
