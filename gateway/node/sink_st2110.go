package node

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
	"github.com/meshgw/meshgw/rtp/st2110out"
)

// st2110Sink runs a SinkST2110 flow: one raw video track re-sent as a paced ST 2110-20 flow
// (rtp/st2110out), and the SDP receivers need written where the flow says.
type st2110Sink struct {
	out *st2110out.Sender
}

func (r *st2110Sink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		sp := fl.spec.Spec.(ST2110Sink)
		v, err := st2110.ParseVideoFmtp(sp.Fmtp)
		if err != nil {
			return nil, nil, err
		}
		out, err := st2110out.New(st2110out.Config{Video: v, TP: sp.TP, Dest: sp.Video, Leg2: sp.Leg2, TTL: sp.TTL,
			PayloadType: sp.PayloadType, SSRC: rand.Uint32(), Logger: n.log.With("stream", fl.spec.Stream, "output", sp.Video.String())})
		if err != nil {
			return nil, nil, err
		}
		if sp.SDPFile != "" {
			tp := sp.TP
			if tp == "" {
				tp = st2110.TPNL
			}
			b := st2110.SenderSDP("meshgw "+fl.spec.Stream, v, tp, sp.PayloadType, sp.Video, sourceAddr(sp.Video), refClock())
			if err := os.WriteFile(sp.SDPFile, b, 0o644); err != nil {
				out.Close()
				return nil, nil, fmt.Errorf("st2110 sink: SDP file: %w", err)
			}
		}
		r.out = out
		return out, func() { out.Close() }, nil
	})
}

// sourceAddr is the local address packets to dest leave from (for a=source-filter); invalid
// when the kernel has no route.
func sourceAddr(dest netip.AddrPort) netip.Addr {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dest))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// refClock is the a=ts-refclk of the media clock: the host's clock, not PTP (see
// rtp/st2110out), named by a MAC address of the host as ST 2110-10 asks for a sender not
// locked to PTP.
func refClock() string {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if len(i.HardwareAddr) == 6 && i.Flags&net.FlagLoopback == 0 {
			m := i.HardwareAddr
			return fmt.Sprintf("localmac=%02X-%02X-%02X-%02X-%02X-%02X", m[0], m[1], m[2], m[3], m[4], m[5])
		}
	}
	return "localmac=00-00-00-00-00-00"
}

func (r *st2110Sink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

// stats: Packets and Bytes are what the pacer sent, Dropped the frames it dropped, Errors the
// send errors.
func (r *st2110Sink) stats(_ *Local, fl *flow) FlowStats {
	s := r.out.Stats()
	st := FlowStats{Packets: s.Packets, Bytes: s.Bytes, Dropped: s.Dropped, Errors: s.Errors, ST2110Out: &s}
	fl.lastActivity(&st)
	return st
}

func (r *st2110Sink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
