package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtp/memifrtp"
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
		tracks, _, err := sdp.ParseSource([]byte(sp.SDP))
		if err != nil {
			return nil, fmt.Errorf("memif source SDP: %w", err)
		}
		r.in = memifrtp.NewIn(ep, []byte(sp.SDP), tracks, n.newStreamInput(fl, sp.Pacing, false),
			n.log.With("stream", fl.spec.Stream, "memif", sp.Interface))
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
