package memifrtp

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// TestFrameQueueFromReassembler: an ST 2110 reassembler's frames fan out to two frames-form
// consumers through FrameQueues. One reads as they come, the other never reads. The reader gets
// whole frames with the right header and bytes; the stalled one fills its ring and then loses
// whole frames, counted, while the packet path (WriteRTP here) never waits; every frame handed
// over is delivered or counted dropped on each consumer, and every pooled frame comes back.
func TestFrameQueueFromReassembler(t *testing.T) {
	v, err := st2110.ParseVideoFmtp("sampling=YCbCr-4:2:2; width=64; height=16; depth=8; exactframerate=25")
	if err != nil {
		t.Fatal(err)
	}
	outs, cons := frameSetup(t, 2, 6, 2048) // 64 buffers: 32 frames of 2048+32 bytes
	ff := &FrameFanout{}
	qs := []*FrameQueue{NewFrameQueue(outs[0], 0), NewFrameQueue(outs[1], 0)}
	for _, q := range qs {
		ff.Add(q)
	}
	r, err := st2110.NewReassembler(st2110.ReassemblerConfig{Video: v, Frames: 2 + 2*FrameQueueDepth, Sink: ff})
	if err != nil {
		t.Fatal(err)
	}
	size := v.FrameSize()

	var wg sync.WaitGroup
	var got, bad int
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		rx, buf := cons[0].Rx(0), make([]byte, 1<<16)
		for {
			n, err := rx.ReadPacket(buf)
			if err != nil && !errors.Is(err, memif.ErrTooBig) {
				return
			}
			if n == 0 {
				rx.Flush()
				select {
				case <-done:
					return
				default:
				}
				_ = rx.Wait(10 * time.Millisecond)
				continue
			}
			m, data, err := ParseFrame(buf[:n])
			if err != nil || m.Width != 64 || m.Height != 16 || m.PixelFormat != FourCC("UYVY") ||
				len(data) != size || !bytes.Equal(data, frameData(uint64(data[0]), size)) {
				bad++
				continue
			}
			got++
		}
	}()

	p, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: v, PayloadType: 96, SSRC: 1})
	if err != nil {
		t.Fatal(err)
	}
	const frames = 200
	pkt := make([]byte, 1500)
	start := time.Now()
	for i := range frames {
		if err := p.Begin(frameData(uint64(i), size), uint32(i*3600)); err != nil {
			t.Fatal(err)
		}
		for n := p.Next(pkt); n > 0; n = p.Next(pkt) {
			r.WriteRTP(pkt[:n])
		}
		time.Sleep(500 * time.Microsecond) // a frame period's worth for the reader, not for the stalled one
	}
	r.Flush()
	t.Logf("%d frames through the reassembler in %v", frames, time.Since(start))
	rs := r.Stats()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, b := outs[0].Stats(), outs[1].Stats()
		if a.Frames+a.Dropped == rs.Frames && b.Frames+b.Dropped == rs.Frames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames handed %d, consumer A %+v, B %+v", rs.Frames, a, b)
		}
	}
	for _, q := range qs {
		ff.Remove(q)
		q.Close()
	}
	time.Sleep(50 * time.Millisecond)
	close(done)
	wg.Wait()
	a, b := outs[0].Stats(), outs[1].Stats()
	t.Logf("reassembler %+v; reader %+v (read %d, bad %d); stalled %+v", rs, a, got, bad, b)
	if rs.Frames+rs.NoBuffer < frames-1 || bad != 0 || uint64(got) != a.Frames || a.Frames < rs.Frames/2 {
		t.Fatalf("reader: %d frames read (%d bad) of %d handed", got, bad, rs.Frames)
	}
	if b.Frames != 32 || b.Dropped != rs.Frames-32 {
		t.Fatalf("stalled consumer: %+v, want 32 frames in its ring and the rest of %d dropped", b, rs.Frames)
	}
	if free := r.Pool().Free(); free != r.Pool().Len() {
		t.Fatalf("%d of %d pooled frames came back", free, r.Pool().Len())
	}
}

// TestFrameInPacketizes: a producer writes frames-form buffers into a FrameIn: a whole frame of
// the video track comes out as RFC 4175 packets that an ST 2110 reassembler turns back into the
// same bytes; a frame of the wrong size and one for the track without a video format are
// counted invalid, not packetized.
func TestFrameInPacketizes(t *testing.T) {
	v, err := st2110.ParseVideoFmtp("sampling=YCbCr-4:2:2; width=64; height=16; depth=8; exactframerate=25")
	if err != nil {
		t.Fatal(err)
	}
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(t.TempDir(), "m.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(2, "")
	rec := &recorder{}
	in, err := NewFrameIn(ep, []byte("v=0\r\n"), []rtp.Track{{PayloadType: 96}, {PayloadType: 97}}, []*st2110.Video{v, nil}, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: 2, Log2Ring: 6, BufferSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	size := v.FrameSize()
	frame := frameData(7, size)
	tx := c.Tx(0)
	for _, f := range []struct {
		track uint8
		data  []byte
	}{{0, frame[:size-1]}, {1, frame}, {0, frame}} {
		var h [FrameHeaderLen]byte
		FrameMeta{Track: f.track, Width: 64, Height: 16, RTPTimestamp: 9000}.Put(h[:], len(f.data))
		if err := tx.WritePacket(h[:], f.data); err != nil {
			t.Fatal(err)
		}
	}
	tx.Flush()
	for deadline := time.Now().Add(10 * time.Second); in.Stats().Invalid < 2 || rec.count() == 0 || in.Stats().LastPacket.IsZero(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, %d packets", in.Stats(), rec.count())
		}
	}
	var got *st2110.Frame
	r, err := st2110.NewReassembler(st2110.ReassemblerConfig{Video: v, Sink: st2110.FrameSinkFunc(func(f *st2110.Frame) {
		if got != nil {
			got.Release()
		}
		got = f
	})})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	for i, p := range rec.packets {
		if rec.tracks[i] != 0 {
			t.Fatalf("packet %d on track %d", i, rec.tracks[i])
		}
		r.WriteRTP(p)
	}
	rec.mu.Unlock()
	if got == nil || !got.Complete || got.Timestamp != 9000 || !bytes.Equal(got.Data, frame) {
		t.Fatalf("reassembled %+v from %d packets (stats %+v)", got, rec.count(), r.Stats())
	}
	got.Release()
	if st := in.Stats(); st.Invalid != 2 {
		t.Fatalf("stats %+v, want 2 invalid", st)
	}
}
