package node

import "fmt"

// udpIngress runs an IngressUDP flow: a UDP publisher's address bound to one track's hub through
// the address's peer (peer.go), SRTP-unprotected with the flow's key, and the receiver reports
// the node sends the publisher (reports.go).
type udpIngress struct{}

func (udpIngress) start(n *Local, fl *flow) (func(), error) {
	f, sp := fl.spec, fl.spec.Spec.(UDPIngress)
	s := n.streams[f.Stream]
	if s == nil || s.hubs == nil || sp.Track >= len(s.hubs) {
		return nil, fmt.Errorf("stream %s track %d is not live on this node: %w", f.Stream, sp.Track, ErrNotFound)
	}
	fl.stream, fl.hub = s, s.hubs[sp.Track]
	if err := n.peerConflictLocked(fl, f); err != nil {
		return nil, err
	}
	if err := fl.setUnprotect(f.ID, sp.SRTPKey, sp.SRTPROCs, false); err != nil {
		return nil, err
	}
	fl.up = n.newUpstreamReports(sp)
	n.addFlowLocked(fl)
	n.movePeersLocked(fl, Flow{}, f)
	return nil, nil
}

func (udpIngress) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

// stats: packets taken; errors are SRTP packets refused (forged, replayed).
func (udpIngress) stats(_ *Local, fl *flow) FlowStats { return fl.counts() }

func (udpIngress) stop(n *Local, fl *flow) func() {
	n.movePeersLocked(fl, fl.spec, Flow{})
	up := fl.up
	fl.up = nil
	return func() {
		if up != nil {
			up.out.Close()
		}
	}
}

// status: the publisher picks its own SSRC; the hub's would mislead.
func (udpIngress) status(st *FlowStatus) { st.SSRC = 0 }
