package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// maxRelaySkew bounds Flow.Skew on a relay (as config bounds it): the merge holds packets this
// long behind a gap.
const maxRelaySkew = 10 * time.Second

// relayMerge is one relayed track's SMPTE 2022-7 receiver: the two legs of a live-live relay meet
// here, after each leg's own SRTP check (a forged packet on one leg must not take the place of the
// genuine copy on the other) and before loss repair, which then sees one line with only the
// packets both legs lost missing. Retransmissions answering its NACKs come back behind the merged
// line; the merger's Refill hands them on to the repair, which knows what it still misses.
//
// push runs on the read goroutines of both pairs; the merger serialises them, and with them every
// write into the track's hub or repair. The timer releases packets held behind a gap when no later
// packet comes to do it.
type relayMerge struct {
	m *rtp.Merger

	mu     sync.Mutex // guards the timer's arming, not the merger
	timer  *time.Timer
	armed  int64 // deadline the timer is set for (rtp.Now() ns), 0 when idle
	closed bool
}

// newRelayMerge merges the legs of track hub of relay fl into rx's repair, or into the hub when
// the relay has no repair.
func newRelayMerge(fl *flow, hub *rtp.Hub, rx *relayRx, skew time.Duration, pool *rtp.Pool, log *slog.Logger) *relayMerge {
	if skew <= 0 {
		skew = rtp.ClassB
	}
	cfg := rtp.MergerConfig{Skew: skew, Legs: 2, Pool: pool, Logger: log}
	if rx != nil {
		cfg.Out = func(b []byte) { rx.push(hub, b) }
		// a late packet may fill a gap the repair still holds open; the repair drops the rest
		cfg.Refill = cfg.Out
	} else {
		// without repair the hub takes the line in order only: what comes back late is lost
		cfg.Out = func(b []byte) { relayWrite(fl, hub, b) }
	}
	mg := &relayMerge{m: rtp.NewMerger(cfg)}
	mg.timer = time.AfterFunc(time.Hour, mg.onTimer)
	mg.timer.Stop()
	return mg
}

// push takes one packet of leg (0 or 1) that passed its leg's SRTP check.
func (mg *relayMerge) push(leg int, b []byte) {
	now := rtp.Now()
	mg.m.Push(leg, b, now)
	mg.arm(now)
}

// arm sets the timer for the merger's next deadline when it is earlier than the one set.
func (mg *relayMerge) arm(now int64) {
	at, ok := mg.m.NextDeadline()
	if !ok {
		return
	}
	mg.mu.Lock()
	if !mg.closed && (mg.armed == 0 || at < mg.armed) {
		mg.armed = at
		mg.timer.Reset(time.Duration(max(at-now, 0)))
	}
	mg.mu.Unlock()
}

func (mg *relayMerge) onTimer() {
	mg.mu.Lock()
	mg.armed = 0
	mg.mu.Unlock()
	now := rtp.Now()
	mg.m.Tick(now)
	mg.arm(now)
}

// close stops the timer and returns what still waits to the pool.
func (mg *relayMerge) close() {
	mg.mu.Lock()
	mg.closed = true
	mg.timer.Stop()
	mg.mu.Unlock()
	mg.m.Close()
}

// setLiveLiveLocked gives a relay source with a second leg its per-track merges (once: a relay
// re-pointed to an upstream without a second leg keeps them, fed by one leg) and its second
// feedback path, so NACKs reach the upstream over both networks.
func (n *Local) setLiveLiveLocked(fl *flow, f Flow) {
	if !f.RTP2.IsValid() {
		if old := fl.fb2.Swap(nil); old != nil {
			old.Close()
		}
		return
	}
	if fl.mg == nil {
		hubs := fl.stream.hubs
		for i := range f.Tracks {
			var rx *relayRx
			if i < len(fl.rx) {
				rx = fl.rx[i]
			}
			fl.mg = append(fl.mg, newRelayMerge(fl, hubs[i], rx, f.Skew, n.pool, n.log.With("stream", f.Stream, "track", i)))
		}
	}
	if f.NACK {
		if old := fl.fb2.Swap(n.udp2.NewSink(f.RTP2, f.RTCP2)); old != nil {
			old.Close()
		}
	}
}

// stopLiveLiveLocked ends a relay source's merges and its second feedback path.
func (n *Local) stopLiveLiveLocked(fl *flow) {
	for _, mg := range fl.mg {
		mg.close()
	}
	if fb := fl.fb2.Swap(nil); fb != nil {
		fb.Close()
	}
}

// liveLiveStats sums a relay's merge counters over its tracks; nil for a relay without a second
// leg.
func (fl *flow) liveLiveStats() *rtp.MergerStats {
	if len(fl.mg) == 0 {
		return nil
	}
	sum := &rtp.MergerStats{}
	for _, mg := range fl.mg {
		sum.Add(mg.m.Stats())
	}
	return sum
}
