package roq

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// UDPOut relays a pulled RoQ session to a local player as plain RTP/UDP: track i's RTP to
// dst's port + 2i, its RTCP to the port after, each from a socket of its own, and the
// player's RTCP (its receiver reports, sent back to the RTCP socket) upstream on the track's
// RTCP flow.
type UDPOut struct {
	c    *Client
	rtp  []*net.UDPConn
	rtcp []*net.UDPConn

	packets, bytes, errs atomic.Uint64
}

// NewUDPOut opens the sockets towards dst for every track of c's session.
func NewUDPOut(c *Client, dst netip.AddrPort) (*UDPOut, error) {
	u := &UDPOut{c: c}
	for i := range c.Answer.Flows {
		port := int(dst.Port()) + 2*i
		if port+1 > 65535 {
			u.Close()
			return nil, fmt.Errorf("roq: no port pair for track %d above %s", i, dst)
		}
		r, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.Addr(), uint16(port))))
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("roq: rtp socket: %w", err)
		}
		u.rtp = append(u.rtp, r)
		rc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.Addr(), uint16(port+1))))
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("roq: rtcp socket: %w", err)
		}
		u.rtcp = append(u.rtcp, rc)
	}
	return u, nil
}

// HandlePacket implements PacketHandler.
func (u *UDPOut) HandlePacket(flow uint64, pkt []byte) {
	ref, ok := u.c.Flow(flow)
	if !ok {
		return
	}
	conn := u.rtp[ref.Track]
	if ref.RTCP {
		conn = u.rtcp[ref.Track]
	}
	if _, err := conn.Write(pkt); err != nil {
		u.errs.Add(1) // nobody listening yet: ICMP refusals come back as errors
		return
	}
	if !ref.RTCP {
		u.packets.Add(1)
		u.bytes.Add(uint64(len(pkt)))
	}
}

// Packets is how many RTP packets were relayed, and their bytes.
func (u *UDPOut) Packets() (packets, bytes uint64) { return u.packets.Load(), u.bytes.Load() }

// Run relays until ctx ends or the session does.
func (u *UDPOut) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, rc := range u.rtcp {
		wg.Go(func() { readUDP(ctx, rc, func(b []byte) { _ = u.c.SendRTCP(i, b) }) })
	}
	err := u.c.Run(ctx, u)
	cancel()
	closeUDP(u.rtcp)
	wg.Wait()
	return err
}

// Close closes the sockets (Run closes the RTCP ones itself).
func (u *UDPOut) Close() { closeUDP(u.rtp, u.rtcp) }
