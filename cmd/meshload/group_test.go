//go:build linux

package main

import (
	"testing"
)

func TestGroupOnRTP(t *testing.T) {
	var g rxGroup
	rec := &schedLog{e: make([]schedEntry, 4)}
	i := g.addLine(0, rec, false)
	g.setRecording(true, 1000)
	pkt := make([]byte, 200)
	mk := func(seq uint16, ssrc uint32, sent int64) []byte {
		putRTPHeader(pkt, seq, 0, ssrc, false)
		putLoadHeader(pkt[rtpHdrLen:], sent, 0)
		return pkt
	}
	g.onRTP(i, mk(1, 7, 500), 2500)   // 2 µs latency
	g.onRTP(i, mk(2, 7, 500), 3500)   // 3 µs
	g.onRTP(i, []byte{0x80, 1, 2}, 0) // too short: stray
	g.onRTCP(i)
	s := g.snapshot(nil, new(latencyHist))
	if s[0].Received != 2 || s[0].Stray != 1 || s[0].RTCP != 1 || s[0].Bytes != 400 {
		t.Fatalf("snapshot %+v", s[0])
	}
	if g.hist.total != 2 || g.hist.max != 3000 {
		t.Fatalf("latency total %d max %d", g.hist.total, g.hist.max)
	}
	if rec.n != 2 || rec.e[0] != (schedEntry{at: 1, size: 200}) || rec.e[1].at != 2 {
		t.Fatalf("schedule %+v", rec.e[:rec.n])
	}
	if allocs := testing.AllocsPerRun(1000, func() { g.onRTP(i, mk(3, 7, 1), 2) }); allocs != 0 {
		t.Fatalf("onRTP allocates %.1f times per packet", allocs)
	}

	// the floor counts its own SSRC only, from a clean slate
	g.startFloor(99)
	g.onRTP(i, mk(1000, 7, 0), 0)
	g.onRTP(i, mk(0, 99, 0), 0)
	s = g.snapshot(s[:0], new(latencyHist))
	if s[0].Received != 1 || s[0].Stray != 1 || s[0].Max != 0 {
		t.Fatalf("floor snapshot %+v", s[0])
	}
}

