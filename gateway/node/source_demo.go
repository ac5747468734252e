package node

import (
	"fmt"

	"github.com/meshgw/meshgw/rtsp/demo"
)

// demoSource runs a SourceDemo flow: the embedded clip, played into the stream's input.
type demoSource struct {
	clientSource
}

func (r *demoSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		clip, err := n.demoClip()
		if err != nil {
			return nil, fmt.Errorf("demo clip: %w", err)
		}
		// Start announces the clip (streamInput.OnReady lays the hubs out), then plays
		player := demo.NewPlayer(clip, n.newStreamInput(fl, fl.spec.Spec.(DemoSource).Pacing, false), n.log.With("stream", fl.spec.Stream))
		r.close = player.Close
		return player.Start, nil
	})
}
