package node

import (
	"fmt"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// runner carries out one kind of flow on a node: it opens the flow's pieces, applies a newer
// version of the flow, reads its counters and closes it. Local keeps what every kind shares (the
// flow table, the streams and their hubs, the peers, the lock) and calls the flow's runner for the
// rest, so a kind is one runner in a file of its own (source_*.go, sink_*.go, ingress_*.go) and
// one case in newRunner.
//
// Every method runs under the node's lock.
type runner interface {
	// start opens the flow's pieces and records fl (Local.addFlowLocked) once they stand. What it
	// returns, if not nil, runs once the lock is released: a source's goroutines call back into
	// the node.
	start(n *Local, fl *flow) (func(), error)
	// update applies f, a newer version of fl's flow (same kind, stream and track), and keeps it
	// as fl.spec.
	update(n *Local, fl *flow, f Flow) error
	// stats returns the flow's counters (by value: a pointer through the interface would move
	// them to the heap on every call).
	stats(n *Local, fl *flow) FlowStats
	// stop detaches the flow and returns what must run without the lock (stopping a source
	// waits for its goroutines, which may be calling back into the node).
	stop(n *Local, fl *flow) func()
}

// role is what a flow is to its stream.
type role uint8

const (
	// roleSource flows create their stream's hubs and feed them.
	roleSource role = iota
	// roleSink flows hang a sink on one hub.
	roleSink
	// roleIngress flows bind a publisher's address to one hub.
	roleIngress
)

// newRunner maps a (validated) flow's spec to its runner: the one place that looks at a flow's
// kind to choose behaviour. A source with a backup runs its two ingests behind a selector
// (backup.go), whatever its own kind.
func newRunner(f Flow) (runner, role, error) {
	if b, ok := f.Spec.(backedUp); ok && b.backup() != nil {
		return &selector{}, roleSource, nil
	}
	switch f.Spec.(type) {
	case DemoSource:
		return &demoSource{}, roleSource, nil
	case PullSource:
		return &pullSource{}, roleSource, nil
	case PublisherSource:
		return publisherSource{}, roleSource, nil
	case RTPSource:
		return &rtpSource{}, roleSource, nil
	case RelaySource:
		return relaySource{}, roleSource, nil
	case UDPSink:
		return udpSink{}, roleSink, nil
	case MulticastSink:
		return multicastSink{}, roleSink, nil
	case RTPSink:
		return &rtpSink{}, roleSink, nil
	case UDPIngress:
		return udpIngress{}, roleIngress, nil
	}
	return nil, 0, fmt.Errorf("flow %s: unknown kind %q", f.ID, f.Kind())
}

// startSourceLocked is what every source kind's start shares: the stream gets fl as its one
// source, open (the kind's part) sets its pieces up, and fl is recorded. A source taking over
// the stream of a node that died continues its lines (Hubs.Continue), unless it is a relay,
// whose hubs carry the upstream's line. A stream this call created goes again when open fails.
func (n *Local) startSourceLocked(fl *flow, open func() (func(), error)) (func(), error) {
	f := fl.spec
	_, existed := n.streams[f.Stream]
	s := n.stream(f.Stream)
	if s.source != nil {
		return nil, fmt.Errorf("stream %s already has source flow %s", f.Stream, s.source.spec.ID)
	}
	fl.stream = s
	if c, ok := f.Spec.(continuer); ok && s.hubs == nil {
		s.cont = c.hubs().Continue
	}
	start, err := open()
	if err != nil {
		if !existed && s.hubs == nil {
			delete(n.streams, s.id)
		}
		return nil, err
	}
	s.source = fl
	n.addFlowLocked(fl)
	return start, nil
}

// stopSourceLocked is what every source kind's stop shares: the stream loses its source, and
// its hubs go with it unless sinks still hang on them (a publisher that will come back); a
// stream without source and sinks is forgotten. It leaves the relay's peers and returns the hubs
// to close without the lock.
func (n *Local) stopSourceLocked(fl *flow) []*rtp.Hub {
	n.movePeersLocked(fl, fl.spec, Flow{}) // a relay's upstream
	s := fl.stream
	if s.source == fl {
		s.source = nil
	}
	if n.streamHasSinksLocked(s) {
		return nil
	}
	hubs := s.hubs
	s.hubs, s.tracks = nil, nil
	s.live.Store(nil)
	delete(n.streams, s.id)
	return hubs
}

// closeHubs is the part of a source's stop that runs without the lock, after the source's own.
func closeHubs(hubs []*rtp.Hub, then func()) func() {
	return func() {
		if then != nil {
			then()
		}
		for _, h := range hubs {
			h.Close()
		}
	}
}

// keepSpec is the update of a flow whose pieces take no change: the new version, labels and
// (on a sink) Paused are kept.
func keepSpec(fl *flow, f Flow) {
	fl.spec = fl.spec.WithPaused(f.Paused())
	fl.spec.Version = f.Version
	fl.spec.Meta = f.Meta
}

// counts are the counters every source and ingress keeps on its flow: packets taken, packets
// refused before the hub (SRTP that failed, replays of an rtsps:// pull), the last activity.
func (fl *flow) counts() FlowStats {
	st := FlowStats{Packets: fl.pkts.Load(), Bytes: fl.bytes.Load(), Errors: fl.errs.Load()}
	fl.lastActivity(&st)
	return st
}

// lastActivity sets st.LastActivity from the flow's last packet, if any.
func (fl *flow) lastActivity(st *FlowStats) {
	if l := fl.last.Load(); l != 0 {
		st.LastActivity = time.Unix(0, l)
	}
}

// clientSource is the part a source runner shares whose client (the demo player, the pull
// client) feeds the stream's input: nothing to update, the flow's own counters, and the client
// closed before the hubs.
type clientSource struct {
	close func() // the client's Close
}

func (r *clientSource) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

func (r *clientSource) stats(_ *Local, fl *flow) FlowStats { return fl.counts() }

func (r *clientSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), r.close)
}
