//go:build !linux

package rtp

import (
	"errors"
	"net"
)

// readLoop reads one socket of an RTPSource until Close. Without recvmmsg
// a datagram that fills the whole buffer is taken as truncated.
func (s *RTPSource) readLoop(c *net.UDPConn, in *rtpInput, kind int) {
	defer s.wg.Done()
	p := s.pool.Get(SmallPacketSize)
	defer p.Release()
	for {
		n, _, _, _, err := c.ReadMsgUDPAddrPort(p.buf, nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			s.log.Warn("rtp source: read failed", "err", err)
			continue
		}
		if n == len(p.buf) {
			s.invalid.Add(1)
			continue
		}
		in.deliver(kind, p.buf[:n])
	}
}
