package rtp

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

func pionReports(b []byte) ([]ReportBlock, error) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	var out []ReportBlock
	for _, p := range pkts {
		var rs []rtcp.ReceptionReport
		switch p := p.(type) {
		case *rtcp.SenderReport:
			rs = p.Reports
		case *rtcp.ReceiverReport:
			rs = p.Reports
		}
		for _, r := range rs {
			out = append(out, ReportBlock{SSRC: r.SSRC, FractionLost: r.FractionLost, CumulativeLost: int32(r.TotalLost<<8) >> 8,
				HighestSeq: r.LastSequenceNumber, Jitter: r.Jitter, LSR: r.LastSenderReport, DLSR: r.Delay})
		}
	}
	return out, nil
}

func ourReports(b []byte) ([]ReportBlock, error) {
	var out []ReportBlock
	r := NewReportBlocks(b)
	for blk, ok := r.Next(); ok; blk, ok = r.Next() {
		out = append(out, blk)
	}
	return out, r.Err()
}

func testCompound(t testing.TB) []byte {
	b, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{
			{SSRC: 0xaabbccdd, FractionLost: 64, TotalLost: 0xfffffe, LastSequenceNumber: 70000, Jitter: 900, LastSenderReport: 0x12345678, Delay: 6553},
			{SSRC: 7, TotalLost: 5}}},
		rtcp.NewCNAMESourceDescription(1, "player"),
		&rtcp.SenderReport{SSRC: 2, NTPTime: 1, Reports: []rtcp.ReceptionReport{{SSRC: 9, Jitter: 1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReportBlocks(t *testing.T) {
	b := testCompound(t)
	got, err := ourReports(b)
	want, _ := pionReports(b)
	if err != nil || len(got) != 3 || len(want) != 3 {
		t.Fatalf("got %+v, %v; pion %+v", got, err, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("block %d: %+v, pion %+v", i, got[i], want[i])
		}
	}
	if got[0].CumulativeLost != -2 {
		t.Errorf("cumulative lost 0xfffffe read as %d, want -2 (24-bit signed)", got[0].CumulativeLost)
	}
	for _, bad := range [][]byte{{0x80}, {0x40, 201, 0, 1, 0, 0, 0, 1}, {0x81, 201, 0, 1, 0, 0, 0, 1}, {0x80, 201, 0, 9, 0, 0, 0, 1}} {
		if _, err := ourReports(bad); err == nil {
			t.Errorf("% x: no error", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		r := NewReportBlocks(b)
		for _, ok := r.Next(); ok; _, ok = r.Next() {
		}
	}); n != 0 {
		t.Errorf("walking a compound RTCP packet allocates %v times", n)
	}
}

func TestReceptionStatsRTT(t *testing.T) {
	var s ReceptionStats
	sent := Now() - int64(300*time.Millisecond)
	at := func(lsr uint32) (int64, bool) { return sent, lsr == 0x1234 }
	// the reader held our SR for 100 ms before reporting: the round trip is the other 200 ms
	s.Note(ReportBlock{FractionLost: 128, CumulativeLost: 12, HighestSeq: 99, Jitter: 9000, LSR: 0x1234, DLSR: 6554}, 90000, Now(), at)
	if s.Reports != 1 || s.FractionLost != 0.5 || s.CumulativeLost != 12 || s.Jitter != 100*time.Millisecond {
		t.Errorf("stats %+v", s)
	}
	if s.RTT < 190*time.Millisecond || s.RTT > 400*time.Millisecond {
		t.Errorf("RTT %v, want about 200 ms", s.RTT)
	}
	s.Note(ReportBlock{LSR: 0x9999}, 90000, Now(), at) // an SR we do not know keeps the last RTT
	if s.Reports != 2 || s.RTT == 0 {
		t.Errorf("after an unknown LSR: %+v", s)
	}
}

// FuzzReportBlocks: whatever a reader sends, the walk never panics, and where pion parses the
// packet the report blocks are the same.
func FuzzReportBlocks(f *testing.F) {
	f.Add(testCompound(f))
	f.Add([]byte{0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{0xa0, 201, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ourReports(b)
		want, perr := pionReports(b)
		if err != nil || perr != nil {
			return // the walk stops at what it cannot read; pion refuses more (unknown types, SDES items)
		}
		if len(got) != len(want) {
			t.Fatalf("%d blocks, pion %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("block %d: %+v, pion %+v", i, got[i], want[i])
			}
		}
	})
}

// TestAppendReceiverReport: pion reads our RR back field for field, with its CNAME.
func TestAppendReceiverReport(t *testing.T) {
	blk := ReportBlock{SSRC: 0xfeed, FractionLost: 3, CumulativeLost: -5, HighestSeq: 123456, Jitter: 77, LSR: 0xabcdef01, DLSR: 999}
	for _, cname := range []string{"", "a", "meshgw-node", "four"} {
		b := AppendReceiverReport(nil, 0x1234, cname, blk)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil || len(pkts) != 2 {
			t.Fatalf("cname %q: pion: %v (%d packets)", cname, err, len(pkts))
		}
		got, _ := pionReports(b)
		if len(got) != 1 || got[0] != blk {
			t.Errorf("cname %q: pion read %+v, want %+v", cname, got, blk)
		}
		sdes, ok := pkts[1].(*rtcp.SourceDescription)
		if !ok || len(sdes.Chunks) != 1 || len(sdes.Chunks[0].Items) != 1 || sdes.Chunks[0].Items[0].Text != cname {
			t.Errorf("cname %q: SDES %+v", cname, pkts[1])
		}
	}
}

// TestHubReceptionReport: the hub's report about its input counts loss, the highest sequence
// number across a wrap, and echoes the source's SR.
func TestHubReceptionReport(t *testing.T) {
	h := NewHub(HubConfig{Track: Track{Media: "video", PayloadType: 96, ClockRate: 90000}})
	defer h.Close()
	var iv RRInterval
	if _, ok := h.ReceptionReport(&iv, Now()); ok {
		t.Fatal("a report before any packet")
	}
	sent := 0
	for seq := uint16(65500); seq != 100; seq++ {
		if seq%10 == 3 {
			continue // lost
		}
		if err := h.WriteRTP(mkRTP(0xabc, seq, uint32(seq)*3000, 10)); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 0xabc, NTPTime: 0x0001_2345_6789_0000}})
	if err := h.WriteRTCP(sr); err != nil {
		t.Fatal(err)
	}
	blk, ok := h.ReceptionReport(&iv, Now()+int64(time.Second/2))
	total := 136 // 65500..99
	if !ok || blk.SSRC != 0xabc || blk.HighestSeq != 1<<16|99 || int(blk.CumulativeLost) != total-sent {
		t.Fatalf("report %+v, want highest %d, lost %d", blk, 1<<16|99, total-sent)
	}
	if want := uint8((total - sent) * 256 / total); blk.FractionLost != want {
		t.Errorf("fraction lost %d, want %d", blk.FractionLost, want)
	}
	if blk.LSR != 0x23456789 || blk.DLSR < 65536/2 || blk.DLSR > 65536 {
		t.Errorf("LSR %08x DLSR %d, want 23456789 and about half a second", blk.LSR, blk.DLSR)
	}
	// the next interval had no loss
	for seq := uint16(100); seq != 120; seq++ {
		_ = h.WriteRTP(mkRTP(0xabc, seq, uint32(seq)*3000, 10))
	}
	if blk, _ := h.ReceptionReport(&iv, Now()); blk.FractionLost != 0 || int(blk.CumulativeLost) != total-sent {
		t.Errorf("second report %+v", blk)
	}
}
