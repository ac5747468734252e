//go:build !linux

package rtp

import (
	"errors"
	"net"
)

// readLoop reads one socket until Close. Outside Linux there is no
// recvmmsg; ReadMsgUDPAddrPort still reads without allocating. Without a
// portable MSG_TRUNC, a datagram that fills the whole buffer is treated as
// truncated.
func (u *UDPPair) readLoop(c *net.UDPConn, d *demux) {
	defer u.wg.Done()
	p := u.pool.Get(SmallPacketSize)
	defer p.Release()
	for {
		n, _, _, from, err := c.ReadMsgUDPAddrPort(p.buf, nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-u.done:
				return
			default:
			}
			u.log.Warn("rtp: UDP read failed", "err", err)
			continue
		}
		u.dispatch(d, from, p.buf[:n], n == len(p.buf))
	}
}
