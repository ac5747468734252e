package peertest

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// FECRecorder records every datagram that reaches SMPTE 2022-1's ports on 127.0.0.1: P (media),
// P+2 (column FEC) and P+4 (row FEC), for tests of what an FEC sender puts on the wire.
type FECRecorder struct {
	port  int
	conns [3]*net.UDPConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	got   [3][][]byte
}

// RecordFECPorts binds the ports (ListenFECPorts) and reads them until the test ends.
func RecordFECPorts(t testing.TB) *FECRecorder {
	t.Helper()
	r := &FECRecorder{}
	r.port, r.conns = ListenFECPorts(t)
	for i, c := range r.conns {
		_ = c.SetReadBuffer(4 << 20)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				r.mu.Lock()
				r.got[i] = append(r.got[i], bytes.Clone(buf[:n]))
				r.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range r.conns {
			c.Close()
		}
		r.wg.Wait()
	})
	return r
}

// Addr is the media port P.
func (r *FECRecorder) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(r.port))
}

// Counts are how many datagrams each port got so far: media, column FEC, row FEC.
func (r *FECRecorder) Counts() [3]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return [3]int{len(r.got[0]), len(r.got[1]), len(r.got[2])}
}

// Snapshot returns the datagrams each port got so far, in arrival order (media, column, row).
func (r *FECRecorder) Snapshot() [3][][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [3][][]byte
	for i := range out {
		out[i] = append([][]byte(nil), r.got[i]...)
	}
	return out
}
