package merge

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
)

// mkRTP builds a minimal valid RTP packet.
var mkRTP = peertest.RTPPacket

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clockBase is the origin of now, the tests' monotonic clock (rtp.Now in
// production, which this package's tests cannot import: rtp imports merge).
var clockBase = time.Now()

func now() int64 { return int64(time.Since(clockBase)) }

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
