package nack

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/rtp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var video = rtp.Track{Media: "video", PayloadType: 96, ClockRate: 90000}

// mkRTP builds an RTP packet with a 100-byte payload.
func mkRTP(ssrc uint32, seq uint16, ts uint32) []byte {
	b := make([]byte, 12+100)
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

// releaseSink releases what a hub gives it.
type releaseSink struct{}

func (releaseSink) DeliverRTP(p *rtp.Packet)  { p.Release() }
func (releaseSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

func listenLoopback(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seqReader is a UDP socket recording the sequence numbers of the RTP packets it receives.
type seqReader struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	seqs []uint16
}

func newSeqReader(t testing.TB) *seqReader {
	t.Helper()
	r := &seqReader{conn: listenLoopback(t)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := r.conn.Read(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				r.mu.Lock()
				r.seqs = append(r.seqs, binary.BigEndian.Uint16(buf[2:]))
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { r.conn.Close(); r.wg.Wait() })
	return r
}

func (r *seqReader) addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// wait returns the sequence numbers once there are at least n, failing after d.
func (r *seqReader) wait(t *testing.T, n int, d time.Duration) []uint16 {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		got := append([]uint16(nil), r.seqs...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader got %d packets in %v, want %d", len(got), d, n)
		}
	}
}
