package node

import (
	"bytes"
	"fmt"
)

// relaySource runs a SourceRelay flow: transparent hubs with the upstream hubs' SSRCs, one chain
// per track in front of each (flow.setRelayChains: the relay's SRTP unprotection, its 2022-7
// merge, its loss repair), and the peers of the upstream's addresses, whose read goroutines
// carry the packets in (peer.go).
type relaySource struct{}

func (relaySource) start(n *Local, fl *flow) (func(), error) {
	f, sp := fl.spec, fl.spec.Spec.(RelaySource)
	// before the stream exists, so that a refused relay leaves nothing behind
	if err := n.peerConflictLocked(nil, f); err != nil {
		return nil, err
	}
	if err := n.checkSecondPair(sp.RTP2.IsValid()); err != nil {
		return nil, err
	}
	start, err := n.startSourceLocked(fl, func() (func(), error) {
		var start func()
		if n.setHubsLocked(fl.stream, sp.Tracks, sp.Pacing, sp.SSRCs) && n.events != nil {
			// readers of the old layout cannot follow; the control ends them
			start = func() { n.events.SourceReady(f.Stream, nil, sp.Tracks, true) }
		}
		// an encrypted relay: the upstream node's relay sinks protect with the same key
		if err := fl.setUnprotect(f.ID, sp.SRTPKey, nil, sp.RTP2.IsValid()); err != nil {
			return nil, err
		}
		return start, nil
	})
	if err != nil {
		return nil, err
	}
	n.setRepairLocked(fl, sp)
	n.setLiveLiveLocked(fl, sp)
	fl.setRelayChains(sp, n.log)
	n.movePeersLocked(fl, Flow{}, f)
	return start, nil
}

// update points a relay at its upstream's new place (the ingress moved to another node, or its
// hubs were recreated). The hubs stay, so their readers stay attached: the new upstream SSRC
// begins a hub epoch that continues the readers' line.
func (relaySource) update(n *Local, fl *flow, f Flow) error {
	sp, prevSp := f.Spec.(RelaySource), fl.spec.Spec.(RelaySource)
	if !sameLayout(prevSp.Tracks, sp.Tracks) {
		return fmt.Errorf("node %s: relay %s: the track layout is fixed; delete and re-create the flow", n.name, f.ID)
	}
	if err := n.peerConflictLocked(fl, f); err != nil {
		return fmt.Errorf("node %s: relay %s: %w", n.name, f.ID, err)
	}
	if err := n.checkSecondPair(sp.RTP2.IsValid()); err != nil {
		return fmt.Errorf("node %s: relay %s: %w", n.name, f.ID, err)
	}
	prev := fl.spec
	if !bytes.Equal(prevSp.SRTPKey, sp.SRTPKey) || prevSp.RTP2.IsValid() != sp.RTP2.IsValid() {
		// a re-pointed relay comes with a new key (its new upstream starts its own index), and
		// may gain or lose its second leg
		if err := fl.setUnprotect(f.ID, sp.SRTPKey, nil, sp.RTP2.IsValid()); err != nil {
			return fmt.Errorf("node %s: relay %s: %w", n.name, f.ID, err)
		}
	}
	// Pacing belongs to the hubs, which stay: the created value stands, as do the NACK and
	// merge settings.
	sp.Pacing, sp.NACK, sp.NACKWait, sp.Skew = prevSp.Pacing, prevSp.NACK, prevSp.NACKWait, prevSp.Skew
	f.Spec = sp
	fl.spec = f
	n.setRepairLocked(fl, sp)
	n.setLiveLiveLocked(fl, sp)
	fl.setRelayChains(sp, n.log)
	n.movePeersLocked(fl, prev, f)
	return nil
}

// stats: Packets and Bytes are what went into the hubs, Dropped the datagrams from the
// upstream's addresses that no relay of the node expects, Errors the packets refused.
func (relaySource) stats(n *Local, fl *flow) FlowStats {
	var st FlowStats
	for _, k := range peerKeys(fl.spec) { // spec is rewritten by updates: read under the lock
		if p := n.peers[k]; p != nil {
			st.Dropped += p.dropped.Load()
		}
	}
	st.Packets, st.Bytes, st.Errors = fl.pkts.Load(), fl.bytes.Load(), fl.errs.Load()
	st.RelayLegs = fl.liveLiveStats()
	fl.lastActivity(&st)
	return st
}

func (relaySource) stop(n *Local, fl *flow) func() {
	hubs := n.stopSourceLocked(fl)
	n.stopRepairLocked(fl)
	n.stopLiveLiveLocked(fl)
	return closeHubs(hubs, nil)
}
