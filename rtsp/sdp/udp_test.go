package sdp

import (
	"net/netip"
	"strings"
	"testing"
)

func TestForUDP(t *testing.T) {
	src := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n" +
		"m=audio 0 RTP/SAVP 97\r\na=rtpmap:97 opus/48000/2\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\na=control:trackID=1\r\n"
	out, err := ForUDP([]byte(src), netip.MustParseAddr("127.0.0.1"), 5004)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"c=IN IP4 127.0.0.1\r\n", "m=video 5004 RTP/AVP 96\r\n", "a=rtpmap:96 H264/90000\r\n",
		"a=fmtp:96 packetization-mode=1\r\n", "m=audio 5006 RTP/AVP 97\r\n", "a=rtpmap:97 opus/48000/2\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, gone := range []string{"control", "crypto", "SAVP"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q kept in\n%s", gone, got)
		}
	}
	if _, _, err := Parse(out); err != nil {
		t.Errorf("the result does not parse: %v", err)
	}
	if _, err := ForUDP([]byte(src), netip.MustParseAddr("127.0.0.1"), 65534); err == nil {
		t.Error("ports past 65535 accepted")
	}
	if _, err := ForUDP([]byte("garbage"), netip.MustParseAddr("127.0.0.1"), 5004); err == nil {
		t.Error("garbage accepted")
	}
}
