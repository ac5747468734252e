package node

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/internal/peertest"
)

// addPort is ap with its port d higher (an RTCP or FEC port of a media port).
func addPort(ap netip.AddrPort, d uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+d)
}

// publishTo makes stream s a publisher stream on n fed from a local socket; it returns a
// function sending RTP packet i (sequence base+i, sizes varying) into it.
func publishTo(t *testing.T, n *Local, s string) func(i int) []byte {
	t.Helper()
	mustApply(t, n, Flow{ID: s + "-src", Version: 1, Stream: s, Spec: PublisherSource{Tracks: video}})
	pub := newUpstream(t)
	prtp, prtcp := pub.addrs()
	mustApply(t, n, Flow{ID: s + "-in", Version: 1, Stream: s, Spec: UDPIngress{RTP: prtp, RTCP: prtcp}})
	dst, _ := pairAddrs(n)
	return func(i int) []byte {
		b := make([]byte, 12+100+(i*37)%1100)
		b[0], b[1] = 0x80, 96
		if i%9 == 8 {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint16(b[2:], uint16(60000+i))
		binary.BigEndian.PutUint32(b[4:], uint32(i/9)*3600)
		binary.BigEndian.PutUint32(b[8:], 0xabcdef01)
		for j := 12; j < len(b); j++ {
			b[j] = byte(i + j)
		}
		if _, err := pub.rtp.WriteToUDPAddrPort(b, dst); err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestOutputFEC2022_7: a SinkRTP flow with 2D FEC and a second leg sends every packet of its
// stream to both legs identically (same bytes, so same SSRC/seq/timestamp/payload) and the same
// FEC to both legs' P+2 and P+4, and the flow's stats count them. (rtp/rtpout's tests check that
// the FEC rebuilds lost media.)
func TestOutputFEC2022_7(t *testing.T) {
	n := newLocal(t, nil)
	send := publishTo(t, n, "s")
	leg1, leg2 := peertest.RecordFECPorts(t), peertest.RecordFECPorts(t)
	f := Flow{ID: "out", Version: 1, Stream: "s", Spec: RTPSink{RTP: leg1.Addr(), RTCP: addPort(leg1.Addr(), 1), Output: OutputSpec{Leg2: leg2.Addr(), FECColumns: 5, FECRows: 4}}}
	mustApply(t, n, f)
	const total = 400 // 20 matrices of 5×4
	for i := range total {
		send(i)
		if i%20 == 19 {
			time.Sleep(2 * time.Millisecond) // stay inside loopback socket buffers
		}
	}
	// rows: one per 5 media; columns: 5 per matrix, those of the last matrix still pending
	wantRow, wantCol := total/5, total/20*5-5
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c1, c2 := leg1.Counts(), leg2.Counts()
		if c1 == c2 && c1 == [3]int{total, wantCol, wantRow} {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got leg1 %v leg2 %v (media, column, row), want %v", c1, c2, [3]int{total, wantCol, wantRow})
		}
	}
	g1, g2 := leg1.Snapshot(), leg2.Snapshot()
	for k := range 3 {
		for i := range g1[k] {
			if !bytes.Equal(g1[k][i], g2[k][i]) {
				t.Fatalf("stream %d packet %d differs between the legs", k, i)
			}
		}
	}
	st, err := n.Stats("out")
	if err != nil {
		t.Fatal(err)
	}
	// Packets counts the sender reports to P+1 too: a handful here.
	if st.Packets < 2*total || st.Packets > 2*total+10 || st.FEC != uint64(2*(wantRow+wantCol)) || st.Errors != 0 {
		t.Errorf("stats %+v, want %d packets (+ a few SRs) and %d FEC", st, 2*total, 2*(wantRow+wantCol))
	}

	if err := n.Delete(t.Context(), "out"); err != nil {
		t.Fatal(err)
	}
}

// TestOutputColumnOnly: 1D (column) FEC sends nothing to P+4.
func TestOutputColumnOnly(t *testing.T) {
	n := newLocal(t, nil)
	send := publishTo(t, n, "s")
	tr := peertest.RecordFECPorts(t)
	mustApply(t, n, Flow{ID: "out", Version: 1, Stream: "s", Spec: RTPSink{RTP: tr.Addr(), RTCP: addPort(tr.Addr(), 1), Output: OutputSpec{FECColumns: 10, FECRows: 5, FECMode: fec.ModeColumn}}})
	for i := range 200 {
		send(i)
	}
	want := [3]int{200, 200/50*10 - 10, 0}
	for deadline := time.Now().Add(10 * time.Second); tr.Counts() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %v", tr.Counts(), want)
		}
	}
}

func TestOutputValidate(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:5000")
	base := Flow{ID: "o", Stream: "s", Spec: RTPSink{RTP: dst, RTCP: addPort(dst, 1)}}
	for _, tc := range []struct {
		spec OutputSpec
		ok   bool
	}{
		{OutputSpec{}, true},
		{OutputSpec{FECColumns: 5, FECRows: 5}, true},
		{OutputSpec{FECColumns: 3, FECRows: 5}, false}, // 2D needs L ≥ 4
		{OutputSpec{FECColumns: 3, FECRows: 5, FECMode: fec.ModeColumn}, true},
		{OutputSpec{FECColumns: 20, FECRows: 20}, false}, // L×D > 100
		{OutputSpec{FECRows: 5}, false},
		{OutputSpec{TTL: 256}, false},
		{OutputSpec{Leg2: netip.MustParseAddrPort("0.0.0.0:5000")}, false},
		{OutputSpec{Leg2: netip.MustParseAddrPort("127.0.0.1:65534"), FECColumns: 5, FECRows: 5}, false},
	} {
		f := base
		f = with(f, func(s *RTPSink) { s.Output = tc.spec })
		if err := f.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}
