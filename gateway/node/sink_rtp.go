package node

import (
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/rtpout"
)

// rtpSink runs a SinkRTP flow: one track to a plain RTP output (rtp/rtpout) with its own
// sockets, FEC and second 2022-7 leg (output.go).
type rtpSink struct {
	out *rtpout.Output
}

func (r *rtpSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		sp := fl.spec.Spec.(RTPSink)
		out, err := newRTPOutput(sp, n.pool, n.log.With("stream", fl.spec.Stream, "output", sp.RTP.String()))
		if err != nil {
			return nil, nil, err
		}
		r.out = out
		return out, func() { out.Close() }, nil
	})
}

func (r *rtpSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

// stats: Packets and Bytes are the media packets sent over both legs, FEC the FEC packets.
func (r *rtpSink) stats(_ *Local, fl *flow) FlowStats {
	st := outputStats(r.out)
	fl.lastActivity(&st)
	return st
}

func (r *rtpSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
