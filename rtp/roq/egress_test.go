package roq

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
)

// gatedTransport records what is sent; while its gate is closed, sends block, as quic-go's
// SendDatagram does while its queue waits for the congestion window.
type gatedTransport struct {
	mu    sync.Mutex
	sent  [][]byte
	gate  chan struct{}
	count atomic.Int64
}

func (g *gatedTransport) SendDatagram(b []byte) error {
	if g.gate != nil {
		<-g.gate
	}
	g.count.Add(1)
	g.mu.Lock()
	g.sent = append(g.sent, append([]byte(nil), b...))
	g.mu.Unlock()
	return nil
}

func (g *gatedTransport) OpenStream(context.Context) (io.WriteCloser, error) {
	return nopStream{g}, nil
}

type nopStream struct{ g *gatedTransport }

func (s nopStream) Write(b []byte) (int, error) { return len(b), s.g.SendDatagram(b) }
func (s nopStream) Close() error                { return nil }

// h264 builds an H.264 RTP packet: a single NAL unit of type nal.
func h264(pool *rtp.Pool, seq uint16, ts uint32, nal byte) *rtp.Packet {
	b := peertest.RTPPacket(1, seq, ts, 100)
	b[12] = nal
	p := pool.Get(len(b))
	copy(p.Bytes(), b)
	return p
}

func (g *gatedTransport) timestamps() []uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []uint32
	for _, d := range g.sent {
		_, pkt, _ := ParseDatagram(d)
		ts := binary.BigEndian.Uint32(pkt[4:8])
		if len(out) == 0 || out[len(out)-1] != ts {
			out = append(out, ts)
		}
	}
	return out
}

func TestEgressDropsWholeFramesUntilKeyframe(t *testing.T) {
	tr := &gatedTransport{gate: make(chan struct{})}
	e := NewEgress(tr, EgressConfig{QueueLen: 16})
	sk := e.Track(TrackFlows(0), keyframe.H264)
	pool := rtp.NewPool()
	seq := uint16(0)
	frame := func(ts uint32, nal byte, n int) {
		for range n {
			sk.DeliverRTP(h264(pool, seq, ts, nal))
			seq++
		}
	}
	// While the connection is stuck, frames fill the queue to half; the frames after it are
	// dropped whole, also a delta frame once room is back, until the keyframe.
	frame(1, 5, 4) // IDR: queued (the writer holds the first packet at the gate)
	frame(2, 1, 4) // queued: 8 in the queue
	frame(3, 1, 4) // the queue is at half: dropped whole
	frame(4, 1, 4) // dropped
	close(tr.gate) // the path recovers
	for tr.count.Load() < 8 {
		time.Sleep(time.Millisecond)
	}
	frame(5, 1, 4) // room again, but it depends on the dropped frames: dropped
	frame(6, 5, 4) // keyframe: resumes
	frame(7, 1, 4)
	for tr.count.Load() < 16 {
		time.Sleep(time.Millisecond)
	}
	e.Close()
	got := tr.timestamps()
	want := []uint32{1, 2, 6, 7}
	if len(got) != len(want) {
		t.Fatalf("frames sent %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frames sent %v, want %v", got, want)
		}
	}
	st := sk.Stats()
	if st.FramesDropped != 3 || st.Dropped != 12 || st.Packets != 16 {
		t.Errorf("stats %+v, want 3 frames (12 packets) dropped, 16 sent", st)
	}
	// after Close every delivery is released and counted
	sk.DeliverRTP(h264(pool, seq, 8, 1))
	if sk.Stats().Dropped != 13 {
		t.Errorf("delivery after close not counted")
	}
}

func TestEgressRTCPAndFlows(t *testing.T) {
	tr := &gatedTransport{}
	e := NewEgress(tr, EgressConfig{})
	sk := e.Track(TrackFlows(2), keyframe.Other)
	pool := rtp.NewPool()
	p := pool.Get(8)
	copy(p.Bytes(), []byte{0x80, 200, 0, 1, 0, 0, 0, 1})
	sk.DeliverRTCP(p)
	sk.DeliverRTP(h264(pool, 1, 1, 1))
	for tr.count.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	e.Close()
	f0, _, _ := ParseDatagram(tr.sent[0])
	f1, pkt, _ := ParseDatagram(tr.sent[1])
	if f0 != 5 || f1 != 4 || !bytes.Equal(pkt[:2], []byte{0x80, 0x60}) {
		t.Errorf("flows %d %d", f0, f1)
	}
}

// countTransport counts and forgets: the cost of meshgw's own part of sending.
type countTransport struct{ n atomic.Int64 }

func (c *countTransport) SendDatagram([]byte) error { c.n.Add(1); return nil }
func (c *countTransport) OpenStream(context.Context) (io.WriteCloser, error) {
	return nil, io.ErrClosedPipe
}

// BenchmarkEgress is a hub's delivery to one RoQ track sink and its writer's framing, up to
// quic-go's SendDatagram (which copies each datagram into a frame of its own: 2 allocations per
// packet inside quic-go v0.65.0 that meshgw cannot avoid).
func BenchmarkEgress(b *testing.B) {
	tr := &countTransport{}
	e := NewEgress(tr, EgressConfig{QueueLen: 4096})
	defer e.Close()
	sk := e.Track(TrackFlows(0), keyframe.Other)
	pool := rtp.NewPool()
	pkt := peertest.RTPPacket(1, 1, 1, 1200)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for i := range b.N {
		p := pool.Get(len(pkt))
		copy(p.Bytes(), pkt)
		binary.BigEndian.PutUint32(p.Bytes()[4:], uint32(i))
		sk.DeliverRTP(p)
		for int(tr.n.Load())+int(sk.Stats().Dropped) < i-256 {
			// keep the queue from overflowing: the writer keeps up in steady state
		}
	}
	for int(tr.n.Load())+int(sk.Stats().Dropped) < b.N {
		time.Sleep(time.Microsecond)
	}
}
