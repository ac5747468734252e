package node

import (
	"log/slog"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/nack"
)

// maxRelaySkew bounds RelaySource.Skew (as config bounds it): the merge holds packets this
// long behind a gap.
const maxRelaySkew = 10 * time.Second

// newRelayMerge is one relayed track's SMPTE 2022-7 receiver: the two legs of a live-live relay
// meet here (flow.mergeLeg), after the SRTP check of each number's first copy (a forged packet on
// one leg must not take the place of the genuine copy on the other) and before loss repair, which
// then sees one line with only the packets both legs lost missing. Retransmissions answering its
// NACKs come back behind the merged line; the merger's Refill hands them on to the repair, which
// knows what it still misses.
//
// The read goroutines of both pairs push into it; the merger serialises them, and with them every
// write into the track's hub or repair. Its timer releases packets held behind a gap when no
// later packet comes to do it.
//
// It merges the legs of track hub of relay fl into rx's repair, or into the hub when the relay
// has no repair.
func newRelayMerge(fl *flow, hub *rtp.Hub, rx *nack.Repairer, skew time.Duration, log *slog.Logger) *merge.Timed {
	if skew <= 0 {
		skew = merge.ClassB
	}
	cfg := merge.Config{Skew: skew, Legs: 2, Logger: log}
	if rx != nil {
		cfg.Out = func(b []byte) { rx.Push(hub, b) }
		// a late packet may fill a gap the repair still holds open; the repair drops the rest
		cfg.Refill = cfg.Out
	} else {
		// without repair the hub takes the line in order only: what comes back late is lost
		cfg.Out = func(b []byte) { relayWrite(fl, hub, b) }
	}
	return merge.NewTimed(cfg, rtp.Now)
}

// mergeLeg takes one RTP packet of a live-live relay from leg (0 or 1). A copy of a number the
// merge already has is counted and dropped before any SRTP work: dropping it unchecked is safe,
// as it can only be dropped, and skipping its decryption halves the relay's cost. The first copy
// is checked and decrypted with the relay's one SRTP context, shared by the legs (under llmu,
// since the two pairs' read goroutines both reach it), so the replay window and rollover counter
// see every index once, in whichever leg's order it came first.
func (fl *flow) mergeLeg(mg *merge.Timed, leg int, b []byte) {
	now := rtp.Now()
	fl.llmu.Lock()
	defer fl.llmu.Unlock()
	if mg.Known(leg, b, now) {
		return
	}
	if un := fl.srtp.Load(); un != nil {
		var err error
		if b, err = un.RTP(b); err != nil {
			fl.errs.Add(1) // not from the upstream node that holds the relay's key
			return
		}
	}
	fl.last.Store(time.Now().UnixNano())
	mg.Push(leg, b, now)
}

// setLiveLiveLocked gives a relay source with a second leg its per-track merges (once: a relay
// re-pointed to an upstream without a second leg keeps them, fed by one leg) and its second
// feedback path, so NACKs reach the upstream over both networks.
func (n *Local) setLiveLiveLocked(fl *flow, f RelaySource) {
	if !f.RTP2.IsValid() {
		if old := fl.fb.Swap(1, nil); old != nil {
			old.Close()
		}
		return
	}
	if fl.mg == nil {
		hubs := fl.stream.hubs
		for i := range f.Tracks {
			var rx *nack.Repairer
			if i < len(fl.rx) {
				rx = fl.rx[i]
			}
			fl.mg = append(fl.mg, newRelayMerge(fl, hubs[i], rx, f.Skew, n.log.With("stream", fl.spec.Stream, "track", i)))
		}
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
