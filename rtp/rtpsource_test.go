package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtp/merge"
)

// srcRec is a SourceHandler that records what it gets.
type srcRec struct {
	mu      sync.Mutex
	readies int
	downs   []error
	seqs    []uint16
	pkts    [][]byte
	rtcp    int
	live    bool
	misuse  string
	changed chan struct{}
}

func newSrcRec() *srcRec { return &srcRec{changed: make(chan struct{}, 1)} }

func (r *srcRec) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *srcRec) OnReady(sdp []byte, tracks []Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live {
		r.misuse = "OnReady twice"
	}
	r.live = true
	r.readies++
	r.poke()
	return nil
}

func (r *srcRec) WriteRTP(track int, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.live {
		r.misuse = "packet outside a session"
	}
	r.seqs = append(r.seqs, binary.BigEndian.Uint16(pkt[2:]))
	r.pkts = append(r.pkts, append([]byte(nil), pkt...))
	r.poke()
}

func (r *srcRec) WriteRTCP(track int, pkt []byte) {
	r.mu.Lock()
	r.rtcp++
	r.mu.Unlock()
}

func (r *srcRec) OnDisconnect(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.live {
		r.misuse = "OnDisconnect without OnReady"
	}
	r.live = false
	r.downs = append(r.downs, err)
	r.poke()
}

// wait waits until cond holds (under the lock) or fails the test.
func (r *srcRec) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startSource starts an RTPSource on free 127.0.0.1 ports (legs × tracks).
func startSource(t *testing.T, cfg RTPSourceConfig, h SourceHandler) *RTPSource {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	for range 50 {
		base := freeEvenPort(t)
		cfg.Legs = cfg.Legs[:0]
		for l := range max(1, cap(cfg.Legs)) {
			ports := make([]int, len(cfg.Tracks))
			for i := range ports {
				ports[i] = base + 10*(l*len(cfg.Tracks)+i)
			}
			cfg.Legs = append(cfg.Legs, RTPLeg{Addr: netip.MustParseAddr("127.0.0.1"), Ports: ports})
		}
		s, err := NewRTPSource(cfg, h)
		if err == nil {
			t.Cleanup(s.Close)
			return s
		}
	}
	t.Fatal("no free ports for the source")
	return nil
}

func freeEvenPort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	if p > 60000 {
		p -= 5000
	}
	return p &^ 1
}

func dial(t *testing.T, ap netip.AddrPort, off int) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()) + off})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func legAddr(s *RTPSource, leg, track int) netip.AddrPort {
	l := s.cfg.Legs[leg]
	return netip.AddrPortFrom(l.Addr, uint16(l.Ports[track]))
}

var tsTrack = []Track{{Media: "video", PayloadType: 33, ClockRate: 90000}}

