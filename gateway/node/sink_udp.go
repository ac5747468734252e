package node

import (
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/nack"
)

// udpSink runs a SinkUDP flow: one track to one UDP reader (or to another node, for a relay),
// SRTP-protected when the flow has a key, behind a retransmission history on a NACK relay link.
type udpSink struct{}

func (udpSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		sp := fl.spec.Spec.(UDPSink)
		if err := n.newUDPSinkLocked(fl, sp); err != nil {
			return nil, nil, err
		}
		sink := fl.sink
		fl.srtpOut = len(sp.SRTPKey) > 0
		if !sp.NACK {
			return sink, func() { sink.Close() }, nil
		}
		hist := nack.NewHistory(sink, fl.hub.SSRC())
		fl.hist = hist
		return hist, func() {
			hist.Close()
			sink.Close()
		}, nil
	})
}

func (udpSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

func (udpSink) stats(_ *Local, fl *flow) FlowStats { return udpSinkStats(fl) }

func (udpSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
