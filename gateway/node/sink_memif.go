package node

import (
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/memifrtp"
)

// memifSink runs a SinkMemif flow: one track of a stream to a memif consumer interface's Out,
// which belongs to the node (memif.go), so stopping the flow only takes the track off its hub.
type memifSink struct {
	ts *memifrtp.TrackSink
}

func (r *memifSink) start(n *Local, fl *flow) (func(), error) {
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		sp := fl.spec.Spec.(MemifSink)
		out, err := n.memifOut(sp.Interface)
		if err != nil {
			return nil, nil, err
		}
		r.ts = out.Track(sp.Track)
		return r.ts, func() {}, nil
	})
}

func (r *memifSink) update(n *Local, fl *flow, f Flow) error { return n.updateSinkLocked(fl, f) }

func (r *memifSink) stats(_ *Local, fl *flow) FlowStats {
	ss := r.ts.Stats()
	st := FlowStats{Packets: ss.Packets, Bytes: ss.Bytes, Dropped: ss.Dropped, Errors: ss.Errors}
	fl.lastActivity(&st)
	return st
}

func (r *memifSink) stop(n *Local, fl *flow) func() { return n.stopSinkLocked(fl) }
