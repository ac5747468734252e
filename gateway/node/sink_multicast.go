package node

// multicastSink runs a SinkMulticast flow: one track to a multicast group, a UDP sink on the
// node's pair aimed at the group (never SRTP: Validate refuses a key).
type multicastSink struct{}

func (multicastSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() error { return n.newUDPSinkLocked(fl) })
}

func (multicastSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

func (multicastSink) stats(_ *Local, fl *flow, st *FlowStats) { udpSinkStats(fl, st) }

func (multicastSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
