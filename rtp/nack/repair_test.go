package nack

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/meshgw/meshgw/rtp"
)

// capSink records the sequence numbers a hub delivers, in order.
type capSink struct {
	mu   sync.Mutex
	seqs []uint16
}

func (c *capSink) DeliverRTP(p *rtp.Packet) {
	c.mu.Lock()
	c.seqs = append(c.seqs, binary.BigEndian.Uint16(p.Bytes()[2:]))
	c.mu.Unlock()
	p.Release()
}
func (c *capSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

func (c *capSink) got() []uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seqs)
}

// hubIn is a chain's end writing into hub, with counters of its own.
func hubIn(hub *rtp.Hub) *rtp.HubInput {
	return &rtp.HubInput{Hub: hub, Packets: new(atomic.Uint64), Bytes: new(atomic.Uint64), Errors: new(atomic.Uint64)}
}

// newTestRx is a relay repair in front of a transparent hub (SSRC 7) whose output is recorded.
func newTestRx(t *testing.T, wait time.Duration, fb *Feedback) (*Repairer, *rtp.Hub, *capSink) {
	t.Helper()
	hub := rtp.NewHub(rtp.HubConfig{Track: video, SSRC: 7, Transparent: true})
	cs := &capSink{}
	hub.AddSink(cs)
	rx := NewRepairer(Config{Pool: rtp.NewPool(), Wait: wait, Feedback: fb})
	rx.Bind(hubIn(hub))
	t.Cleanup(func() { rx.Close(); hub.Close() })
	return rx, hub, cs
}

func pushSeqs(rx *Repairer, hub *rtp.Hub, seqs ...uint16) {
	for _, s := range seqs {
		rx.WriteRTP(mkRTP(7, s, uint32(s)*100))
	}
}

func waitSeqs(t *testing.T, cs *capSink, want []uint16) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(cs.got(), want); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hub got %v, want %v", cs.got(), want)
		}
	}
}

// TestRepairerReorders: packets behind a gap wait for it; a filled gap releases them in order;
// duplicates and late copies are dropped; a gap nobody fills is given up after the wait.
func TestRepairerReorders(t *testing.T) {
	rx, hub, cs := newTestRx(t, 30*time.Millisecond, nil)
	pushSeqs(rx, hub, 65533, 65534, 1, 65535, 0) // across the wrap, 65535 and 0 late
	waitSeqs(t, cs, []uint16{65533, 65534, 65535, 0, 1})
	pushSeqs(rx, hub, 1, 65535, 4, 3, 2) // two stale duplicates, then a gap filled backwards
	waitSeqs(t, cs, []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4})
	pushSeqs(rx, hub, 6, 7) // 5 never comes: 6 and 7 go on after the wait, by the timer
	waitSeqs(t, cs, []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4, 6, 7})
	pushSeqs(rx, hub, 5, 8)
	waitSeqs(t, cs, []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4, 6, 7, 8})
	st := rx.Stats()
	if st.Filled != 4 || st.Lost != 1 || st.Dups != 3 {
		t.Errorf("stats %+v, want 4 filled, 1 lost, 3 dups", st)
	}
	// A jump beyond the window gives up the gap at once; a big step back is a new line.
	// (The hub itself takes the step back as a new epoch and continues its line at +1.)
	pushSeqs(rx, hub, 10, 10+rxWindow+5, 62000)
	waitSeqs(t, cs, []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4, 6, 7, 8, 10, 10 + rxWindow + 5, 10 + rxWindow + 6})
	if st := rx.Stats(); st.Lost != 2 {
		t.Errorf("lost %d after a jump over one missing packet, want 2", st.Lost)
	}
}

// nackCapture is a socket that receives a relay's NACKs, parsed by pion.
type nackCapture struct {
	c  *net.UDPConn
	wg sync.WaitGroup
	mu sync.Mutex
	// lists is each NACK packet's sequence numbers
	lists [][]uint16
}

