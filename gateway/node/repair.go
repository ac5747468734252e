package node

import (
	"fmt"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/nack"
)

// NACK and retransmission on relay links (RFC 4585; docs/ARCHITECTURE.md, "On edge-a" step 9): the
// per-packet halves are package rtp/nack; here they are wired to relay flows. A NACK relay sink
// sends through a nack.History (udpSink, sink_udp.go), a NACK relay source repairs each track with
// a nack.Repairer in the track's chain (flow.setRelayChains) and sends its NACKs through the flow's
// nack.Feedback (setRepairLocked, setLiveLiveLocked).

// newRepairer is the loss repair of one track of relay source fl: its NACKs go to the flow's
// feedback sinks; it is a stage of the track's chain (flow.setRelayChains), in front of the hub's
// input, which counts what it writes on the flow like the relay's other packets.
func newRepairer(fl *flow, pool *rtp.Pool, wait time.Duration) *nack.Repairer {
	return nack.NewRepairer(nack.Config{Pool: pool, Wait: wait, Feedback: &fl.fb})
}

// answerNACKs retransmits what a compound RTCP packet from a far node asks for, from the
// histories of the relay sinks aimed at it. It runs on the pair's read goroutine.
func answerNACKs(b []byte, sinks []*flow) {
	r := nack.NewReader(b)
	for {
		media, pid, blp, ok := r.Next()
		if !ok {
			return
		}
		for _, f := range sinks {
			if h := f.hist; h != nil && h.SSRC() == media {
				h.Answer(pid, blp)
			}
		}
	}
}

// RepairStats returns the loss repair counters of a relay flow (SourceRelay or SinkUDP with
// UDPSink.NACK or RelaySource.NACK), summed over its tracks.
func (n *Local) RepairStats(id string) (nack.Stats, error) {
	n.mu.Lock()
	fl := n.flows[id]
	n.mu.Unlock()
	if fl == nil {
		return nack.Stats{}, fmt.Errorf("flow %s: %w", id, ErrNotFound)
	}
	var st nack.Stats
	for _, rx := range fl.rx {
		s := rx.Stats()
		st.Requested += s.Requested
		st.NACKs += s.NACKs
		st.Filled += s.Filled
		st.Lost += s.Lost
		st.Dups += s.Dups
	}
	if fl.hist != nil {
		s := fl.hist.Stats()
		st.Resent, st.Missed = s.Resent, s.Missed
	}
	return st, nil
}
