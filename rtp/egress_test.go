package rtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

// TestUDPSinkGSORun queues a keyframe-like run (equal-size packets and a
// short last one) while it is paced a little ahead, so the egress sends it
// as one GSO message; the receiver must still see every packet intact and
// in order, as separate datagrams.
func TestUDPSinkGSORun(t *testing.T) {
	if !gsoAvailable {
		t.Skip("UDP GSO is Linux only")
	}
	pool := NewPool()
	u := newPair(t, pool)
	r := newUDPReceiver(t)
	s := u.NewSink(r.addrs())
	const n = 20
	var want [][]byte
	depart := Now() + int64(30*time.Millisecond)
	for i := range n {
		size := 1200
		if i == n-1 {
			size = 300
		}
		b := mkRTP(7, uint16(i), 0, size-12)
		b[12] = byte(i)
		want = append(want, b)
		p := pool.Get(len(b))
		copy(p.buf, b)
		p.depart = depart
		s.DeliverRTP(p)
	}
	buf := make([]byte, 2048)
	_ = r.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		k, err := r.rtp.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(buf[:k], want[i]) {
			t.Fatalf("packet %d: got %d bytes (seq %d), want %d bytes", i, k, binary.BigEndian.Uint16(buf[2:]), len(want[i]))
		}
	}
	st := waitEgress(u, n)
	if st.GSOSegments != n || st.Datagrams != 1 {
		t.Errorf("egress %+v: want the %d packets in one GSO message", st, n)
	}
	if ss := s.Stats(); ss.Packets != n || ss.Bytes != uint64(19*1200+300) {
		t.Errorf("sink stats %+v", ss)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

// TestUDPSinkNoGSO: with GSO off the same run leaves as one datagram per
// packet.
func TestUDPSinkNoGSO(t *testing.T) {
	pool := NewPool()
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, NoGSO: true})
	if err != nil {
		t.Fatal(err)
	}
	r := newUDPReceiver(t)
	s := u.NewSink(r.addrs())
	depart := Now() + int64(20*time.Millisecond)
	for i := range 10 {
		p := pool.Get(1000)
		copy(p.buf, mkRTP(7, uint16(i), 0, 988))
		p.depart = depart
		s.DeliverRTP(p)
	}
	buf := make([]byte, 2048)
	_ = r.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 10 {
		if _, err := r.rtp.Read(buf); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if st := waitEgress(u, 10); st.GSOSegments != 0 || st.Datagrams != 10 {
		t.Errorf("egress %+v: want 10 plain datagrams", st)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

// TestUDPSinksSpreadOverWorkers: sinks go to the least loaded worker, and
// closing them gives the slots back.
func TestUDPSinksSpreadOverWorkers(t *testing.T) {
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", EgressWorkers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	r := newUDPReceiver(t)
	var sinks []*UDPSink
	for range 7 {
		sinks = append(sinks, u.NewSink(r.addrs()))
	}
	counts := func() []int {
		u.sinksMu.Lock()
		defer u.sinksMu.Unlock()
		var c []int
		for _, w := range u.workers {
			c = append(c, w.count)
			if len(*w.sinks.Load()) != w.count {
				t.Errorf("worker list %d != count %d", len(*w.sinks.Load()), w.count)
			}
		}
		return c
	}
	if c := counts(); c[0]+c[1]+c[2] != 7 || max(c[0], c[1], c[2])-min(c[0], c[1], c[2]) > 1 {
		t.Errorf("sinks per worker %v: want 7 spread evenly", c)
	}
	for _, s := range sinks {
		s.Close()
		s.Close() // idempotent: must not unbalance the counts
	}
	if c := counts(); c[0]+c[1]+c[2] != 0 {
		t.Errorf("sinks per worker after close %v", c)
	}
}

// TestPacerSpacesBursts: after a second of a steady 4 Mbit/s line a 60 kB
// keyframe burst is spread at the paced rate, a small burst leaves at once,
// and no packet waits longer than paceMaxDelay.
func TestPacerSpacesBursts(t *testing.T) {
	p := pacer{factor: 3}
	const pkt = 1250
	now := int64(1)
	frame := int64(40 * time.Millisecond)
	// 4 Mbit/s = 500 kB/s = 20 kB per 40 ms frame = 16 packets, learnt first
	for range 30 {
		for range 16 {
			if d := p.depart(now, pkt); d != 0 && now < int64(time.Second) {
				t.Fatalf("paced before the rate was known: %d", d)
			}
		}
		now += frame
	}
	if p.rate == 0 {
		t.Fatal("no rate learnt")
	}
	now += frame
	var last int64
	for i := range 48 { // 60 kB at once
		d := p.depart(now, pkt)
		if i < 2 && d != 0 {
			t.Errorf("packet %d of the burst paced (%d ns): the burst allowance should let it go", i, d-now)
		}
		if d != 0 {
			if d-now > paceMaxDelay {
				t.Fatalf("packet %d waits %v > %v", i, time.Duration(d-now), time.Duration(paceMaxDelay))
			}
			last = d
		}
	}
	// 60 kB at 3 x 500 kB/s takes 40 ms, less the 4 ms burst allowance.
	if got := time.Duration(last - now); got < 30*time.Millisecond || got > 45*time.Millisecond {
		t.Errorf("burst spread over %v, want about 36 ms", got)
	}
	// a big step up in rate is not queued without bound
	for i := range 2000 {
		if d := p.depart(now, pkt); d-now > paceMaxDelay {
			t.Fatalf("packet %d of a step up waits %v", i, time.Duration(d-now))
		}
	}
	var off pacer
	if d := off.depart(now, pkt); d != 0 {
		t.Errorf("factor 0 paced: %d", d)
	}
}

// TestHubPacedFanout: a paced hub's keyframe burst reaches a UDP reader
// spread over time, every packet arriving, in order.
func TestHubPacedFanout(t *testing.T) {
	pool := NewPool()
	u := newPair(t, pool)
	r := newUDPReceiver(t)
	s := u.NewSink(r.addrs())
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SRInterval: time.Hour, Pacing: 2})
	h.AddSink(s)
	got := make(chan time.Duration, 1)
	const steady, burst = 30 * 10, 60
	go func() {
		buf := make([]byte, 2048)
		var first time.Time
		_ = r.rtp.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < steady+burst; i++ {
			if _, err := r.rtp.Read(buf); err != nil {
				got <- -1
				return
			}
			if i == steady {
				first = time.Now()
			}
		}
		got <- time.Since(first)
	}()
	seq := uint16(0)
	// 1.2 s of 10 packets every 40 ms (250 kB/s) teaches the rate
	for range 30 {
		for range 10 {
			if err := h.WriteRTP(mkRTP(1, seq, 0, 988)); err != nil {
				t.Fatal(err)
			}
			seq++
		}
		time.Sleep(40 * time.Millisecond)
	}
	for range burst { // 60 kB at 2 x 250 kB/s: about 120 ms, well under paceMaxDelay's cut
		if err := h.WriteRTP(mkRTP(1, seq, 0, 988)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	d := <-got
	if d < 0 {
		t.Fatal("not every packet arrived")
	}
	if d < 60*time.Millisecond {
		t.Errorf("burst of %d packets arrived within %v: not paced", burst, d)
	}
	h.Close()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

// TestInterleavedEvictsSlowReader: a reader whose queue stays full past
// EvictAfter is failed with ErrSlowReader, well before the write timeout.
func TestInterleavedEvictsSlowReader(t *testing.T) {
	pool := NewPool()
	srv, cli := net.Pipe() // nobody reads cli
	defer srv.Close()
	defer cli.Close()
	w := NewInterleavedWriter(srv, InterleavedConfig{QueueLen: 8, WriteTimeout: time.Minute, EvictAfter: 200 * time.Millisecond})
	sink := w.Sink(0)
	deadline := time.After(5 * time.Second)
	for done := false; !done; {
		p := pool.Get(100)
		copy(p.buf, mkRTP(1, 0, 0, 88))
		sink.DeliverRTP(p)
		select {
		case <-w.Done():
			done = true
		case <-deadline:
			t.Fatal("slow reader not evicted")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := w.Err(); !errors.Is(err, ErrSlowReader) {
		t.Errorf("err %v, want ErrSlowReader", err)
	}
	w.Close()
	checkNoLeak(t, pool)
}

// waitEgress waits until the pair has credited packets to its sinks: the
// receiver can read a datagram before the worker's send call returns.
func waitEgress(u *UDPPair, packets uint64) EgressStats {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var sent uint64
		u.sinksMu.Lock()
		for s := range u.sinks {
			sent += s.Stats().Packets
		}
		u.sinksMu.Unlock()
		if sent >= packets || time.Now().After(deadline) {
			return u.EgressStats()
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUDPSinkRingGrows: a sink's ring starts small, grows for a burst up to
// QueueLen, and drops only beyond it.
func TestUDPSinkRingGrows(t *testing.T) {
	pool := NewPool()
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r := newUDPReceiver(t)
	s := u.NewSink(r.addrs())
	if s.q.Cap() != initialUDPRing {
		t.Fatalf("initial ring %d, want %d", s.q.Cap(), initialUDPRing)
	}
	held := Now() + int64(time.Hour) // never due: everything stays queued
	for i := range 1100 {
		p := pool.Get(20)
		p.depart = held
		s.DeliverRTP(p)
		if i == 299 && s.Stats().Dropped != 0 {
			t.Fatalf("dropped while growing: %+v", s.Stats())
		}
	}
	s.mu.Lock()
	n, size := s.q.Len(), s.q.Cap()
	s.mu.Unlock()
	if n != 1000 || size != 1000 || s.Stats().Dropped != 100 {
		t.Errorf("queued %d in a ring of %d, stats %+v: want 1000, 1000 and 100 drops", n, size, s.Stats())
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}
