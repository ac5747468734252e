package rtpout

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitCounts waits until every triple has received want (media, column, row) datagrams.
func waitCounts(t *testing.T, want [3]int, trs ...*peertest.FECRecorder) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		done := true
		for _, tr := range trs {
			done = done && tr.Counts() == want
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for i, tr := range trs {
				t.Errorf("leg %d got %v (media, column, row)", i+1, tr.Counts())
			}
			t.Fatalf("want %v", want)
		}
	}
}

// mkPacket is media packet i of a stream: sequence 60000+i, sizes varying, a marker every 9.
func mkPacket(pool *rtp.Pool, i int) *rtp.Packet {
	p := pool.Get(12 + 100 + (i*37)%1100)
	b := p.Bytes()
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
	return p
}

func newOutput(t testing.TB, cfg Config) *Output {
	t.Helper()
	if cfg.Pool == nil {
		cfg.Pool = rtp.NewPool()
	}
	if !cfg.RTCP.IsValid() {
		cfg.RTCP = addPort(cfg.RTP, 1)
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// TestOutputLegsAndFEC: an output with 2D FEC and a second leg sends every packet to both legs
// identically (same bytes), the same FEC to both legs' P+2 and P+4, counts it all, and that FEC
// rebuilds media lost on the way (checked with the fec decoder).
func TestOutputLegsAndFEC(t *testing.T) {
	pool := rtp.NewPool()
	leg1, leg2 := peertest.RecordFECPorts(t), peertest.RecordFECPorts(t)
	o := newOutput(t, Config{RTP: leg1.Addr(), Leg2: leg2.Addr(), FEC: fec.Config{Columns: 5, Rows: 4}, Pool: pool})
	const total = 400 // 20 matrices of 5×4
	for i := range total {
		o.DeliverRTP(mkPacket(pool, i))
		if i%20 == 19 {
			time.Sleep(2 * time.Millisecond) // stay inside loopback socket buffers
		}
	}
	// rows: one per 5 media; columns: 5 per matrix, those of the last matrix still pending
	wantRow, wantCol := total/5, total/20*5-5
	waitCounts(t, [3]int{total, wantCol, wantRow}, leg1, leg2)
	g1, g2 := leg1.Snapshot(), leg2.Snapshot()
	for k := range 3 {
		for i := range g1[k] {
			if !bytes.Equal(g1[k][i], g2[k][i]) {
				t.Fatalf("stream %d packet %d differs between the legs", k, i)
			}
		}
	}
	if st := o.Stats(); st.Packets != 2*total || st.FEC != uint64(2*(wantRow+wantCol)) || st.Errors != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v, want %d packets and %d FEC", st, 2*total, 2*(wantRow+wantCol))
	}

	// Drop media (single losses and a burst of L) and rebuild them from the captured FEC.
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
}

// TestOutputRowOnly: 1D row FEC sends nothing to P+2.
func TestOutputRowOnly(t *testing.T) {
	pool := rtp.NewPool()
	tr := peertest.RecordFECPorts(t)
	o := newOutput(t, Config{RTP: tr.Addr(), FEC: fec.Config{Columns: 10, Mode: fec.ModeRow}, Pool: pool})
	for i := range 200 {
		o.DeliverRTP(mkPacket(pool, i))
	}
	waitCounts(t, [3]int{200, 0, 200 / 10}, tr)
}

// TestOutputClosed: after Close a delivery is released and sent nowhere.
func TestOutputClosed(t *testing.T) {
	pool := rtp.NewPool()
	tr := peertest.RecordFECPorts(t)
	o := newOutput(t, Config{RTP: tr.Addr(), Pool: pool})
	o.DeliverRTP(mkPacket(pool, 0))
	waitCounts(t, [3]int{1, 0, 0}, tr)
	o.Close()
	o.Close()
	o.DeliverRTP(mkPacket(pool, 1))
	time.Sleep(50 * time.Millisecond)
	if c := tr.Counts(); c != [3]int{1, 0, 0} {
		t.Fatalf("got %v after Close", c)
	}
}

func listenLoopback(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkOutputDeliver is the per-packet cost of a 2022-7 output with 2D FEC: the hub's
// delivery, both legs' queues and the encoder (sending runs on the legs' egress workers). It must
// report 0 allocs/op.
func BenchmarkOutputDeliver(b *testing.B) {
	for _, withFEC := range []fec.Config{{}, {Columns: 10, Rows: 10}} {
		name := "plain"
		if withFEC.Columns != 0 {
			name = fmt.Sprintf("fec%dx%d", withFEC.Columns, withFEC.Rows)
		}
		for _, legs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/legs=%d", name, legs), func(b *testing.B) {
				sinkA := listenLoopback(b)
				sinkB := listenLoopback(b)
				cfg := Config{RTP: sinkA.LocalAddr().(*net.UDPAddr).AddrPort(), FEC: withFEC, QueueLen: 4096, Pool: rtp.NewPool()}
				if legs == 2 {
					cfg.Leg2 = sinkB.LocalAddr().(*net.UDPAddr).AddrPort()
				}
				o := newOutput(b, cfg)
				pkt := make([]byte, 12+100+1188)
				pkt[0], pkt[1] = 0x80, 96
				binary.BigEndian.PutUint32(pkt[8:], 1)
				warm := func(i int) {
					binary.BigEndian.PutUint16(pkt[2:], uint16(i))
					p := cfg.Pool.Get(len(pkt))
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
