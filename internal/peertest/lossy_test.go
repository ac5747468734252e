package peertest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// noLeak checks, after every other cleanup of t (the relay's included),
// that the test left no goroutine behind.
func noLeak(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// udpSink is a plain receiving socket that records datagrams in order.
type udpSink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	at   []time.Time
	wg   sync.WaitGroup
}

func newUDPSink(t *testing.T) *udpSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	s := &udpSink{conn: c}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, append([]byte(nil), buf[:n]...))
			s.at = append(s.at, time.Now())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		s.wg.Wait()
	})
	return s
}

func (s *udpSink) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// waitFor waits until n datagrams arrived (or 5 s passed) and returns them
// with their arrival times.
func (s *udpSink) waitFor(n int) ([][]byte, []time.Time) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got, at := slices.Clone(s.got), slices.Clone(s.at)
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got, at
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seqOf(b []byte) uint16 { return binary.BigEndian.Uint16(b[2:]) }

// rtpPacket is a minimal RTP packet with sequence number seq.
func rtpPacket(seq uint16) []byte {
	b := make([]byte, 40)
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[8:], 0x5eed)
	b[20] = byte(seq * 7)
	return b
}

// sendAll sends packets to the relay at an even pace (every gap), so that
// loopback socket buffers never add loss of their own.
func sendAll(t *testing.T, to netip.AddrPort, pkts [][]byte, gap time.Duration) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i, p := range pkts {
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReceived waits until the relay has read n datagrams (or 5 s passed),
// so its counters and drop list are complete.
func waitReceived(t *testing.T, r *LossyRelay, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Received < uint64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("relay read %d of %d datagrams", r.Stats().Received, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func rtpRun(n int, seq0 uint16) [][]byte {
	p := make([][]byte, n)
	for i := range p {
		p[i] = rtpPacket(seq0 + uint16(i))
	}
	return p
}

func TestLossyRelayForwardsAll(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	r := StartLossyRelay(t, LossyConfig{To: dst.addr()})
	pkts := append(rtpRun(200, 65500), []byte("not rtp"))
	sendAll(t, r.Addr(), pkts, 50*time.Microsecond)
	waitReceived(t, r, len(pkts))
	got, _ := dst.waitFor(len(pkts))
	if len(got) != len(pkts) {
		t.Fatalf("%d of %d datagrams arrived", len(got), len(pkts))
	}
	for i := range pkts {
		if string(got[i]) != string(pkts[i]) {
			t.Fatalf("datagram %d changed or reordered", i)
		}
	}
	if st := r.Stats(); st != (LossyStats{Received: 201, Forwarded: 201}) || len(r.Dropped()) != 0 {
		t.Fatalf("stats %+v, dropped %v", st, r.Dropped())
	}
}

func TestLossyRelayRandomIsSeeded(t *testing.T) {
	noLeak(t)
	const n = 2000
	pkts := rtpRun(n, 100)
	var lists [][]uint16
	for _, seed := range []int64{42, 42, 43} {
		dst := newUDPSink(t)
		r := StartLossyRelay(t, LossyConfig{To: dst.addr(), Random: 0.1, Seed: seed})
		sendAll(t, r.Addr(), pkts, 20*time.Microsecond)
		waitReceived(t, r, n)
		dropped := r.Dropped()
		got, _ := dst.waitFor(n - len(dropped))
		st := r.Stats()
		if len(got) != n-len(dropped) || st.Received != n || st.Dropped != uint64(len(dropped)) || st.Forwarded != uint64(len(got)) {
			t.Fatalf("seed %d: %d arrived, %d dropped, stats %+v", seed, len(got), len(dropped), st)
		}
		// Together, what arrived and what was dropped are all, once.
		all := map[uint16]int{}
		for _, b := range got {
			all[seqOf(b)]++
		}
		for _, s := range dropped {
			all[s]++
		}
		for _, p := range pkts {
			if all[seqOf(p)] != 1 {
				t.Fatalf("seed %d: seq %d seen %d times", seed, seqOf(p), all[seqOf(p)])
			}
		}
		if len(dropped) < n/20 || len(dropped) > n*3/20 {
			t.Errorf("seed %d: %d of %d dropped, want about 10 %%", seed, len(dropped), n)
		}
		lists = append(lists, dropped)
	}
	if !slices.Equal(lists[0], lists[1]) {
		t.Error("the same seed dropped different packets")
	}
	if slices.Equal(lists[0], lists[2]) {
		t.Error("different seeds dropped the same packets")
	}
}

func TestLossyRelayBurst(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	r := StartLossyRelay(t, LossyConfig{To: dst.addr(), Burst: 3, BurstEvery: 10})
	pkts := rtpRun(100, 0)
	sendAll(t, r.Addr(), pkts, 50*time.Microsecond)
	waitReceived(t, r, len(pkts))
	var want []uint16
	for i := range 100 {
		if i%10 >= 7 {
			want = append(want, uint16(i))
		}
	}
	if got := r.Dropped(); !slices.Equal(got, want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	if got, _ := dst.waitFor(70); len(got) != 70 {
		t.Fatalf("%d arrived, want 70", len(got))
	}
}

// TestLossyRelayBurstOffsetAndListen: a relay on a chosen port whose bursts are shifted.
func TestLossyRelayBurstOffsetAndListen(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	at := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	r := StartLossyRelay(t, LossyConfig{To: dst.addr(), Burst: 3, BurstEvery: 10, BurstOffset: 5, Listen: at})
	if r.Addr() != at {
		t.Fatalf("relay listens on %v, want %v", r.Addr(), at)
	}
	pkts := rtpRun(50, 0)
	sendAll(t, r.Addr(), pkts, 50*time.Microsecond)
	waitReceived(t, r, len(pkts))
	var want []uint16
	for i := range 50 {
		if (i+5)%10 >= 7 {
			want = append(want, uint16(i))
		}
	}
	if got := r.Dropped(); !slices.Equal(got, want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
}

func TestLossyRelayCut(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	r := StartLossyRelay(t, LossyConfig{To: dst.addr()})
	pkts := rtpRun(300, 0)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i, p := range pkts {
		if i == 100 {
			waitReceived(t, r, 100) // the cut applies when the relay reads
			r.Cut(100 * time.Millisecond)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Millisecond)))
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	waitReceived(t, r, len(pkts))
	d := r.Dropped()
	// Sleep granularity makes the cut's edges fuzzy, but it is one run of
	// consecutive packets starting at the cut.
	if len(d) < 50 || len(d) > 150 || d[0] != 100 {
		t.Fatalf("dropped %d packets from %v, want about 100 from 100", len(d), d[:min(len(d), 1)])
	}
	for i := range d {
		if d[i] != d[0]+uint16(i) {
			t.Fatalf("dropped packets not consecutive: %v", d)
		}
	}
	if got, _ := dst.waitFor(300 - len(d)); len(got) != 300-len(d) {
		t.Fatalf("%d arrived, want %d", len(got), 300-len(d))
	}
}

func TestLossyRelayDelayKeepsOrder(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	const delay = 40 * time.Millisecond
	r := StartLossyRelay(t, LossyConfig{To: dst.addr(), Delay: delay})
	pkts := rtpRun(500, 1000)
	sent := time.Now()
	sendAll(t, r.Addr(), pkts, 20*time.Microsecond)
	got, at := dst.waitFor(len(pkts))
	if len(got) != len(pkts) {
		t.Fatalf("%d of %d arrived", len(got), len(pkts))
	}
	for i := range got {
		if seqOf(got[i]) != seqOf(pkts[i]) {
			t.Fatalf("datagram %d: seq %d, want %d (reordered)", i, seqOf(got[i]), seqOf(pkts[i]))
		}
	}
	if first := at[0].Sub(sent); first < delay {
		t.Fatalf("first datagram after %v, want at least %v", first, delay)
	}
}

// TestLossyRelayCloseDiscardsDelayed: stopping with datagrams in the delay
// line ends every goroutine at once.
func TestLossyRelayCloseDiscardsDelayed(t *testing.T) {
	noLeak(t)
	dst := newUDPSink(t)
	r := StartLossyRelay(t, LossyConfig{To: dst.addr(), Delay: time.Hour})
	sendAll(t, r.Addr(), rtpRun(10, 0), 0)
	waitReceived(t, r, 10)
	r.Close()
	if st := r.Stats(); st.Received != 10 || st.Forwarded != 0 {
		t.Fatalf("stats %+v", st)
	}
}
