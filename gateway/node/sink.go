package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// startSinkLocked is what every sink kind's start shares: the flow hangs on its track's hub,
// open (the kind's part) makes what it sends through and returns the rtp.Sink to hang on the hub
// and its closing, a reader's receiver reports join its address's peer, and an unpaused sink
// starts receiving.
func (n *Local) startSinkLocked(fl *flow, open func() (rtp.Sink, func(), error)) error {
	f, track := fl.spec, fl.spec.Track()
	s := n.streams[f.Stream]
	if s == nil || s.hubs == nil {
		return fmt.Errorf("stream %s is not live on this node: %w", f.Stream, ErrNotFound)
	}
	if track >= len(s.hubs) {
		return fmt.Errorf("stream %s has no track %d: %w", f.Stream, track, ErrNotFound)
	}
	fl.stream, fl.hub = s, s.hubs[track]
	hs, closeSink, err := open()
	if err != nil {
		return err
	}
	fl.hubSink, fl.closeSink = hs, closeSink
	n.addFlowLocked(fl)
	// a reader's receiver reports prove it is alive
	n.movePeersLocked(fl, Flow{}, f)
	if !f.Paused() {
		fl.hub.AddSink(fl.hubSink)
		fl.added = true
	}
	return nil
}

// updateSinkLocked pauses or resumes a sink (the only change a sink takes), hanging it on its
// track's new hub if the stream's layout was replaced meanwhile.
func (n *Local) updateSinkLocked(fl *flow, f Flow) error {
	if fl.hub == nil {
		s := fl.stream
		if s.hubs == nil || fl.spec.Track() >= len(s.hubs) {
			return fmt.Errorf("stream %s is not live on this node: %w", f.Stream, ErrNotFound)
		}
		fl.hub = s.hubs[fl.spec.Track()]
	}
	switch {
	case f.Paused() && fl.added:
		fl.hub.RemoveSink(fl.hubSink)
		fl.added = false
	case !f.Paused() && !fl.added:
		fl.hub.AddSink(fl.hubSink)
		fl.added = true
	}
	keepSpec(fl, f)
	return nil
}

// stopSinkLocked takes a sink off its hub and its peer; the returned function closes it and a
// stream left with neither source nor sinks.
func (n *Local) stopSinkLocked(fl *flow) func() {
	if fl.added && fl.hub != nil {
		fl.hub.RemoveSink(fl.hubSink)
	}
	n.movePeersLocked(fl, fl.spec, Flow{})
	orphan := n.dropOrphanLocked(fl.stream)
	return func() {
		fl.closeSink()
		orphan()
	}
}

// newUDPSinkLocked opens fl.sink, a UDP sink to sp's destination on the node's pair (the second
// for a live-live relay leg), SRTP-protected with sp's key if it has one. A multicast sink is
// such a sink without key, second pair or resume.
func (n *Local) newUDPSinkLocked(fl *flow, sp UDPSink) error {
	id := fl.spec.ID
	if err := n.checkSecondPair(sp.SecondPair); err != nil {
		return fmt.Errorf("flow %s: %w", id, err)
	}
	pair := n.pair(sp.SecondPair)
	if len(sp.SRTPKey) == 0 {
		fl.sink = pair.NewSink(sp.RTP, sp.RTCP)
		return nil
	}
	// protected on the egress workers, per reader (or relay), with the key the control drew
	k, err := srtp.KeyFromBytes(sp.SRTPKey)
	switch {
	case err != nil:
	case sp.SRTPResume != nil:
		fl.sink, err = pair.NewSRTPSinkResuming(sp.RTP, sp.RTCP, k, *sp.SRTPResume)
	default:
		fl.sink, err = pair.NewSRTPSink(sp.RTP, sp.RTCP, k)
	}
	if err != nil {
		return fmt.Errorf("flow %s: %w", id, err)
	}
	return nil
}

// udpSinkStats are a UDP or multicast sink's counters, its SRTP sender state and what its
// reader reported.
func udpSinkStats(fl *flow) FlowStats {
	var st FlowStats
	ss := fl.sink.Stats()
	st.Packets, st.Bytes, st.Dropped, st.Errors = ss.Packets, ss.Bytes, ss.Dropped, ss.Errors
	if rs, ok := fl.sink.SRTPState(); ok {
		held := rs // only an SRTP sink's state goes to the heap
		st.SRTP = &held
	}
	fl.rrMu.Lock()
	if fl.rr.Reports > 0 {
		rr := fl.rr
		st.Reception = &rr
	}
	fl.rrMu.Unlock()
	fl.lastActivity(&st)
	return st
}
