package rtp

import (
	"encoding/binary"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mkRTP builds a minimal valid RTP packet.
func mkRTP(ssrc uint32, seq uint16, ts uint32, payload int) []byte {
	b := make([]byte, 12+payload)
	b[0] = 0x80
	b[1] = 96
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := range payload {
		b[12+i] = byte(i)
	}
	return b
}

// recSink records copies of what it gets and releases at once.
type recSink struct {
	mu   sync.Mutex
	rtp  [][]byte
	rtcp [][]byte
}

func (s *recSink) DeliverRTP(p *Packet) {
	s.mu.Lock()
	s.rtp = append(s.rtp, append([]byte(nil), p.Bytes()...))
	s.mu.Unlock()
	p.Release()
}

func (s *recSink) DeliverRTCP(p *Packet) {
	s.mu.Lock()
	s.rtcp = append(s.rtcp, append([]byte(nil), p.Bytes()...))
	s.mu.Unlock()
	p.Release()
}

func (s *recSink) snapshot() (rtp, rtcp [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.rtp...), append([][]byte(nil), s.rtcp...)
}

func checkNoLeak(t testing.TB, pool *Pool) {
	t.Helper()
	if n := pool.inUseCount(); n != 0 {
		t.Fatalf("pool: %d packets never released", n)
	}
}
