package peertest

import (
	"net"
	"testing"
	"time"
)

// TestUDPDrops overflows a socket that nobody reads and finds the kernel's drop count for it.
func TestUDPDrops(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4096)
	port := c.LocalAddr().(*net.UDPAddr).Port
	s, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 200 {
		_, _ = s.Write(make([]byte, 1000))
	}
	time.Sleep(50 * time.Millisecond)
	if d := UDPDrops(port); d == 0 {
		t.Errorf("no drops counted for port %d after overflowing it", port)
	}
	if d := UDPDrops(s.LocalAddr().(*net.UDPAddr).Port); d != 0 {
		t.Errorf("%d drops counted for the sender's port", d)
	}
}
