package node

import "github.com/meshgw/meshgw/rtp"

// multicastSink runs a SinkMulticast flow: one track to a multicast group, a UDP sink on the
// node's pair aimed at the group (never SRTP: Validate refuses a key).
type multicastSink struct{}

func (multicastSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		sp := fl.spec.Spec.(MulticastSink)
		if err := n.newUDPSinkLocked(fl, UDPSink{RTP: sp.RTP, RTCP: sp.RTCP}); err != nil {
			return nil, nil, err
		}
		sink := fl.sink
		return sink, func() { sink.Close() }, nil
	})
}

func (multicastSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

func (multicastSink) stats(_ *Local, fl *flow) FlowStats { return udpSinkStats(fl) }

func (multicastSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
