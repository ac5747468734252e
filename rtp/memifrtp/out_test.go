package memifrtp

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/ring"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup is a master with interface 1 served by an Out.
func setup(t testing.TB, queue int) (*memif.Master, *Out) {
	t.Helper()
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(t.TempDir(), "m.sock")})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := m.Add(1, "k")
	if err != nil {
		t.Fatal(err)
	}
	o := NewOut(ep, queue, nil)
	t.Cleanup(func() {
		o.Close()
		m.Close()
	})
	return m, o
}

func dial(t testing.TB, m *memif.Master, o *Out) *memif.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: 1, Secret: "k", Log2Ring: 12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for deadline := time.Now().Add(5 * time.Second); !o.Connected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Out did not take the consumer")
		}
	}
	return c
}

func packet(pool *rtp.Pool, seq uint16, marker bool, n int) *rtp.Packet {
	b := peertest.RTPPacket(0x1234, seq, uint32(seq)*90, n-12)
	if marker {
		b[1] |= 0x80
	}
	p := pool.Get(len(b))
	copy(p.Bytes(), b)
	return p
}

func TestTracksReachTheConsumerWithHeaders(t *testing.T) {
	m, o := setup(t, 0)
	pool := rtp.NewPool()
	// no consumer yet: dropped and counted, released
	o.Track(0).DeliverRTP(packet(pool, 1, false, 100))
	if st := o.Stats(); st.Dropped != 1 || st.Packets != 0 {
		t.Fatalf("without consumer: %+v", st)
	}
	c := dial(t, m, o)
	v, a := o.Track(0), o.Track(1)
	const n = 3000
	rx := c.Rx(0)
	buf := make([]byte, 4096)
	var got [2]int
	// drain reads what has arrived until want packets are in
	drain := func(want int) {
		for deadline := time.Now().Add(10 * time.Second); got[0]+got[1] < want; {
			k, err := rx.ReadPacket(buf)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				rx.Flush()
				if time.Now().After(deadline) {
					t.Fatalf("got %v of %d; %+v", got, want, o.Stats())
				}
				time.Sleep(100 * time.Microsecond)
				continue
			}
			h, pkt, err := ParseHeader(buf[:k])
			if err != nil {
				t.Fatal(err)
			}
			i := got[h.Track]
			want := peertest.RTPPacket(0x1234, uint16(i), uint32(i)*90, 1400-12)
			if h.Track == 1 {
				want = peertest.RTPPacket(0x1234, uint16(i), uint32(i)*90, 200+i%50-12)
			} else if i%10 == 9 {
				want[1] |= 0x80
			}
			if !bytes.Equal(pkt, want) || h.Marker != (want[1]&0x80 != 0) {
				t.Fatalf("track %d packet %d differs (marker %v)", h.Track, i, h.Marker)
			}
			got[h.Track]++
		}
	}
	for i := range n {
		v.DeliverRTP(packet(pool, uint16(i), i%10 == 9, 1400))
		a.DeliverRTP(packet(pool, uint16(i), false, 200+i%50))
		if i%500 == 499 {
			drain(2 * (i + 1))
		}
	}
	if st := o.Stats(); st.Packets != 2*n || st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConsumerRestart: a consumer that goes away and comes back is served again; packets
// meanwhile are dropped, counted and released.
func TestConsumerRestart(t *testing.T) {
	m, o := setup(t, 0)
	pool := rtp.NewPool()
	c := dial(t, m, o)
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); o.Connected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Out still thinks the consumer is there")
		}
	}
	o.Track(0).DeliverRTP(packet(pool, 1, false, 100))
	c2 := dial(t, m, o)
	o.Track(0).DeliverRTP(packet(pool, 2, true, 100))
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		k, err := c2.Rx(0).ReadPacket(buf)
		if err != nil {
			t.Fatal(err)
		}
		if k > 0 {
			if h, _, err := ParseHeader(buf[:k]); err != nil || !h.Marker {
				t.Fatalf("%+v %v", h, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing after the restart")
		}
	}
	if o.Consumers() != 2 || o.Stats().Dropped != 1 {
		t.Fatalf("consumers %d, stats %+v", o.Consumers(), o.Stats())
	}
}

