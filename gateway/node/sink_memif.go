package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/memifrtp"
)

// memifSink runs a SinkMemif flow: one track of a stream to a memif consumer interface, which
// belongs to the node (memif.go), so stopping the flow only detaches the track. On a packets
// interface the track's hub feeds the interface's Out; on a frames interface the track's ST
// 2110 reassembler feeds a FrameQueue through the stream's fan-out, and the hub is not touched.
type memifSink struct {
	ts *memifrtp.TrackSink

	frames *memifrtp.FrameOut
	fq     *memifrtp.FrameQueue
	fan    *memifrtp.FrameFanout
}

func (r *memifSink) start(n *Local, fl *flow) (func(), error) {
	sp := fl.spec.Spec.(MemifSink)
	if fo := n.memifFrameOut(sp.Interface); fo != nil {
		return nil, r.startFrames(n, fl, sp, fo)
	}
	return nil, n.startSinkLocked(fl, func() (rtp.Sink, func(), error) {
		out, err := n.memifOut(sp.Interface)
		if err != nil {
			return nil, nil, err
		}
		r.ts = out.Track(sp.Track)
		return r.ts, func() {}, nil
	})
}

// startFrames attaches the flow's frame queue to the stream's track: the stream must be live
// here (its source, an st2110:// route, reassembles the frames).
func (r *memifSink) startFrames(n *Local, fl *flow, sp MemifSink, fo *memifrtp.FrameOut) error {
	s := n.streams[fl.spec.Stream]
	if s == nil || s.hubs == nil {
		return fmt.Errorf("stream %s is not live on this node: %w", fl.spec.Stream, ErrNotFound)
	}
	fl.stream = s
	r.frames, r.fan = fo, n.memifFanout(fl.spec.Stream, sp.Track)
	r.fq = memifrtp.NewFrameQueue(fo, uint8(sp.Track))
	n.addFlowLocked(fl)
	if !sp.Paused {
		r.fan.Add(r.fq)
	}
	return nil
}

func (r *memifSink) update(n *Local, fl *flow, f Flow) error {
	if r.fq == nil {
		return n.updateSinkLocked(fl, f)
	}
	if was, now := fl.spec.Paused(), f.Paused(); was != now {
		if now {
			r.fan.Remove(r.fq)
		} else {
			r.fan.Add(r.fq)
		}
	}
	keepSpec(fl, f)
	return nil
}

func (r *memifSink) stats(_ *Local, fl *flow) FlowStats {
	var st FlowStats
	if r.fq != nil {
		// one interface's counters, shared by the stream's tracks on it: frames, not packets
		fs := r.frames.Stats()
		st = FlowStats{Packets: fs.Frames, Bytes: fs.Bytes, Dropped: fs.Dropped}
	} else {
		ss := r.ts.Stats()
		st = FlowStats{Packets: ss.Packets, Bytes: ss.Bytes, Dropped: ss.Dropped, Errors: ss.Errors}
	}
	fl.lastActivity(&st)
	return st
}

func (r *memifSink) stop(n *Local, fl *flow) func() {
	if r.fq == nil {
		return n.stopSinkLocked(fl)
	}
	r.fan.Remove(r.fq)
	orphan := n.dropOrphanLocked(fl.stream)
	return func() {
		r.fq.Close()
		orphan()
	}
}
