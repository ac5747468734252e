package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtsp/demo"
)

// demoSource runs a SourceDemo flow: the embedded clip, played into the stream's input.
type demoSource struct {
	player *demo.Player
}

func (r *demoSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		clip, err := n.demoClip()
		if err != nil {
			return nil, fmt.Errorf("demo clip: %w", err)
		}
		// Start announces the clip (streamInput.OnReady lays the hubs out), then plays
		r.player = demo.NewPlayer(clip, n.newStreamInput(fl), n.log.With("stream", fl.spec.Stream))
		return r.player.Start, nil
	})
}

func (r *demoSource) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

func (r *demoSource) stats(_ *Local, fl *flow, st *FlowStats) { fl.counts(st) }

func (r *demoSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), r.player.Close)
}
