package roq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// UDPIn takes a local RTP/UDP stream (an encoder sending track i's RTP to port + 2i and its
// RTCP to the port after) and publishes it over a pushing Client's flows.
type UDPIn struct {
	c    *Client
	rtp  []*net.UDPConn
	rtcp []*net.UDPConn

	packets, errs atomic.Uint64
}

// NewUDPIn binds the port pairs of every track of c's session at listen.
func NewUDPIn(c *Client, listen netip.AddrPort) (*UDPIn, error) {
	u := &UDPIn{c: c}
	for i := range c.Answer.Flows {
		port := int(listen.Port()) + 2*i
		if port+1 > 65535 {
			u.close()
			return nil, fmt.Errorf("roq: no port pair for track %d above %s", i, listen)
		}
		r, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(listen.Addr(), uint16(port))))
		if err != nil {
			u.close()
			return nil, fmt.Errorf("roq: rtp port: %w", err)
		}
		// a keyframe arrives as a burst, and a stream write may wait for the congestion window
		_ = r.SetReadBuffer(4 << 20)
		u.rtp = append(u.rtp, r)
		rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(listen.Addr(), uint16(port+1))))
		if err != nil {
			u.close()
			return nil, fmt.Errorf("roq: rtcp port: %w", err)
		}
		u.rtcp = append(u.rtcp, rc)
	}
	return u, nil
}

// Packets is how many RTP packets were published.
func (u *UDPIn) Packets() uint64 { return u.packets.Load() }

// Run publishes until ctx ends or the session does, then closes the sockets.
func (u *UDPIn) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range u.rtp {
		wg.Go(func() {
			readUDP(ctx, u.rtp[i], func(b []byte) {
				if u.c.SendRTP(i, b) != nil {
					u.errs.Add(1)
				} else {
					u.packets.Add(1)
				}
			})
		})
		wg.Go(func() { readUDP(ctx, u.rtcp[i], func(b []byte) { _ = u.c.SendRTCP(i, b) }) })
	}
	err := u.c.Run(ctx, discard{})
	cancel()
	u.close()
	wg.Wait()
	return err
}

func (u *UDPIn) close() { closeUDP(u.rtp, u.rtcp) }

// readUDP hands every datagram conn receives to fn until conn is closed.
func readUDP(ctx context.Context, conn *net.UDPConn, fn func([]byte)) {
	buf := make([]byte, MaxPacket)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP port unreachable while the peer is not up
		}
		fn(buf[:n])
	}
}

// closeUDP closes sockets.
func closeUDP(sets ...[]*net.UDPConn) {
	for _, set := range sets {
		for _, c := range set {
			_ = c.Close()
		}
	}
}

// discard takes what a server sends a publisher (nothing yet) and drops it.
type discard struct{}

func (discard) HandlePacket(uint64, []byte) {}
