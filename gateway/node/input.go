package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// streamInput is how a source flow's packets reach its stream's hubs: the one rtp.SourceHandler
// of the node, driven alike by the demo player, the pull client and the rtp:// receiver. OnReady
// lays the stream's hubs out and reports the stream live; WriteRTP and WriteRTCP hand a track's
// packets to its live hub and count them on the flow. (A backed-up source's legs are
// backup.Legs, which write into the same hubs through the selector; relays and UDP publishers
// arrive through the node's peers, which hold their hubs directly.)
type streamInput struct {
	n      *Local
	s      *nodeStream
	f      *flow
	pacing float64 // of the hubs OnReady lays out
	// replays: the source is an rtsps:// pull (see replay)
	replays bool
	// replay drops replayed packets per track of an rtsps:// pull: the pull client
	// authenticates and decrypts SRTP but keeps no replay window. Rebuilt at every
	// (re)connect, as a camera may restart its sequence numbers.
	replay atomic.Pointer[[]*pullReplay]
}

// pullReplay is one track's replay filter; the pull client may call from a goroutine per track.
type pullReplay struct {
	mu sync.Mutex
	f  *srtp.ReplayFilter
}

// newStreamInput is source flow fl's input; its hubs are paced at pacing, and replays turns the
// replay check of an rtsps:// pull on.
func (n *Local) newStreamInput(fl *flow, pacing float64, replays bool) *streamInput {
	return &streamInput{n: n, s: fl.stream, f: fl, pacing: pacing, replays: replays}
}

func (in *streamInput) OnReady(sdp []byte, tracks []rtp.Track) error {
	in.n.mu.Lock()
	if in.n.flows[in.f.spec.ID] != in.f {
		in.n.mu.Unlock()
		return errors.New("flow deleted")
	}
	replaced := in.n.setHubsLocked(in.s, tracks, in.pacing, nil)
	in.n.mu.Unlock()
	if in.replays {
		rs := make([]*pullReplay, len(tracks))
		for i := range rs {
			rs[i] = &pullReplay{f: srtp.NewReplayFilter()}
		}
		in.replay.Store(&rs)
	}
	in.f.last.Store(time.Now().UnixNano())
	if in.n.events != nil {
		in.n.events.SourceReady(in.s.id, sdp, tracks, replaced)
	}
	return nil
}

func (in *streamInput) WriteRTP(track int, pkt []byte) {
	if rs := in.replay.Load(); rs != nil && track >= 0 && track < len(*rs) {
		r := (*rs)[track]
		r.mu.Lock()
		fresh := r.f.Fresh(pkt)
		r.mu.Unlock()
		if !fresh {
			in.f.errs.Add(1)
			return
		}
	}
	if hub := in.s.liveHub(track); hub != nil {
		in.f.pkts.Add(1)
		in.f.bytes.Add(uint64(len(pkt)))
		_ = hub.WriteRTP(pkt) // invalid packets are counted by the hub
	}
}

func (in *streamInput) WriteRTCP(track int, pkt []byte) {
	if hub := in.s.liveHub(track); hub != nil {
		_ = hub.WriteRTCP(pkt)
	}
}

func (in *streamInput) OnDisconnect(err error) {
	if in.n.events != nil {
		in.n.events.SourceDown(in.s.id, err)
	}
}