func newNACKCapture(t *testing.T) *nackCapture {
	nc := &nackCapture{c: listenLoopback(t)}
	nc.wg.Add(1)
	go func() {
		defer nc.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := nc.c.Read(buf)
			if err != nil {
				return
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				t.Errorf("NACK does not parse with pion: %v", err)
				continue
			}
			for _, p := range pkts {
				if nk, ok := p.(*rtcp.TransportLayerNack); ok && nk.MediaSSRC == 7 {
					var l []uint16
					for _, pr := range nk.Nacks {
						l = append(l, pr.PacketList()...)
					}
					nc.mu.Lock()
					nc.lists = append(nc.lists, l)
					nc.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { nc.c.Close(); nc.wg.Wait() })
	return nc
}

func (nc *nackCapture) get() [][]uint16 {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return slices.Clone(nc.lists)
}

// TestRepairerNACKs: a gap is asked for at once in one generic NACK (RFC 4585, checked with
// pion/rtcp), asked again after the retry interval, at most nackTries times, and not after it
// was filled.
func TestRepairerNACKs(t *testing.T) {
	pair, err := rtp.ListenUDP(rtp.UDPConfig{RTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	nc := newNACKCapture(t)
	dst := nc.c.LocalAddr().(*net.UDPAddr).AddrPort()
	fb := &Feedback{}
	fb.Swap(0, pair.NewSink(dst, dst))
	rx, hub, cs := newTestRx(t, 400*time.Millisecond, fb)
	pushSeqs(rx, hub, 100, 125) // 101-124 missing: PID 101 + BLP 102-117, PID 118 + BLP 119-124
	var want []uint16
	for s := uint16(101); s < 125; s++ {
		want = append(want, s)
	}
	for deadline := time.Now().Add(5 * time.Second); len(nc.get()) < 1; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no NACK")
		}
	}
	if got := nc.get()[0]; !slices.Equal(got, want) {
		t.Fatalf("first NACK asks for %v, want %v", got, want)
	}
	// retries every wait/nackTries = 100 ms, then the gap is given up at 400 ms
	for deadline := time.Now().Add(5 * time.Second); len(cs.got()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gap never given up: hub got %v", cs.got())
		}
	}
	lists := nc.get()
	if len(lists) < 2 || len(lists) > nackTries {
		t.Errorf("%d NACK packets for one gap, want 2..%d", len(lists), nackTries)
	}
	for _, l := range lists[1:] {
		if !slices.Equal(l, want) {
			t.Errorf("retry asks for %v, want %v", l, want)
		}
	}
	if st := rx.Stats(); st.Lost != uint64(len(want)) || st.NACKs != uint64(len(lists)) {
		t.Errorf("stats %+v with %d NACKs seen", st, len(lists))
	}
}

// TestHistory: a NACKed packet still in the ring goes out again; one overwritten does not.
func TestHistory(t *testing.T) {
	pair, err := rtp.ListenUDP(rtp.UDPConfig{RTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	r := newSeqReader(t)
	// room for the whole burst: a loaded machine may not read the socket for a while
	_ = r.conn.SetReadBuffer(4 << 20)
	h := NewHistory(pair.NewSink(r.addr(), r.addr()), 7)
	defer h.Close()
	pool := rtp.NewPool()
	const n = histSize + 100
	for i := range n {
		p := pool.Get(112)
		copy(p.Bytes(), mkRTP(7, uint16(i), 0))
		h.DeliverRTP(p)
		if i%32 == 31 {
			// stay behind the reader: this test is about the history, not about loss
			r.wait(t, i+1-64, 10*time.Second)
		}
	}
	r.wait(t, n, 10*time.Second)
	if !h.Resend(n-1) || !h.Resend(200) || h.Resend(10) || h.Resend(n) {
		t.Fatal("resend: want the last histSize packets only")
	}
	if h.Resend(200) {
		t.Fatal("a packet was resent twice within resendGap")
	}
	got := r.wait(t, n+2, 10*time.Second)
	if got[n] != n-1 || got[n+1] != 200 {
		t.Errorf("retransmitted %d, %d; want %d, 200", got[n], got[n+1], n-1)
	}
	if st := h.Stats(); st.Resent != 2 || st.Missed != 2 {
		t.Errorf("resent %d missed %d", st.Resent, st.Missed)
	}
	// a NACK entry: its PID and the numbers its BLP names
	h.Answer(n-5, 0b101)
	got = r.wait(t, n+5, 10*time.Second)
	if got[n+2] != n-5 || got[n+3] != n-4 || got[n+4] != n-2 {
		t.Errorf("NACK answered with %v", got[n+2:])
	}
}

// TestNACKReaderMatchesPion: compound packets mixing reports and NACKs read the same as pion's.
func TestNACKReaderMatchesPion(t *testing.T) {
	rr, _ := (&rtcp.ReceiverReport{SSRC: 3}).Marshal()
	pli, _ := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}).Marshal()
	nk1, _ := (&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 9, Nacks: []rtcp.NackPair{{PacketID: 65530, LostPackets: 0x8001}, {PacketID: 4}}}).Marshal()
	nk2 := Append(nil, 5, 10, []uint32{7<<16 | 0xffff})
	b := slices.Concat(rr, nk1, pli, nk2)
	ours, err := readNACKs(b)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := pionNACKs(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ours, theirs) || len(ours) != 3 {
		t.Fatalf("ours %v, pion %v", ours, theirs)
	}
	if _, err := readNACKs(b[:len(b)-1]); err == nil {
		t.Error("truncated compound packet read without error")
	}
}

type nackEntry struct {
	media    uint32
	pid, blp uint16
}

func readNACKs(b []byte) ([]nackEntry, error) {
	var out []nackEntry
	r := NewReader(b)
	for {
		m, pid, blp, ok := r.Next()
		if !ok {
			return out, r.Err()
		}
		out = append(out, nackEntry{m, pid, blp})
	}
}

func pionNACKs(b []byte) ([]nackEntry, error) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	var out []nackEntry
	for _, p := range pkts {
		if nk, ok := p.(*rtcp.TransportLayerNack); ok {
			for _, pr := range nk.Nacks {
				out = append(out, nackEntry{nk.MediaSSRC, pr.PacketID, uint16(pr.LostPackets)})
			}
		}
	}
	return out, nil
}

