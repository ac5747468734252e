package peertest

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("FreePort %d not usable: %v", p, err)
	}
	l.Close()
}

func TestFreeUDPPair(t *testing.T) {
	rtp, rtcp := FreeUDPPair(t)
	if rtp%2 != 0 || rtcp != rtp+1 {
		t.Fatalf("FreeUDPPair = %d, %d; want even, even+1", rtp, rtcp)
	}
	for _, p := range []int{rtp, rtcp} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			t.Fatalf("port %d not usable: %v", p, err)
		}
		c.Close()
	}
}
