//go:build linux

package rtp

import (
	"errors"
	"net"
	"net/netip"
)

// readLoop reads one socket of an RTPSource in recvmmsg batches until Close.
func (s *RTPSource) readLoop(c *net.UDPConn, in *rtpInput, kind int) {
	defer s.wg.Done()
	r, err := newBatchReader(c, s.pool)
	if err != nil {
		s.log.Error("rtp source: socket not read", "err", err)
		return
	}
	defer r.release()
	deliver := func(_ netip.AddrPort, b []byte, truncated bool) {
		if truncated {
			s.invalid.Add(1)
			return
		}
		in.deliver(kind, b)
	}
	for {
		if err := r.read(deliver); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			s.log.Warn("rtp source: read failed", "err", err)
		}
	}
}