func TestRTPSourcePlainStallAndReturn(t *testing.T) {
	rec := newSrcRec()
	s := startSource(t, RTPSourceConfig{Legs: make([]RTPLeg, 0, 1), Tracks: tsTrack, StallTimeout: 300 * time.Millisecond}, rec)
	media := dial(t, legAddr(s, 0, 0), 0)
	rtcp := dial(t, legAddr(s, 0, 0), 1)
	for i := range 50 {
		_, _ = media.Write(mkRTP(7, uint16(100+i), uint32(i*3000), 188*7))
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	_, _ = rtcp.Write([]byte{0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	rec.wait(t, "50 packets and an RTCP", func() bool { return len(rec.seqs) == 50 && rec.rtcp == 1 })
	rec.wait(t, "stall", func() bool { return len(rec.downs) == 1 })
	if !errors.Is(rec.downs[0], ErrStalled) {
		t.Errorf("stall reported as %v", rec.downs[0])
	}
	for i := range 10 {
		_, _ = media.Write(mkRTP(7, uint16(150+i), uint32(i*3000), 100))
	}
	rec.wait(t, "packets after the stall", func() bool { return len(rec.seqs) == 60 })
	s.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.readies != 2 || len(rec.downs) != 2 || !errors.Is(rec.downs[1], ErrClosed) || rec.misuse != "" {
		t.Errorf("readies %d downs %v misuse %q", rec.readies, rec.downs, rec.misuse)
	}
	for i, seq := range rec.seqs {
		if seq != uint16(100+i) {
			t.Fatalf("packet %d has seq %d", i, seq)
		}
	}
	st := s.Stats()
	if st.Received != 60 || st.Output != 60 || st.Lost != 0 || st.LastPacket.IsZero() {
		t.Errorf("stats %+v", st)
	}
}

// fecStream encodes n media packets (random sizes) with a 2022-1 encoder.
type fecEvent struct {
	kind int // -1 media, else fec.Kind
	idx  int
	b    []byte
}

func fecStream(t testing.TB, n, l, d int, mode fec.Mode) ([][]byte, []fecEvent) {
	enc, err := fec.NewEncoder(fec.Config{Columns: l, Rows: d, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	var media [][]byte
	var evs []fecEvent
	for i := range n {
		p := mkRTP(0x1234, uint16(65000+i), uint32(i*90), 100+(i*37)%1100)
		p[1] = 33
		media = append(media, p)
		evs = append(evs, fecEvent{-1, i, p})
		if err := enc.Push(p, func(k fec.Kind, b []byte) {
			evs = append(evs, fecEvent{int(k), 0, append([]byte(nil), b...)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return media, evs
}

// TestRTPSourceFEC drops media packets (random ones, and a burst of a full
// row) and wants every one rebuilt and the output complete and in order.
func TestRTPSourceFEC(t *testing.T) {
	for _, tc := range []struct {
		l, d int
		mode fec.Mode
	}{{5, 5, fec.Mode2D}, {10, 10, fec.Mode2D}, {10, 4, fec.ModeColumn}} {
		t.Run(fmt.Sprintf("%dx%d-%s", tc.l, tc.d, tc.mode), func(t *testing.T) {
			rec := newSrcRec()
			s := startSource(t, RTPSourceConfig{Legs: make([]RTPLeg, 0, 1), Tracks: tsTrack, FEC: true, Columns: tc.l, Rows: tc.d}, rec)
			media, evs := fecStream(t, 2000, tc.l, tc.d, tc.mode)
			m := tc.l * tc.d
			drop := map[int]bool{}
			for i := 3 * m; i < 1500; i += m + 1 {
				drop[i] = true // one per matrix: column FEC alone rebuilds it
			}
			for i := range tc.l { // a burst of L in a later matrix
				drop[1600+i] = true
			}
			conns := [3]*net.UDPConn{dial(t, legAddr(s, 0, 0), 0), dial(t, legAddr(s, 0, 0), 2), dial(t, legAddr(s, 0, 0), 4)}
			sent := 0
			for _, ev := range evs {
				if ev.kind < 0 {
					if drop[ev.idx] {
						continue
					}
					_, _ = conns[0].Write(ev.b)
					if sent++; sent%20 == 0 {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				_, _ = conns[1+ev.kind].Write(ev.b)
			}
			rec.wait(t, "the whole stream", func() bool { return len(rec.seqs) >= len(media)-2*m })
			time.Sleep(100 * time.Millisecond)
			s.Close()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i, p := range rec.pkts {
				if string(p) != string(media[i]) {
					t.Fatalf("output %d (seq %d) differs from media %d", i, rec.seqs[i], i)
				}
			}
			st := s.Stats()
			if st.Recovered < uint64(len(drop)) || st.Lost != 0 {
				t.Errorf("dropped %d: stats %+v", len(drop), st)
			}
			t.Logf("dropped %d of %d, output %d in order; stats %+v", len(drop), len(media), len(rec.seqs), st)
		})
	}
}

// TestRTPSourceLiveLive sends one stream on two legs with disjoint losses
// and wants the merge complete and in order, with per-leg counters.
func TestRTPSourceLiveLive(t *testing.T) {
	rec := newSrcRec()
	s := startSource(t, RTPSourceConfig{Legs: make([]RTPLeg, 0, 2), Tracks: tsTrack, Skew: merge.ClassB}, rec)
	a, b := dial(t, legAddr(s, 0, 0), 0), dial(t, legAddr(s, 1, 0), 0)
	const n = 1000
	for i := range n {
		p := mkRTP(9, uint16(i), uint32(i), 200)
		if i%10 != 3 {
			_, _ = a.Write(p)
		}
		if i%10 != 7 {
			_, _ = b.Write(p)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	rec.wait(t, "the merged stream", func() bool { return len(rec.seqs) == n })
	// per-leg losses are settled 2×Skew after the other leg's copy
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l := s.Stats().Legs; l[0].Lost == n/10 && l[1].Lost == n/10 {
			break
		}
	}
	s.Close()
	for i, seq := range rec.seqs {
		if seq != uint16(i) {
			t.Fatalf("output %d has seq %d", i, seq)
		}
	}
	st := s.Stats()
	if len(st.Legs) != 2 || st.Legs[0].Lost != n/10 || st.Legs[1].Lost != n/10 || st.Lost != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestReorder(t *testing.T) {
	pool := NewPool()
	var got []uint16
	r := newReorder(pool, 0, int64(time.Second), func(b []byte) { got = append(got, binary.BigEndian.Uint16(b[2:])) })
	put := func(seq uint16, now int64) { r.put(mkRTP(1, seq, 0, 10), now, 8) }
	for _, s := range []uint16{65534, 65535, 1, 2, 0, 3} { // wrap, one reordered
		put(s, 0)
	}
	put(5, 0) // 4 missing: waits
	for s := uint16(6); s < 14; s++ {
		put(s, 0)
	}
	// 13-4 = 9 > depth 8: 4 given up
	want := []uint16{65534, 65535, 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	put(4, 0) // too late now
	put(20, 0)
	r.release(int64(500*time.Millisecond), 8)
	if len(got) != len(want) {
		t.Fatalf("released before the hold: %v", got)
	}
	r.release(int64(2*time.Second), 8)
	if got[len(got)-1] != 20 || r.late != 1 || r.skipped != 1+6 {
		t.Fatalf("got %v late %d skipped %d", got, r.late, r.skipped)
	}
	// a restarted sender
	r.put(mkRTP(2, 40000, 0, 10), 0, 8)
	if got[len(got)-1] != 40000 || r.resets != 1 {
		t.Fatalf("restart: got %v resets %d", got, r.resets)
	}
	r.close()
	checkNoLeak(t, pool)

	// with a minimum wait, moving depth packets past a gap is not enough
	got = got[:0]
	r = newReorder(pool, int64(100*time.Millisecond), int64(time.Second), func(b []byte) { got = append(got, binary.BigEndian.Uint16(b[2:])) })
	put(1, 0)
	for s := uint16(3); s < 20; s++ {
		put(s, int64(10*time.Millisecond))
	}
	if fmt.Sprint(got) != "[1]" {
		t.Fatalf("released before the minimum wait: %v", got)
	}
	r.release(int64(120*time.Millisecond), 8)
	if len(got) != 18 || got[1] != 3 || r.skipped != 1 {
		t.Fatalf("after the minimum wait: %v skipped %d", got, r.skipped)
	}
	r.close()
	checkNoLeak(t, pool)

	// Sustained unrecoverable loss (one packet in ten, 2000 packets/s): the output stays one
	// minimum wait behind instead of adding a wait per gap.
	got = got[:0]
	r = newReorder(pool, int64(100*time.Millisecond), int64(time.Second), func(b []byte) { got = append(got, binary.BigEndian.Uint16(b[2:])) })
	const n = 10000
	for i := range n {
		if i%10 != 5 {
			put(uint16(i), int64(i)*int64(500*time.Microsecond))
		}
	}
	if behind := n*9/10 - len(got); behind > 200*9/10+10 {
		t.Fatalf("output %d packets behind after %d (want about 100 ms = 180)", behind, n)
	}
	r.close()
	checkNoLeak(t, pool)
}

// BenchmarkRTPSourceFEC is the per-packet receive path with 2D 10×10 FEC
// and one media packet in 50 lost: decode, rebuild, reorder, output. One op
// is one media packet (with its share of FEC packets).
func BenchmarkRTPSourceFEC(b *testing.B) {
	h := &countHandler{}
	pool := NewPool()
	s, err := newDetachedSource(RTPSourceConfig{Tracks: tsTrack, FEC: true, Columns: 10, Rows: 10, Pool: pool, Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		b.Fatal(err)
	}
	in := s.inputs[0]
	media, evs := fecStream(b, 10000, 10, 10, fec.Mode2D)
	_ = media
	b.ReportAllocs()
	i, base := 0, uint16(0)
	for b.Loop() {
		for {
			ev := evs[i%len(evs)]
			i++
			if i%len(evs) == 0 {
				base += 10000 // next lap: same packets, sequence line moved on
			}
			if ev.kind < 0 {
				if ev.idx%50 == 7 {
					continue
				}
				binary.BigEndian.PutUint16(ev.b[2:], uint16(65000+ev.idx)+base)
				in.deliver(sockMedia, ev.b)
				break
			}
			snb := binary.BigEndian.Uint16(ev.b[12:])
			binary.BigEndian.PutUint16(ev.b[12:], snb+base)
			if ev.kind == int(fec.Column) {
				in.deliver(sockColumn, ev.b)
			} else {
				in.deliver(sockRow, ev.b)
			}
			binary.BigEndian.PutUint16(ev.b[12:], snb)
		}
	}
	b.StopTimer()
	st := s.Stats()
	if st.Recovered == 0 || h.n == 0 {
		b.Fatalf("stats %+v, output %d", st, h.n)
	}
	s.Close()
	checkNoLeak(b, pool)
}

type countHandler struct{ n int }

func (h *countHandler) OnReady([]byte, []Track) error { return nil }
func (h *countHandler) WriteRTP(int, []byte)          { h.n++ }
func (h *countHandler) WriteRTCP(int, []byte)         {}
func (h *countHandler) OnDisconnect(error)            {}

// BenchmarkRTPSourceLiveLive is the per-packet receive path of a 2022-7
// pair without FEC: one op is one sequence number arriving on both legs
// (each losing one packet in 50, at different places).
func BenchmarkRTPSourceLiveLive(b *testing.B) {
	h := &countHandler{}
	pool := NewPool()
	cfg := RTPSourceConfig{Tracks: tsTrack, Pool: pool, Skew: merge.ClassA, Logger: slog.New(slog.DiscardHandler), Legs: []RTPLeg{
		{Addr: netip.IPv4Unspecified(), Ports: []int{0}}, {Addr: netip.IPv4Unspecified(), Ports: []int{0}}}}
	s, err := newDetachedSource(cfg, h)
	if err != nil {
		b.Fatal(err)
	}
	pkt := mkRTP(5, 0, 0, 1316)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if i%50 != 3 {
			s.inputs[0].deliver(sockMedia, pkt)
		}
		if i%50 != 28 {
			s.inputs[1].deliver(sockMedia, pkt)
		}
	}
	b.StopTimer()
	if h.n < b.N/2 {
		b.Fatalf("output %d of %d", h.n, b.N)
	}
	s.Close()
	checkNoLeak(b, pool)
}

// FuzzRTPSourceDeliver feeds arbitrary datagrams to the media and FEC
// sockets of both legs of a source with FEC and 2022-7: nothing may panic,
// the output of one sequence line must be strictly increasing, and every
// buffer must go back to the pool.
func FuzzRTPSourceDeliver(f *testing.F) {
	_, evs := fecStream(f, 60, 4, 4, fec.Mode2D)
	var seed []byte
	for i, ev := range evs {
		if i%7 == 3 && ev.kind < 0 {
			continue
		}
		seed = append(seed, byte(ev.kind+1), byte(i%2), byte(len(ev.b)>>8), byte(len(ev.b)))
		seed = append(seed, ev.b...)
	}
	f.Add(seed)
	f.Add([]byte{0, 0, 0, 12, 0x80, 33, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		pool := NewPool()
		h := &orderHandler{t: t}
		cfg := RTPSourceConfig{Tracks: tsTrack, Pool: pool, FEC: true, Logger: slog.New(slog.DiscardHandler), Legs: []RTPLeg{
			{Addr: netip.IPv4Unspecified(), Ports: []int{0}}, {Addr: netip.IPv4Unspecified(), Ports: []int{0}}}}
		s, err := newDetachedSource(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) >= 4 {
			kind, leg, n := int(data[0]%3), int(data[1]%2), int(data[2])<<8|int(data[3])
			data = data[4:]
			n = min(n, len(data))
			in := s.inputs[leg]
			in.deliver([]int{sockMedia, sockColumn, sockRow}[kind], data[:n])
			data = data[n:]
		}
		for _, in := range s.inputs {
			in.ro.flush()
		}
		s.Close()
		checkNoLeak(t, pool)
	})
}

// orderHandler fails when one SSRC's output steps back.
type orderHandler struct {
	t       *testing.T
	started bool
	ssrc    uint32
	last    uint16
}

func (h *orderHandler) OnReady([]byte, []Track) error { return nil }
func (h *orderHandler) WriteRTP(_ int, pkt []byte) {
	seq, ssrc := binary.BigEndian.Uint16(pkt[2:]), binary.BigEndian.Uint32(pkt[8:])
	if h.started && ssrc == h.ssrc && int16(seq-h.last) <= 0 && int16(seq-h.last) > -maxDropout {
		h.t.Fatalf("seq %d after %d", seq, h.last)
	}
	h.started, h.ssrc, h.last = true, ssrc, seq
}
func (h *orderHandler) WriteRTCP(int, []byte) {}
func (h *orderHandler) OnDisconnect(error)    {}

// TestRTPSourceLiveLiveFEC: two legs, each with 2D FEC; some packets are lost on both legs
// (rebuilt by each leg's FEC), others on one leg only (brought by the other). The merged output
// must be complete and in order.
func TestRTPSourceLiveLiveFEC(t *testing.T) {
	rec := newSrcRec()
	s := startSource(t, RTPSourceConfig{Legs: make([]RTPLeg, 0, 2), Tracks: tsTrack, FEC: true, Columns: 5, Rows: 5, Skew: merge.ClassA}, rec)
	media, evs := fecStream(t, 1500, 5, 5, fec.Mode2D)
	drop := [2]map[int]bool{{}, {}}
	for i := 100; i < 1300; i += 53 {
		drop[0][i], drop[1][i] = true, true // both legs: only FEC can bring it
		drop[0][i+20] = true                // one leg
		drop[1][i+30] = true
	}
	var conns [2][3]*net.UDPConn
	for l := range 2 {
		for k, off := range []int{0, 2, 4} {
			conns[l][k] = dial(t, legAddr(s, l, 0), off)
		}
	}
	sent := 0
	for _, ev := range evs {
		for l := range 2 {
			switch {
			case ev.kind < 0 && drop[l][ev.idx]:
			case ev.kind < 0:
				_, _ = conns[l][0].Write(ev.b)
			default:
				_, _ = conns[l][1+ev.kind].Write(ev.b)
			}
		}
		if ev.kind < 0 {
			if sent++; sent%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	rec.wait(t, "the merged stream", func() bool { return len(rec.seqs) >= len(media)-60 })
	time.Sleep(200 * time.Millisecond)
	s.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, p := range rec.pkts {
		if string(p) != string(media[i]) {
			t.Fatalf("output %d (seq %d) differs from media %d", i, rec.seqs[i], i)
		}
	}
	st := s.Stats()
	if st.Lost != 0 || st.Recovered < uint64(2*len(drop[0])) {
		t.Errorf("stats %+v", st)
	}
	t.Logf("output %d of %d in order; stats %+v", len(rec.pkts), len(media), st)
}