// TestStalledConsumerNeverBlocks: a consumer that stops reading costs drops, and
// DeliverRTP stays fast.
func TestStalledConsumerNeverBlocks(t *testing.T) {
	m, o := setup(t, 256)
	pool := rtp.NewPool()
	dial(t, m, o) // never reads: its 4096-slot ring fills
	s := o.Track(0)
	start := time.Now()
	for i := range 20000 {
		s.DeliverRTP(packet(pool, uint16(i), false, 1400))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20000 deliveries took %v", d)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := o.Stats()
		if st.Packets+st.Dropped == 20000 {
			if st.Dropped == 0 || st.Packets > 4096 {
				t.Fatalf("stats %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
	}
}

// BenchmarkOut1400 is the packets form's throughput to one consumer: 1400-byte RTP packets
// delivered by a hub goroutine, written by Out's writer, read by an in-process memif slave.
func BenchmarkOut1400(b *testing.B) {
	m, o := setup(b, 4096)
	c := dial(b, m, o)
	pool := rtp.NewPool()
	src := peertest.RTPPacket(1, 1, 1, 1400-12)
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		// interrupt mode: the reader sleeps on the ring's eventfd, so the process's CPU time is
		// the work of delivering, writing and reading, not of polling
		defer close(done)
		rx := c.Rx(0)
		buf := make([]byte, 4096)
		for read.Load() < int64(b.N) {
			k, err := rx.ReadPacket(buf)
			if err != nil {
				return
			}
			if k == 0 {
				rx.Flush()
				if rx.Wait(10*time.Millisecond) != nil {
					return
				}
				continue
			}
			read.Add(1)
		}
		rx.Flush()
	}()
	s := o.Track(0)
	b.ReportAllocs()
	b.SetBytes(1400)
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for o.queued() > 2048 {
			runtime.Gosched()
		}
		p := pool.Get(len(src))
		copy(p.Bytes(), src)
		s.DeliverRTP(p)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(read.Load())/b.Elapsed().Seconds(), "pkt/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
	if st := o.Stats(); st.Dropped != 0 || read.Load() != int64(b.N) {
		b.Fatalf("read %d of %d, %+v", read.Load(), b.N, st)
	}
}

// processCPU is the CPU time (user + system) of the test process: on a shared machine the CPU
// per packet is steadier than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOut1400OneCore is the packets form's cost per packet on one core: the hub's
// DeliverRTP, the writer's copy into the consumer's buffer and the consumer's read, all on one
// goroutine in batches of 64, so ns/op is the CPU one packet costs end to end.
func BenchmarkOut1400OneCore(b *testing.B) {
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(b.TempDir(), "m.sock")})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(1, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: 1, Log2Ring: 10})
	if err != nil {
		b.Fatal(err)
	}
	defer sl.Close()
	mc, err := ep.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer mc.Close()
	// an Out without its goroutine: the benchmark plays the writer
	o := &Out{q: ring.New[item](256, 4096), wake: make(chan struct{}, 1)}
	o.up.Store(true)
	sl.Rx(0).SetPolling(true) // no eventfd write per batch: the reader is right here
	pool := rtp.NewPool()
	src := peertest.RTPPacket(1, 1, 1, 1400-12)
	s := o.Track(0)
	tx, rx := mc.Tx(0), sl.Rx(0)
	batch := make([]item, 0, maxBatch)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(1400)
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i += maxBatch {
		n := min(maxBatch, b.N-i)
		for range n {
			p := pool.Get(len(src))
			copy(p.Bytes(), src)
			s.DeliverRTP(p)
		}
		<-o.wake
		batch = batch[:0]
		o.mu.Lock()
		for o.q.Len() > 0 {
			batch = append(batch, o.q.Pop())
		}
		o.mu.Unlock()
		if err := o.write(ctx, mc, tx, batch); err != nil {
			b.Fatal(err)
		}
		for range n {
			if k, err := rx.ReadPacket(buf); k != 1400+HeaderLen || err != nil {
				b.Fatalf("read %d, %v", k, err)
			}
		}
		rx.Flush()
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "pkt/cpu-s")
}