// anyPadded reports whether a packet of the compound RTCP packet b has its padding bit set.
func anyPadded(b []byte) bool {
	for len(b) >= 4 {
		if b[0]&0x20 != 0 {
			return true
		}
		n := 4 + int(binary.BigEndian.Uint16(b[2:]))*4
		if n > len(b) {
			return false
		}
		b = b[n:]
	}
	return false
}

// FuzzNACKReader: whatever a far node sends to a relay sink's RTCP address, the reader does not
// panic, and where pion/rtcp accepts the packet both read the same NACK entries.
func FuzzNACKReader(f *testing.F) {
	rr, _ := (&rtcp.ReceiverReport{SSRC: 3}).Marshal()
	nk, _ := (&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 9, Nacks: []rtcp.NackPair{{PacketID: 1, LostPackets: 3}}}).Marshal()
	f.Add(slices.Concat(rr, nk))
	f.Add(Append(nil, 1, 2, []uint32{1, 2, 3}))
	f.Add([]byte{0xa1, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0, 0, 0, 0, 4}) // padded
	f.Add([]byte{0x81, 205, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := readNACKs(b)
		theirs, perr := pionNACKs(b)
		if perr != nil || err != nil {
			return // pion is stricter about other packet types; ours only must not panic
		}
		if anyPadded(b) {
			// pion/rtcp v1.2.15 reads a padded NACK's padding octets as FCI entries; RFC 3550
			// §6.4.1 says the last octet counts padding to ignore, which is what ours does
			return
		}
		if !slices.Equal(ours, theirs) {
			t.Fatalf("ours %v, pion %v", ours, theirs)
		}
	})
}

// BenchmarkRepairer is the per-packet cost of loss repair on the receiving side with 1 % loss
// (each loss filled by the next packet, as a fast retransmission would); 0 allocs/op.
func BenchmarkRepairer(b *testing.B) {
	hub := rtp.NewHub(rtp.HubConfig{Track: video, SSRC: 7, Transparent: true})
	defer hub.Close()
	hub.AddSink(&releaseSink{})
	rx := NewRepairer(Config{Pool: rtp.NewPool()})
	rx.Bind(hubIn(hub))
	defer rx.Close()
	pkt := mkRTP(7, 0, 0)
	b.ReportAllocs()
	for i := range b.N {
		seq := uint16(i)
		if i%100 == 50 {
			seq++ // the lost one comes right after its successor
		} else if i%100 == 51 {
			seq--
		}
		binary.BigEndian.PutUint16(pkt[2:], seq)
		rx.WriteRTP(pkt)
	}
}

// FuzzRepairer pushes arbitrary sequence numbers (two bytes each; a third byte, when odd, runs
// the timer as if the wait had passed) through a relay repair: it must not panic and never pass
// on more packets than it got.
func FuzzRepairer(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 3, 0, 0, 2, 1, 0, 4, 0})
	f.Add([]byte{255, 255, 0, 0, 0, 0, 0, 1, 1})
	f.Add([]byte{0, 10, 0, 20, 0, 0, 0, 15, 1, 0, 11, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		hub := rtp.NewHub(rtp.HubConfig{Track: video, SSRC: 7, Transparent: true})
		defer hub.Close()
		cs := &capSink{}
		hub.AddSink(cs)
		rx := NewRepairer(Config{Pool: rtp.NewPool(), Wait: time.Hour})
		rx.Bind(hubIn(hub))
		defer rx.Close()
		pushed := 0
		for i := 0; i+2 < len(b); i += 3 {
			rx.WriteRTP(mkRTP(7, binary.BigEndian.Uint16(b[i:]), 0))
			pushed++
			if b[i+2]&1 == 1 {
				rx.mu.Lock()
				rx.wait = 0 // everything waiting has waited long enough
				rx.mu.Unlock()
				rx.onTimer()
				rx.mu.Lock()
				rx.wait = int64(time.Hour)
				rx.mu.Unlock()
			}
		}
		if got := len(cs.got()); got > pushed {
			t.Fatalf("passed on %d packets of %d", got, pushed)
		}
	})
}

// BenchmarkHistory is the sending side's extra cost per packet with NACK on: keeping the
// packet in the history ring on its way to the UDP sink (sending runs on the egress worker),
// and one retransmission per 100 packets; 0 allocs/op.
func BenchmarkHistory(b *testing.B) {
	pair, err := rtp.ListenUDP(rtp.UDPConfig{RTPAddr: "127.0.0.1:0", QueueLen: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer pair.Close()
	rd := listenLoopback(b)
	dst := rd.LocalAddr().(*net.UDPAddr).AddrPort()
	h := NewHistory(pair.NewSink(dst, dst), 7)
	defer h.Close()
	pool := rtp.NewPool()
	pkt := mkRTP(7, 0, 0)
	send := func(i int) {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		p := pool.Get(len(pkt))
		copy(p.Bytes(), pkt)
		h.DeliverRTP(p)
	}
	for i := range 20000 { // the ring and the sink's queue reach their size here
		send(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		send(20000 + i)
		if i%100 == 0 {
			h.Resend(uint16(20000 + i - 50))
		}
	}
}
