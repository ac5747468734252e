package pull

import (
	"testing"

	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
)

type nopHandler struct{}

func (nopHandler) OnReady([]byte, []rtp.Track) error { return nil }
func (nopHandler) WriteRTP(int, []byte)              {}
func (nopHandler) WriteRTCP(int, []byte)             {}
func (nopHandler) OnDisconnect(error)                {}

func liveSession() (*session, *pionrtp.Packet) {
	p := New(Config{URL: "rtsp://127.0.0.1/x"}, nopHandler{})
	s := &session{p: p, ready: make(chan struct{}), bufs: [][]byte{make([]byte, 1500)}}
	s.open()
	pkt := &pionrtp.Packet{
		Header:  pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 2, SSRC: 3, Marker: true},
		Payload: make([]byte, 1200),
	}
	return s, pkt
}

// TestPacketPathDoesNotAllocate: our side of the packet path reuses one
// buffer per track (gortsplib's own decoding allocates; that is not ours).
func TestPacketPathDoesNotAllocate(t *testing.T) {
	s, pkt := liveSession()
	if n := testing.AllocsPerRun(1000, func() { s.rtp(0, pkt) }); n != 0 {
		t.Fatalf("%.1f allocations per packet", n)
	}
}

func BenchmarkPacketPath(b *testing.B) {
	s, pkt := liveSession()
	b.ReportAllocs()
	for b.Loop() {
		s.rtp(0, pkt)
	}
}
