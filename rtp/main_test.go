package rtp

import (
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
)

// mkRTP builds a minimal valid RTP packet.
var mkRTP = peertest.RTPPacket

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
