package node

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/meshgw/meshgw/rtp"
)

// TestReaderReceptionReports: a reader answers the hub's sender report with a receiver report;
// the sink's stats carry its loss and jitter, and the round trip from the echoed SR.
func TestReaderReceptionReports(t *testing.T) {
	n := newLocal(t, nil)
	send := publishTo(t, n, "s")
	r := newTestReader(t)
	st := mustApply(t, n, sinkTo("rd", "s", r))
	var sr *rtcp.SenderReport
	for i := 0; sr == nil; i++ {
		if i == 500 {
			t.Fatal("the reader got no sender report")
		}
		send(i)
		time.Sleep(2 * time.Millisecond)
		r.mu.Lock()
		for _, b := range r.rtcp {
			if pkts, err := rtcp.Unmarshal(b); err == nil {
				if s, ok := pkts[0].(*rtcp.SenderReport); ok {
					sr = s
				}
			}
		}
		r.mu.Unlock()
	}
	if sr.SSRC != st.SSRC {
		t.Fatalf("SR from %08x, the sink's line is %08x", sr.SSRC, st.SSRC)
	}
	time.Sleep(50 * time.Millisecond) // the reader holds the SR 50 ms before reporting
	rr, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 0x77, Reports: []rtcp.ReceptionReport{
			{SSRC: 0x12345, TotalLost: 99}, // about another line: ignored
			{SSRC: st.SSRC, FractionLost: 26, TotalLost: 3, LastSequenceNumber: 60100, Jitter: 450,
				LastSenderReport: uint32(sr.NTPTime >> 16), Delay: 65536 / 20}}},
		rtcp.NewCNAMESourceDescription(0x77, "player"),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, rtcpDst := pairAddrs(n)
	if _, err := r.rtcpConn.WriteToUDPAddrPort(rr, rtcpDst); err != nil {
		t.Fatal(err)
	}
	var got *rtp.ReceptionStats
	for deadline := time.Now().Add(5 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s, err := n.Stats("rd")
		if err != nil {
			t.Fatal(err)
		}
		got = s.Reception
	}
	if got == nil {
		t.Fatal("no reception stats after the reader's report")
	}
	if got.Reports != 1 || got.CumulativeLost != 3 || got.HighestSeq != 60100 || got.FractionLost != 26.0/256 || got.Jitter != 5*time.Millisecond {
		t.Errorf("reception %+v", got)
	}
	// the round trip is the loopback's, a few ms at most; the 50 ms the reader held the SR is
	// taken off by DLSR
	if got.RTT <= 0 || got.RTT > 45*time.Millisecond {
		t.Errorf("RTT %v, want the loopback's round trip, not the 50 ms hold", got.RTT)
	}
}

// TestNoteReportsDoesNotAllocate: reading a reader's report into its sink's stats allocates
// nothing (it runs for every RTCP datagram from readers).
func TestNoteReportsDoesNotAllocate(t *testing.T) {
	hub := rtp.NewHub(rtp.HubConfig{Track: video[0], SSRC: 0x5eed})
	defer hub.Close()
	f := &flow{spec: Flow{Spec: UDPSink{}}, hub: hub}
	b := make([]byte, 8+24)
	b[0], b[1] = 0x81, 201
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[8:], 0x5eed)
	alive := []*flow{f}
	if n := testing.AllocsPerRun(200, func() { noteReports(b, alive) }); n != 0 {
		t.Errorf("noteReports allocates %v times per report", n)
	}
	if f.rr.Reports == 0 {
		t.Error("the report was not noted")
	}
}

// TestPublisherGetsReceiverReports: a UDP publisher that loses some packets on the way gets RTCP
// receiver reports from the node's RTCP port about its SSRC: the loss, the highest sequence
// number and its own last SR echoed.
func TestPublisherGetsReceiverReports(t *testing.T) {
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"}, ReportInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	mustApply(t, n, Flow{ID: "src", Version: 1, Stream: "s", Spec: PublisherSource{Tracks: video}})
	pub := newUpstream(t)
	prtp, prtcp := pub.addrs()
	mustApply(t, n, Flow{ID: "in", Version: 1, Stream: "s", Spec: UDPIngress{RTP: prtp, RTCP: prtcp}})
	_, nRTCP := pairAddrs(n)
	lost := 0
	for i := range 200 {
		if i%20 == 7 {
			lost++ // "lost" on the way: never sent
			continue
		}
		pub.sendRTP(t, n, 0xcafe, uint16(1000+i), uint32(i*3000))
	}
	if _, err := pub.rtcp.WriteToUDPAddrPort(mkSR(0xcafe, 0x0000_1111_2222_0000, 0), nRTCP); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = pub.rtcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		m, err := pub.rtcp.Read(buf)
		if err != nil {
			t.Fatalf("the publisher got no receiver report with its SR echoed: %v", err)
		}
		pkts, err := rtcp.Unmarshal(buf[:m])
		if err != nil {
			t.Fatalf("not RTCP: %v", err)
		}
		rr, ok := pkts[0].(*rtcp.ReceiverReport)
		if !ok || len(rr.Reports) != 1 {
			t.Fatalf("got %T, want an RR with one block", pkts[0])
		}
		r := rr.Reports[0]
		if r.LastSenderReport == 0 {
			continue // a report from before the SR arrived
		}
		if r.SSRC != 0xcafe || r.LastSequenceNumber != 1199 || r.TotalLost != uint32(lost) || r.LastSenderReport != 0x11112222 {
			t.Errorf("report %+v, want SSRC cafe, highest 1199, %d lost, LSR 11112222", r, lost)
		}
		return
	}
}