func TestRTPFieldsExtension(t *testing.T) {
	// CSRC count 1 and a one-word header extension precede the payload
	b := []byte{0x91, 96, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 1, 1, 1, 1, 0xbe, 0xde, 0, 1, 2, 2, 2, 2, 'M', 'L'}
	seq, ssrc, payload, ok := rtpFields(b)
	if !ok || seq != 5 || ssrc != 9 || string(payload) != "ML" {
		t.Fatalf("seq %d ssrc %d payload %q ok %v", seq, ssrc, payload, ok)
	}
	if _, _, _, ok := rtpFields(b[:18]); ok {
		t.Fatal("truncated extension accepted")
	}
	if _, _, _, ok := rtpFields([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); ok {
		t.Fatal("RTP version 1 accepted")
	}
}

func TestSDPMedias(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=control:rtsp://other:1/abs/trackID=1\r\n" +
		"m=audio 0 RTP/AVP 98\r\n"
	got, err := sdpMedias([]byte(sdp), "rtsp://h:1/demo/")
	if err != nil {
		t.Fatal(err)
	}
	want := []sdpMedia{{control: "rtsp://h:1/demo/trackID=0"}, {control: "rtsp://other:1/abs/trackID=1"}, {control: "rtsp://h:1/demo/"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("track %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if resolveControl("rtsp://h/load", "trackID=0") != "rtsp://h/load/trackID=0" {
		t.Error("control not joined with a slash")
	}
	if _, err := sdpMedias([]byte("v=0\r\n"), "rtsp://h/"); err == nil {
		t.Error("SDP without media accepted")
	}
}

// TestSDPMediasKeyed: a key attribute keys its own media section; a
// session-level one (MIKEY may sit there) keys every section.
func TestSDPMediasKeyed(t *testing.T) {
	head := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, sdp string
		want      []bool
	}{
		{"sdes on the first media", head +
			"m=video 0 RTP/SAVP 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\na=control:trackID=0\r\n" +
			"m=audio 0 RTP/AVP 97\r\na=control:trackID=1\r\n", []bool{true, false}},
		{"mikey per media", head +
			"m=video 0 RTP/SAVP 96\r\na=key-mgmt:mikey AQAFAA\r\n" +
			"m=audio 0 RTP/SAVP 97\r\na=key-mgmt:mikey AQAFAA\r\n", []bool{true, true}},
		{"session-level mikey", head + "a=key-mgmt:mikey AQAFAA\r\n" +
			"m=video 0 RTP/SAVP 96\r\nm=audio 0 RTP/SAVP 97\r\n", []bool{true, true}},
		{"plain", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", []bool{false}},
	} {
		got, err := sdpMedias([]byte(tc.sdp), "rtsps://h/x")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %+v", tc.name, got)
		}
		for i, w := range tc.want {
			if got[i].keyed != w {
				t.Errorf("%s: media %d keyed %v, want %v", tc.name, i, got[i].keyed, w)
			}
		}
	}
}

// TestGroupOnRTPSRTP: an SRTP line counts delivery and loss from the clear
// header, takes no latency from its (encrypted) payload, and counts a payload
// that was left in clear; the floor's own plain packets on it still give
// latency.
func TestGroupOnRTPSRTP(t *testing.T) {
	var g rxGroup
	i := g.addLine(0, nil, true)
	pkt := make([]byte, 200)
	enc := func(seq uint16, ssrc uint32) []byte {
		putRTPHeader(pkt, seq, 0, ssrc, false)
		for j := rtpHdrLen; j < len(pkt); j++ {
			pkt[j] = byte(j * 7) // stands for ciphertext: not the load header
		}
		return pkt
	}
	clear := func(seq uint16, ssrc uint32) []byte {
		putRTPHeader(pkt, seq, 0, ssrc, false)
		putLoadHeader(pkt[rtpHdrLen:], 100, 0)
		return pkt
	}
	g.onRTP(i, enc(10, 7), 1000)
	g.onRTP(i, enc(12, 7), 1000) // 11 lost
	g.onRTP(i, clear(13, 7), 1000)
	s := g.snapshot(nil, new(latencyHist))
	if s[0].Received != 3 || s[0].Max-s[0].Base != 3 || s[0].Clear != 1 {
		t.Fatalf("snapshot %+v", s[0])
	}
	if g.hist.total != 0 {
		t.Fatalf("%d latency samples from an SRTP line", g.hist.total)
	}
	if allocs := testing.AllocsPerRun(1000, func() { g.onRTP(i, enc(14, 7), 2) }); allocs != 0 {
		t.Fatalf("onRTP allocates %.1f times per packet", allocs)
	}

	g.startFloor(99)
	g.onRTP(i, clear(0, 99), 1100)
	s = g.snapshot(s[:0], new(latencyHist))
	if s[0].Clear != 1 || g.hist.total != 1 {
		t.Fatalf("floor on an SRTP line: clear %d, latency samples %d", s[0].Clear, g.hist.total)
	}
}

func TestStreamURLs(t *testing.T) {
	cfg := defaultConfig()
	cfg.URL = "rtsp://127.0.0.1:8554/load/"
	cfg.Publish, cfg.Publishers = true, 3
	us, err := cfg.streamURLs()
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 3 || us[0].String() != "rtsp://127.0.0.1:8554/load0" || us[2].String() != "rtsp://127.0.0.1:8554/load2" {
		t.Fatalf("urls %v", us)
	}
	cfg.Publishers = 1
	if us, _ := cfg.streamURLs(); len(us) != 1 || us[0].String() != cfg.URL {
		t.Fatalf("single url %v", us)
	}
}
