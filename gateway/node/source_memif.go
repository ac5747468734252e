package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/memifrtp"
	"github.com/meshgw/meshgw/rtp/st2110"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// memifSource runs a SourceMemif flow: a memif producer interface's packets into the stream's
// input, like an rtp:// source's. The interface's endpoint belongs to the node; the flow owns
// the In reading it.
type memifSource struct {
	in *memifrtp.In
}

func (r *memifSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		sp := fl.spec.Spec.(MemifSource)
		ep, err := n.memifProducer(sp.Interface)
		if err != nil {
			return nil, err
		}
		log := n.log.With("stream", fl.spec.Stream, "memif", sp.Interface)
		if n.memif.frameProducers[sp.Interface] {
			// whole raw frames: the SDP is an ST 2110 one, readers get its ReaderSDP
			sess, err := st2110.ParseSDP([]byte(sp.SDP))
			if err != nil {
				return nil, fmt.Errorf("memif frames source SDP: %w", err)
			}
			tracks := make([]rtp.Track, len(sess.Essences))
			videos := make([]*st2110.Video, len(sess.Essences))
			for i, e := range sess.Essences {
				tracks[i] = rtp.Track{Media: e.Media, PayloadType: e.PayloadType, ClockRate: e.ClockRate}
				if e.Kind == st2110.KindVideo {
					videos[i] = e.Video
				}
			}
			r.in, err = memifrtp.NewFrameIn(ep, sess.ReaderSDP(), tracks, videos, n.newStreamInput(fl, sp.Pacing, false), log)
			return nil, err
		}
		tracks, _, err := sdp.ParseSource([]byte(sp.SDP))
		if err != nil {
			return nil, fmt.Errorf("memif source SDP: %w", err)
		}
		r.in = memifrtp.NewIn(ep, []byte(sp.SDP), tracks, n.newStreamInput(fl, sp.Pacing, false),
			log)
		return nil, nil
	})
}

func (r *memifSource) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

// stats: Packets and Bytes are what producers wrote, Errors the buffers that were not packets
// of the stream.
func (r *memifSource) stats(_ *Local, _ *flow) FlowStats {
	s := r.in.Stats()
	return FlowStats{Packets: s.Packets, Bytes: s.Bytes, Errors: s.Invalid, LastActivity: s.LastPacket}
}

func (r *memifSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), func() { r.in.Close() })
}
