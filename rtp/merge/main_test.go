package merge

import (
	"encoding/binary"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clockBase is the origin of now, the tests' monotonic clock (rtp.Now in
// production, which this package's tests cannot import: rtp imports merge).
var clockBase = time.Now()

func now() int64 { return int64(time.Since(clockBase)) }

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

// checkNoLeak fails when m still holds packet copies (after Close, or once
// everything was released).
func checkNoLeak(t testing.TB, m *Merger) {
	t.Helper()
	m.mu.Lock()
	n := m.bufs.inUse
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("merger: %d packet copies never put back", n)
	}
}
