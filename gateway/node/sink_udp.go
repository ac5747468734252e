package node

import "github.com/meshgw/meshgw/rtp/nack"

// udpSink runs a SinkUDP flow: one track to one UDP reader (or to another node, for a relay),
// SRTP-protected when the flow has a key, behind a retransmission history on a NACK relay link.
type udpSink struct{}

func (udpSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() error {
		if err := n.newUDPSinkLocked(fl); err != nil {
			return err
		}
		if fl.spec.NACK {
			fl.hist = nack.NewHistory(fl.sink, fl.hub.SSRC())
		}
		return nil
	})
}

func (udpSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

func (udpSink) stats(_ *Local, fl *flow, st *FlowStats) { udpSinkStats(fl, st) }

func (udpSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
