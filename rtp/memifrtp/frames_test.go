package memifrtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshgw/meshgw/memif"
)

// frameSetup is a master with n frame consumer interfaces (ids 1..n), each served by a FrameOut
// and connected to an in-process memif slave with 64 KiB buffers (DPDK's and libmemif's
// largest), so big frames are chains.
func frameSetup(t testing.TB, n int, log2 uint8, bsize uint32) ([]*FrameOut, []*memif.Conn) {
	t.Helper()
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(t.TempDir(), "m.sock")})
	if err != nil {
		t.Fatal(err)
	}
	var outs []*FrameOut
	var cons []*memif.Conn
	t.Cleanup(func() {
		for _, c := range cons {
			c.Close()
		}
		for _, o := range outs {
			o.Close()
		}
		m.Close()
	})
	for i := 1; i <= n; i++ {
		ep, err := m.Add(uint32(i), "")
		if err != nil {
			t.Fatal(err)
		}
		o := NewFrameOut(ep, nil)
		outs = append(outs, o)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: uint32(i), Log2Ring: log2, BufferSize: bsize})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, c)
		for deadline := time.Now().Add(5 * time.Second); !o.Connected(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("consumer not taken")
			}
		}
	}
	return outs, cons
}

func frameData(counter uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(i)*31 + counter)
	}
	return b
}

// TestFramesWholeOrNothing: 1.5 MiB frames go whole over chains of 64 KiB buffers; while the
// consumer does not read, frames are dropped whole (never torn) and counted; what arrives has its
// header and every byte right, and the counter gaps are the drops.
func TestFramesWholeOrNothing(t *testing.T) {
	outs, cons := frameSetup(t, 1, 6, 65535) // 64 buffers of 64 KiB: two 1.5 MiB frames fit
	o, rx := outs[0], cons[0].Rx(0)
	const size = 3<<19 + 17
	sent := map[uint64]uint32{}
	for c := uint64(0); c < 6; c++ {
		f := frameData(c, size)
		if o.WriteFrame(FrameMeta{Track: 1, Width: 1920, Height: 1080, PixelFormat: FourCC("UYVY"), RTPTimestamp: uint32(c) * 1500, Counter: c}, f) {
			sent[c] = crc32.ChecksumIEEE(f)
		}
	}
	if len(sent) != 2 || o.Stats().Dropped != 4 {
		t.Fatalf("delivered %d frames (%+v), want 2 with the ring full after them", len(sent), o.Stats())
	}
	buf := make([]byte, 4<<20)
	read := func() []uint64 {
		var got []uint64
		for {
			n, err := rx.ReadPacket(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				rx.Flush()
				return got
			}
			m, data, err := ParseFrame(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if m.Track != 1 || m.Width != 1920 || m.Height != 1080 || m.PixelFormat != FourCC("UYVY") || m.RTPTimestamp != uint32(m.Counter)*1500 {
				t.Fatalf("meta %+v", m)
			}
			if crc32.ChecksumIEEE(data) != sent[m.Counter] || len(data) != size {
				t.Fatalf("frame %d torn or wrong", m.Counter)
			}
			got = append(got, m.Counter)
		}
	}
	if got := read(); fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("read %v", got)
	}
	f := frameData(9, size)
	sent[9] = crc32.ChecksumIEEE(f)
	if !o.WriteFrame(FrameMeta{Track: 1, Width: 1920, Height: 1080, PixelFormat: FourCC("UYVY"), RTPTimestamp: 9 * 1500, Counter: 9}, f) {
		t.Fatal("frame after the consumer caught up was dropped")
	}
	if got := read(); fmt.Sprint(got) != "[9]" {
		t.Fatalf("read %v", got)
	}
}

