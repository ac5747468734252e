package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dupSDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=cam\r\nt=0 0\r\na=group:DUP a b\r\n" +
	"m=video 50000 RTP/AVP 96\r\nc=IN IP4 239.10.0.1/32\r\na=source-filter: incl IN IP4 239.10.0.1 192.0.2.10\r\n" +
	"a=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; depth=10; exactframerate=50\r\na=mid:a\r\n" +
	"m=video 50000 RTP/AVP 96\r\nc=IN IP4 239.20.0.1/32\r\n" +
	"a=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; depth=10; exactframerate=50\r\na=mid:b\r\n"

func TestST2110Source(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cam.sdp"), []byte(dupSDP), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "meshgw.yaml"), []byte(`routes:
  a:
    source: st2110://cam.sdp
    source_interface: lo
    dup_skew: C
  b:
    source: st2110
    sdp: cam.sdp
    outputs:
      - st2110: {video: 239.30.0.1:5004, video_leg2: 239.31.0.1:5004, tp: 2110TPW}
        sdp: out.sdp
        ttl: 4
`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Match("a")
	if s := a.ST2110Source; !a.IsST2110() || a.IsPull() || s == nil || s.Interface != "lo" || s.Skew != 450*time.Millisecond ||
		len(s.Session.Essences) != 1 || len(s.Session.Essences[0].Legs) != 2 {
		t.Errorf("a: %+v", a.ST2110Source)
	}
	b, _ := c.Match("b")
	if s := b.ST2110Source; s == nil || s.Skew != 50*time.Millisecond || len(b.Outputs) != 1 {
		t.Fatalf("b: %+v %+v", s, b.Outputs)
	}
	if o := b.Outputs[0]; o.ST2110 == nil || o.ST2110.Video.String() != "239.30.0.1:5004" || o.ST2110.Leg2.String() != "239.31.0.1:5004" ||
		o.ST2110.TP != "2110TPW" || o.SDPFile != "out.sdp" || o.TTL != 4 || o.Dest != o.ST2110.Video {
		t.Errorf("b output: %+v %+v", o, o.ST2110)
	}
}

func TestST2110Errors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cam.sdp"), []byte(dupSDP), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(dupSDP, "exactframerate=50\r\na=mid:a", "a=mid:a", 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.sdp"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"routes:\n  a:\n    source: st2110\n", "needs sdp: FILE.sdp"},
		{"routes:\n  a:\n    source: st2110://bad.sdp\n", "meshgw.yaml:3: routes.a: " + filepath.Join(dir, "bad.sdp") + ": st2110 SDP: m= line 1 (video): fmtp has no exactframerate"},
		{"routes:\n  a:\n    source: st2110://cam.sdp\n    fec: {columns: 5}\n", "fec: applies only to rtp:// sources"},
		{"routes:\n  a:\n    source: st2110://cam.sdp\n    backup: demo\n", "cannot have a backup"},
		{"routes:\n  a:\n    source: rtp://127.0.0.1:5000\n    dup_skew: C\n", "dup_skew: applies only to st2110 sources"},
		{"routes:\n  a:\n    source: demo\n    outputs:\n      - st2110: {video: 127.0.0.1:5004, audio: 127.0.0.1:5006}\n", "ST 2110-30 output is not implemented"},
		{"routes:\n  a:\n    source: demo\n    outputs:\n      - st2110: {video: 127.0.0.1:5004}\n        url: rtp://127.0.0.1:6000\n", "either url: (plain RTP) or st2110:"},
		{"routes:\n  a:\n    source: demo\n    outputs:\n      - url: rtp://127.0.0.1:6000\n        sdp: x.sdp\n", "sdp: applies to st2110: outputs"},
		{"routes:\n  a:\n    source: demo\n    outputs:\n      - st2110: {video: '[::1]:5004'}\n", "is not IPv4 HOST:PORT"},
	} {
		_, err := Parse(filepath.Join(dir, "meshgw.yaml"), []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want one containing %q", c.yaml, err, c.want)
		}
	}
}
