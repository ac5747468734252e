package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	meshsdp "github.com/meshgw/meshgw/rtsp/sdp"
)

const sampleSDP = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=cam\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42c01f\r\na=control:stream=0\r\na=ssrc:1234 cname:x\r\n" +
	"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1190;sizelength=13;indexlength=3;indexdeltalength=3\r\na=control:stream=1\r\n"

func TestReaderSDPRewritesControlAndDropsSourceIdentity(t *testing.T) {
	out, err := ReaderSDP([]byte(sampleSDP), "cam", netip.MustParseAddr("127.0.0.1"), 7)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"a=control:trackID=0\r\n", "a=control:trackID=1\r\n", "a=rtpmap:96 H264/90000", "a=fmtp:97 streamtype=5", "o=- 7 7 IN IP4 127.0.0.1", "m=audio 0 RTP/AVP 97"} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten SDP lacks %q:\n%s", want, s)
		}
	}
	for _, bad := range []string{"a=ssrc", "stream=0", "10.0.0.5"} {
		if strings.Contains(s, bad) {
			t.Errorf("rewritten SDP still has %q:\n%s", bad, s)
		}
	}
	_, tracks, err := meshsdp.Parse(out)
	if err != nil {
		t.Fatalf("rewritten SDP does not parse back: %v", err)
	}
	if len(tracks) != 2 || tracks[0].ClockRate != 90000 || tracks[1].ClockRate != 48000 || tracks[1].Media != "audio" {
		t.Fatalf("tracks = %+v", tracks)
	}
}

func TestReadRequestLimits(t *testing.T) {
	ok := "OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n"
	req, err := readRequest(bufio.NewReader(strings.NewReader(ok)), 1024, 0)
	if err != nil || req.Method != base.Options {
		t.Fatalf("readRequest = %v, %v", req, err)
	}
	big := "OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n"
	if _, err := readRequest(bufio.NewReader(strings.NewReader(big)), 1024, 0); !errors.Is(err, errTooLarge) {
		t.Fatalf("oversized head: err = %v", err)
	}
	body := "ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5000\r\n\r\n"
	if _, err := readRequest(bufio.NewReader(strings.NewReader(body)), 1024, 0); !errors.Is(err, errTooLarge) {
		t.Fatalf("oversized body: err = %v", err)
	}
	for _, bad := range []string{"GARBAGE\r\n\r\n", "OPTIONS rtsp://h/x HTTP/1.1\r\nCSeq: 1\r\n\r\n", "DESCRIBE rtsp://h/x RTSP/1.0\r\nContent-Length: x\r\n\r\n"} {
		if _, err := readRequest(bufio.NewReader(strings.NewReader(bad)), 1024, 0); err == nil {
			t.Errorf("readRequest(%q) accepted", bad)
		}
	}
}

func TestParseTransports(t *testing.T) {
	ts, err := parseTransports(base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1;mode=RECORD,RTP/AVP;unicast;client_port=5000-5001;mode=\"RECORD\";source=evil.example"})
	if err != nil || len(ts) != 2 {
		t.Fatalf("parseTransports = %v, %v", ts, err)
	}
	if ts[1].Source != nil {
		t.Fatal("source= from a client must be dropped")
	}
	for _, m := range []string{"record", "RECORD", "\"RECORD\""} {
		ts, err := parseTransports(base.HeaderValue{"RTP/AVP/UDP;unicast;client_port=1-2;mode=" + m})
		if err != nil || ts[0].Mode == nil || ts[0].Mode.String() != "record" {
			t.Errorf("mode=%s: %v %v", m, ts, err)
		}
	}
	if _, err := parseTransports(base.HeaderValue{"FOO/BAR"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func TestTrackFromControl(t *testing.T) {
	cases := []struct {
		req, base string
		controls  []string
		want      int
	}{
		{"/pub/streamid=1", "/pub", []string{"streamid=0", "streamid=1"}, 1},
		{"/pub/stream=0", "/pub", []string{"stream=0", "stream=1"}, 0},
		{"/pub/trackID=1", "/pub", []string{"rtsp://127.0.0.1:8554/pub/trackID=0", "rtsp://127.0.0.1:8554/pub/trackID=1"}, 1},
		{"/pub", "/pub", []string{"streamid=0"}, 0},
		{"/pub/nope", "/pub", []string{"streamid=0", "streamid=1"}, -1},
	}
	for _, c := range cases {
		if got := trackFromControl(c.req, c.base, c.controls); got != c.want {
			t.Errorf("trackFromControl(%q) = %d, want %d", c.req, got, c.want)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
	f.Add([]byte("ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nv=0"))
	f.Add([]byte("SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=1-2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bufio.NewReader(bytes.NewReader(b)), 4096, 0)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}

func FuzzParseTransports(f *testing.F) {
	f.Add("RTP/AVP;unicast;client_port=5000-5001")
	f.Add("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
	f.Add("RTP/AVP;multicast;destination=239.1.1.1;port=5000-5001;ttl=1")
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseTransports(base.HeaderValue{s})
		if err == nil && len(ts) == 0 {
			t.Fatal("no transports without error")
		}
		for _, tr := range ts {
			if tr.Source != nil {
				t.Fatal("client source= survived")
			}
		}
	})
}

func FuzzReaderSDP(f *testing.F) {
	f.Add([]byte(sampleSDP))
	f.Add([]byte("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ReaderSDP(b, "x\r\ninjected", netip.MustParseAddr("127.0.0.1"), 1)
		if err != nil {
			return
		}
		if bytes.Contains(out, []byte("\ninjected")) {
			t.Fatal("title injected a line")
		}
		if _, _, err := meshsdp.Parse(out); err != nil {
			t.Fatalf("rewritten SDP does not parse: %v\n%s", err, out)
		}
	})
}