func TestParseFrameRejects(t *testing.T) {
	var h [FrameHeaderLen]byte
	FrameMeta{}.Put(h[:], 5)
	if _, _, err := ParseFrame(append(h[:], 1, 2, 3)); !errors.Is(err, ErrHeader) {
		t.Fatalf("short frame: %v", err)
	}
	if _, _, err := ParseFrame(h[:10]); !errors.Is(err, ErrHeader) {
		t.Fatalf("short header: %v", err)
	}
	if m, d, err := ParseFrame(append(h[:], 1, 2, 3, 4, 5)); err != nil || !bytes.Equal(d, []byte{1, 2, 3, 4, 5}) || m != (FrameMeta{}) {
		t.Fatalf("%+v %v %v", m, d, err)
	}
}

// BenchmarkFrames1080p4Consumers: 1080p 4:2:2 10-bit frames (5 184 000 bytes) to four
// consumers, each over chains of 64 KiB buffers, against a plain copy of the same bytes into four
// buffers of the same size in the same loop. ns/op is one frame to all four; "x-memmove" is the
// frames' cost over the copies'.
func BenchmarkFrames1080p4Consumers(b *testing.B) {
	// 64 KiB buffers, the most DPDK and libmemif take; our own slave may use larger ones, whose
	// copies are large enough for memmove's non-temporal stores
	for _, bsize := range []uint32{65535, 1 << 20} {
		b.Run(fmt.Sprintf("bsize=%d", bsize), func(b *testing.B) { benchFrames(b, bsize) })
	}
}

func benchFrames(b *testing.B, bsize uint32) {
	const size = 1920 * 1080 * 5 / 2
	log2 := uint8(8) // 256 × 64 KiB: three frames in flight
	if bsize > 65535 {
		log2 = 4 // 16 × 1 MiB
	}
	outs, cons := frameSetup(b, 4, log2, bsize)
	var wg sync.WaitGroup
	var got atomic.Int64
	stop := make(chan struct{})
	for _, c := range cons {
		wg.Add(1)
		go func(rx *memif.Rx) {
			defer wg.Done()
			rx.SetPolling(true)
			for {
				// a consumer that takes the frame in place: consumed without a copy
				_, err := rx.ReadPacket(nil)
				switch {
				case errors.Is(err, memif.ErrTooBig):
					got.Add(1)
					continue
				case err != nil:
					return
				}
				rx.Flush()
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(50 * time.Microsecond)
			}
		}(c.Rx(0))
	}
	frame := frameData(1, size)
	dsts := make([][]byte, 4)
	for i := range dsts {
		dsts[i] = make([]byte, size)
	}
	// CPU time of this thread, not wall time: the machine is shared, and a preempted copy is not
	// a slower one
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var inFrames, inCopy time.Duration
	b.SetBytes(4 * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, o := range outs {
			for {
				t0 := threadCPU()
				ok := o.WriteFrame(FrameMeta{Width: 1920, Height: 1080, PixelFormat: FourCC("v210"), Counter: uint64(i)}, frame)
				inFrames += threadCPU() - t0
				if ok {
					break
				}
				// the benchmark waits for its consumers rather than lose frames (the wait is
				// not counted; the refused attempt, which copies nothing, is)
				time.Sleep(20 * time.Microsecond)
			}
		}
		t1 := threadCPU()
		for _, d := range dsts {
			copy(d, frame)
		}
		inCopy += threadCPU() - t1
	}
	for deadline := time.Now().Add(10 * time.Second); got.Load() < int64(4*b.N) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	var dropped uint64
	for _, o := range outs {
		dropped += o.Stats().Dropped
	}
	b.ReportMetric(float64(inFrames.Nanoseconds())/float64(b.N), "frame-cpu-ns")
	b.ReportMetric(float64(inCopy.Nanoseconds())/float64(b.N), "memmove-cpu-ns")
	b.ReportMetric(float64(inFrames)/float64(inCopy), "x-memmove")
	if got.Load() != int64(4*b.N) {
		b.Fatalf("consumers got %d of %d frames", got.Load(), 4*b.N)
	}
	_ = dropped // drops while waiting for buffers are retried, not lost
}

// threadCPU is the CPU time of the calling OS thread (the benchmark locks itself to one).
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
