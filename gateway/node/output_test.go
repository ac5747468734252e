package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
)

// portTriple is three loopback sockets at P, P+2 and P+4 (media, column FEC, row FEC) that
// record every datagram.
type portTriple struct {
	port  int
	conns [3]*net.UDPConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	got   [3][][]byte
}

func listenPortTriple(t testing.TB) *portTriple {
	t.Helper()
	tr := &portTriple{}
	tr.port, tr.conns = peertest.ListenFECPorts(t)
	for i, c := range tr.conns {
		_ = c.SetReadBuffer(4 << 20)
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				tr.mu.Lock()
				tr.got[i] = append(tr.got[i], bytes.Clone(buf[:n]))
				tr.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range tr.conns {
			c.Close()
		}
		tr.wg.Wait()
	})
	return tr
}

func (tr *portTriple) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tr.port))
}

func (tr *portTriple) counts() [3]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return [3]int{len(tr.got[0]), len(tr.got[1]), len(tr.got[2])}
}

func (tr *portTriple) snapshot() [3][][]byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out [3][][]byte
	for i := range out {
		out[i] = append([][]byte(nil), tr.got[i]...)
	}
	return out
}

// publishTo makes stream s a publisher stream on n fed from a local socket; it returns a
// function sending RTP packet i (sequence base+i, sizes varying) into it.
func publishTo(t *testing.T, n *Local, s string) func(i int) []byte {
	t.Helper()
	mustApply(t, n, Flow{ID: s + "-src", Version: 1, Kind: SourcePublisher, Stream: s, Tracks: video})
	pub := newUpstream(t)
	prtp, prtcp := pub.addrs()
	mustApply(t, n, Flow{ID: s + "-in", Version: 1, Kind: IngressUDP, Stream: s, RTP: prtp, RTCP: prtcp})
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

// TestOutputFEC2022_7: a SinkRTP with 2D FEC and a second leg sends every packet to both legs
// identically (same bytes, so same SSRC/seq/timestamp/payload), the same FEC to both legs' P+2
// and P+4, and that FEC rebuilds media lost on the way (checked with the fec decoder).
func TestOutputFEC2022_7(t *testing.T) {
	n := newLocal(t, nil)
	send := publishTo(t, n, "s")
	leg1, leg2 := listenPortTriple(t), listenPortTriple(t)
	f := Flow{ID: "out", Version: 1, Kind: SinkRTP, Stream: "s", RTP: leg1.addr(), RTCP: addPort(leg1.addr(), 1),
		Output: OutputSpec{Leg2: leg2.addr(), FECColumns: 5, FECRows: 4}}
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
		c1, c2 := leg1.counts(), leg2.counts()
		if c1 == c2 && c1 == [3]int{total, wantCol, wantRow} {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got leg1 %v leg2 %v (media, column, row), want %v", c1, c2, [3]int{total, wantCol, wantRow})
		}
	}
	g1, g2 := leg1.snapshot(), leg2.snapshot()
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

	// Drop media (single losses and a burst of L) and rebuild them from the captured FEC. The
	// hub put the packets on its own line, so the sequence numbers are the captured ones.
	first := binary.BigEndian.Uint16(g1[0][0][2:])
	drop := map[uint16]bool{}
	for i := 3; i < 200; i += 7 {
		drop[first+uint16(i)] = true
	}
	for i := 250; i < 255; i++ {
		drop[first+uint16(i)] = true
	}
	dec, err := fec.NewDecoder(fec.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	orig := map[uint16][]byte{}
	for _, m := range g1[0] {
		seq := binary.BigEndian.Uint16(m[2:])
		orig[seq] = m
		if !drop[seq] {
			if err := dec.PushMedia(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, kind := range []fec.Kind{fec.Column, fec.Row} {
		for _, p := range g1[1+k] {
			if err := dec.PushFEC(kind, p); err != nil {
				t.Fatalf("%s FEC: %v", kind, err)
			}
		}
	}
	got := 0
	for {
		b, ok := dec.Recovered()
		if !ok {
			break
		}
		seq := binary.BigEndian.Uint16(b[2:])
		if !drop[seq] || !bytes.Equal(b, orig[seq]) {
			t.Errorf("recovered seq %d wrong", seq)
		}
		got++
	}
	if got != len(drop) {
		t.Errorf("recovered %d of %d dropped packets", got, len(drop))
	}
	if l, d := dec.Matrix(); l != 5 || d != 4 {
		t.Errorf("decoder learned L×D %d×%d, want 5×4", l, d)
	}
	if err := n.Delete(t.Context(), "out"); err != nil {
		t.Fatal(err)
	}
}

// TestOutputColumnOnly: 1D (column) FEC sends nothing to P+4.
func TestOutputColumnOnly(t *testing.T) {
	n := newLocal(t, nil)
	send := publishTo(t, n, "s")
	tr := listenPortTriple(t)
	mustApply(t, n, Flow{ID: "out", Version: 1, Kind: SinkRTP, Stream: "s", RTP: tr.addr(), RTCP: addPort(tr.addr(), 1),
		Output: OutputSpec{FECColumns: 10, FECRows: 5, FECMode: fec.ModeColumn}})
	for i := range 200 {
		send(i)
	}
	want := [3]int{200, 200/50*10 - 10, 0}
	for deadline := time.Now().Add(10 * time.Second); tr.counts() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %v", tr.counts(), want)
		}
	}
}

func TestOutputValidate(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:5000")
	base := Flow{ID: "o", Stream: "s", Kind: SinkRTP, RTP: dst, RTCP: addPort(dst, 1)}
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
		f.Output = tc.spec
		if err := f.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

// BenchmarkOutputDeliver is the per-packet cost of a 2022-7 output with 2D FEC: the hub's
// delivery, both legs' queues and the encoder (sending runs on the legs' egress workers). It must
// report 0 allocs/op.
func BenchmarkOutputDeliver(b *testing.B) {
	for _, spec := range []OutputSpec{{}, {FECColumns: 10, FECRows: 10}} {
		name := "plain"
		if spec.FECColumns != 0 {
			name = fmt.Sprintf("fec%dx%d", spec.FECColumns, spec.FECRows)
		}
		for _, legs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/legs=%d", name, legs), func(b *testing.B) {
				sinkA := listenLoopback(b)
				sinkB := listenLoopback(b)
				spec := spec
				if legs == 2 {
					spec.Leg2 = sinkB.LocalAddr().(*net.UDPAddr).AddrPort()
				}
				dst := sinkA.LocalAddr().(*net.UDPAddr).AddrPort()
				pool := rtp.NewPool()
				o, err := newRTPOutput(Flow{RTP: dst, RTCP: addPort(dst, 1), Output: spec}, pool, 4096, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer o.Close()
				pkt := mkRTP(1, 0, 0)
				pkt = append(pkt, make([]byte, 1188)...)
				warm := func(i int) {
					binary.BigEndian.PutUint16(pkt[2:], uint16(i))
					p := pool.Get(len(pkt))
					copy(p.Bytes(), pkt)
					o.DeliverRTP(p)
				}
				for i := range 20000 { // queues grow to their bound here, not in the timed loop
					warm(i)
				}
				time.Sleep(50 * time.Millisecond)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					warm(20000 + i)
				}
			})
		}
	}
}
