package node

import (
	"log/slog"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
)

// maxRelaySkew bounds RelaySource.Skew (as config bounds it): the merge holds packets this
// long behind a gap.
const maxRelaySkew = 10 * time.Second

// setRelayChains composes each track's chain of relay source fl, the per-packet path from the
// peers of its upstream's addresses (peer.handleRTP) to its hub, in one place:
//
//	one leg:  rtp.Unprotect → nack.Repairer (with NACK) → rtp.HubInput
//	two legs: rtp.Merge (leg 0 and leg 1; it checks SRTP itself) → nack.Repairer (with NACK) → rtp.HubInput
//
// The merge is one relayed track's SMPTE 2022-7 receiver: the two legs of a live-live relay meet
// there, after the SRTP check of each number's first copy (a forged packet on one leg must not
// take the place of the genuine copy on the other) and before loss repair, which then sees one
// line with only the packets both legs lost missing. Retransmissions answering its NACKs come back
// behind the merged line; the merge refills them into the repair, which knows what it still
// misses (a late packet may fill a gap the repair still holds open; the repair drops the rest).
// Without repair the hub takes the line in order only: what comes back late is lost.
//
// The read goroutines of both pairs write into a merge; it serialises them (under llmu, shared by
// the flow's tracks, which share its SRTP context), and with them every write into the track's
// repair or hub. The merge's timer releases packets held behind a gap when no later packet comes
// to do it.
//
// A flow is composed once, and again only when a re-pointed relay gains its second leg: one
// re-pointed to an upstream without a second leg keeps its merges, fed by one leg. setRepairLocked
// made the repairs before.
func (fl *flow) setRelayChains(f RelaySource, log *slog.Logger) {
	merged := len(fl.mg) > 0
	if fl.in != nil && (merged || !f.RTP2.IsValid()) {
		return
	}
	hubs := fl.stream.hubs
	fl.in = make([]rtp.Writer, len(hubs))
	fl.in2 = nil
	if f.RTP2.IsValid() {
		fl.in2 = make([]rtp.Writer, len(hubs))
	}
	for i, hub := range hubs {
		end := &rtp.HubInput{Hub: hub, Packets: &fl.pkts, Bytes: &fl.bytes, Errors: &fl.errs}
		var repair rtp.Stage
		if i < len(fl.rx) {
			repair = fl.rx[i]
		}
		un := &rtp.Unprotect{Ctx: &fl.srtp, Errors: &fl.errs, Last: &fl.last}
		if fl.in2 == nil {
			fl.in[i] = rtp.Chain(un, repair).To(end)
			continue
		}
		var lg *slog.Logger
		if log != nil {
			lg = log.With("stream", fl.spec.Stream, "track", i)
		}
		mg := rtp.NewMerge(rtp.MergeConfig{Skew: f.Skew, Unprotect: un, Mu: &fl.llmu, Refill: repair != nil, Logger: lg})
		fl.mg = append(fl.mg, mg)
		fl.in[i] = rtp.Chain(mg, repair).To(end)
		fl.in2[i] = mg.Leg(1)
	}
}

// setLiveLiveLocked gives a relay source with a second leg its second feedback path, so NACKs
// reach the upstream over both networks (its merges are stages of its chains: setRelayChains).
func (n *Local) setLiveLiveLocked(fl *flow, f RelaySource) {
	if !f.RTP2.IsValid() {
		if old := fl.fb.Swap(1, nil); old != nil {
			old.Close()
		}
		return
	}
	if f.NACK {
		if old := fl.fb.Swap(1, n.udp2.NewSink(f.RTP2, f.RTCP2)); old != nil {
			old.Close()
		}
	}
}

// stopLiveLiveLocked ends a relay source's merges and its second feedback path.
func (n *Local) stopLiveLiveLocked(fl *flow) {
	for _, mg := range fl.mg {
		mg.Close()
	}
	if fb := fl.fb.Swap(1, nil); fb != nil {
		fb.Close()
	}
}

// liveLiveStats sums a relay's merge counters over its tracks; nil for a relay without a second
// leg.
func (fl *flow) liveLiveStats() *merge.Stats {
	if len(fl.mg) == 0 {
		return nil
	}
	sum := &merge.Stats{}
	for _, mg := range fl.mg {
		sum.Add(mg.Stats())
	}
	return sum
}
