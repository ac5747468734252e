package peertest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPair returns an even UDP port and the odd port after it (an
// RTP/RTCP pair) on 127.0.0.1, both free a moment ago.
func FreeUDPPair(t testing.TB) (rtp, rtcp int) {
	t.Helper()
	for range 200 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("FreeUDPPair: %v", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
		if p < 1024 || p+1 > 65535 {
			continue
		}
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p, p + 1
	}
	t.Fatalf("FreeUDPPair: no free even/odd UDP port pair found")
	return 0, 0
}

// randHex returns 2n random hex digits.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ListenFECPorts binds UDP ports P, P+2 and P+4 on 127.0.0.1 (SMPTE 2022-1's media, column FEC
// and row FEC ports) and returns P with the three sockets, which the caller closes.
func ListenFECPorts(t testing.TB) (int, [3]*net.UDPConn) {
	t.Helper()
	lo := net.IPv4(127, 0, 0, 1)
	for range 100 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo})
		if err != nil {
			t.Fatalf("ListenFECPorts: %v", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		if p+5 > 65535 {
			c.Close()
			continue
		}
		c2, err2 := net.ListenUDP("udp4", &net.UDPAddr{IP: lo, Port: p + 2})
		c4, err4 := net.ListenUDP("udp4", &net.UDPAddr{IP: lo, Port: p + 4})
		if err2 == nil && err4 == nil {
			return p, [3]*net.UDPConn{c, c2, c4}
		}
		for _, x := range []*net.UDPConn{c, c2, c4} {
			if x != nil {
				x.Close()
			}
		}
	}
	t.Fatal("ListenFECPorts: no free UDP ports P, P+2, P+4 on 127.0.0.1")
	return 0, [3]*net.UDPConn{}
}
