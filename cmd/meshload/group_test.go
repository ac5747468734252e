//go:build linux

package main

import (
	"strings"
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
	if s[0].Received != 1 || s[0].Stray != 1 || len(s[0].Seqs) != 1 || s[0].Seqs[0].Max != 0 || s[0].Seqs[0].SSRC != 99 {
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
	if s[0].Received != 3 || s[0].Seqs[0].Max-s[0].Seqs[0].Base != 3 || s[0].Clear != 1 {
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

// Each SSRC on a track is a sequence line of its own: a second SSRC is not a
// jump of the first one's numbers, and loss is counted within each.
func TestGroupSSRCLines(t *testing.T) {
	var g rxGroup
	i := g.addLine(0, nil, false)
	pkt := make([]byte, 100)
	mk := func(seq uint16, ssrc uint32) []byte {
		putRTPHeader(pkt, seq, 0, ssrc, false)
		return pkt
	}
	g.onRTP(i, mk(100, 1), 0)
	a := g.snapshot(nil, new(latencyHist))[0]
	g.onRTP(i, mk(101, 1), 0)
	g.onRTP(i, mk(40000, 2), 0) // a new SSRC far away in sequence space: no loss
	g.onRTP(i, mk(103, 1), 0)   // 102 lost on SSRC 1
	g.onRTP(i, mk(40001, 2), 0)
	g.onRTP(i, mk(40003, 2), 0) // 40002 lost on SSRC 2
	b := g.snapshot(nil, new(latencyHist))[0]
	if len(b.Seqs) != 2 || b.Seqs[0].SSRC != 1 || b.Seqs[1].SSRC != 2 || b.Received != 6 {
		t.Fatalf("snapshot %+v", b)
	}
	w := window(a, b)
	// SSRC 1: 101..103 expected 3, received 2; SSRC 2 started inside: 40000..40003, 4 expected, 3 received
	if w.Expected != 7 || w.Received != 5 || w.Lost != 2 || w.SSRCs != 2 {
		t.Fatalf("window %+v", w)
	}
	for ssrc := uint32(3); ssrc <= maxSSRCs+1; ssrc++ {
		g.onRTP(i, mk(1, ssrc), 0)
	}
	c := g.snapshot(nil, new(latencyHist))[0]
	if len(c.Seqs) != maxSSRCs || c.Stray != 1 {
		t.Fatalf("beyond %d SSRCs: %d lines, stray %d", maxSSRCs, len(c.Seqs), c.Stray)
	}
	seq := uint16(200)
	if allocs := testing.AllocsPerRun(1000, func() {
		seq++
		g.onRTP(i, mk(seq, 1), 0)
		g.onRTP(i, mk(seq, 3), 0)
	}); allocs != 0 {
		t.Fatalf("onRTP switching SSRCs allocates %.1f times per packet", allocs)
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

func TestRouteURLs(t *testing.T) {
	cfg := defaultConfig()
	cfg.URL = "rtsp://127.0.0.1:8554/pull"
	cfg.Routes = 3
	us, err := cfg.streamURLs()
	if err != nil || len(us) != 3 || us[1].String() != "rtsp://127.0.0.1:8554/pull1" {
		t.Fatalf("urls %v err %v", us, err)
	}
	if pub, err := cfg.publishURLs(us); err != nil || pub != nil {
		t.Fatalf("nothing to publish: %v %v", pub, err)
	}
	cfg.Publish = true
	if pub, _ := cfg.publishURLs(us); len(pub) != 3 {
		t.Fatalf("a publisher per route: %v", pub)
	}
	cfg.PublishURL = "rtsp://127.0.0.1:9554/clip"
	if pub, _ := cfg.publishURLs(us); len(pub) != 1 || pub[0].String() != cfg.PublishURL {
		t.Fatalf("one publisher to the origin: %v", pub)
	}
}

func TestRouteOfSpreadsEvenly(t *testing.T) {
	for _, c := range []struct{ readers, routes int }{{100, 10}, {100, 100}, {7, 3}, {3, 10}, {0, 5}} {
		n := make([]int, c.routes)
		for i := range c.readers {
			n[routeOf(i, c.routes)]++
		}
		lo, hi := n[0], n[0]
		for _, k := range n {
			lo, hi = min(lo, k), max(hi, k)
		}
		if hi-lo > 1 {
			t.Errorf("%d readers over %d routes: %v", c.readers, c.routes, n)
		}
	}
}

func TestRouteReport(t *testing.T) {
	a := &routeAcc{routes: make([]RouteReport, 4)}
	for r := range 4 {
		a.addReader(r)
		a.addReader(r)
	}
	a.addReader(3)
	// route 0 clean; route 1 loses 1 %; route 2 loses 10 % on track 1 only; route 3 clean
	a.addLine(0, 0, lineWindow{Expected: 100, Received: 100, SSRCs: 1})
	a.addLine(1, 0, lineWindow{Expected: 100, Received: 99, Lost: 1, SSRCs: 1})
	a.addLine(2, 0, lineWindow{Expected: 50, Received: 50, SSRCs: 1})
	a.addLine(2, 1, lineWindow{Expected: 50, Received: 40, Lost: 10, SSRCs: 2})
	a.addLine(3, 0, lineWindow{Expected: 100, Received: 100, SSRCs: 1})
	rep := a.report()
	if rep.Routes != 4 || rep.Delivered != 389 || rep.RoutesWithLoss != 2 || rep.MinReaders != 2 || rep.MaxReaders != 3 {
		t.Fatalf("report %+v", rep)
	}
	if rep.MinPercent != 0 || rep.MedianPercent != 0.5 || rep.MaxPercent != 10 {
		t.Fatalf("loss min %v median %v max %v", rep.MinPercent, rep.MedianPercent, rep.MaxPercent)
	}
	tr := rep.PerRoute[2].Tracks
	if len(tr) != 2 || tr[0].Lost != 0 || tr[1].Lost != 10 || tr[1].Percent != 20 || tr[1].MaxSSRCs != 2 {
		t.Fatalf("route 2 tracks %+v", tr)
	}
	var b strings.Builder
	writeRoutes(&b, rep)
	if !strings.Contains(b.String(), "median 0.5000 %") || !strings.Contains(b.String(), "track 1 lost 10 of 50") {
		t.Fatalf("table:\n%s", b.String())
	}
}
