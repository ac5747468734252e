package node

import (
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/memifrtp"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// SinkMemif sends one track to the memif consumer of one of the node's memif interfaces
// (rtp/memifrtp, the packets form); every track of a stream goes to the same interface.
const SinkMemif FlowKind = "sink.memif"

// MemifSink sends one track to memif interface Interface of the node's memif master
// (LocalConfig.Memif), which must be a consumer interface.
type MemifSink struct {
	Track     int
	Interface uint32
	Paused    bool
}

// Kind implements Spec.
func (MemifSink) Kind() FlowKind { return SinkMemif }

func (s MemifSink) clone() Spec            { return s }
func (s MemifSink) track() int             { return s.Track }
func (s MemifSink) paused() bool           { return s.Paused }
func (s MemifSink) withPaused(p bool) Spec { s.Paused = p; return s }

func (s MemifSink) validate(id string) error {
	if s.Track < 0 || s.Track > 255 {
		return fmt.Errorf("flow %s: memif track %d outside 0..255", id, s.Track)
	}
	return nil
}

// MemifConfig is the node's memif master: where it listens and its interfaces.
type MemifConfig struct {
	// Socket is a path or "@name" (abstract).
	Socket string
	// Mode is a path socket's file mode (0: 0660).
	Mode fs.FileMode
	// Interfaces are the ids peers may connect to.
	Interfaces []MemifInterface
}

// MemifInterface is one memif interface id of the node.
type MemifInterface struct {
	ID     uint32
	Secret string
	// Consumer: peers on this id take a stream's packets (MemifSink flows); otherwise they
	// produce one (a memif:// source).
	Consumer bool
	// Frames: a consumer of whole reassembled video frames (memifrtp.FrameOut, the frames form)
	// instead of packets, its MemifSink flows attached to the stream's ST 2110 reassemblers; or
	// a producer of whole raw frames that the MemifSource cuts into RFC 4175 packets (its SDP
	// is then an ST 2110 one).
	Frames bool
}

// memifNode is the node's memif master with one Out per consumer interface, which lives as
// long as the node: consumers connect whenever they like and MemifSink flows hang its tracks
// on hubs as streams come and go.
type memifNode struct {
	m         *memif.Master
	outs      map[uint32]*memifrtp.Out
	frameOuts map[uint32]*memifrtp.FrameOut
	producers map[uint32]*memif.Endpoint
	// frameProducers are the producer interfaces that write the frames form.
	frameProducers map[uint32]bool
	eps            []*memif.Endpoint

	fanMu sync.Mutex
	fans  map[fanKey]*memifrtp.FrameFanout
}

// fanKey names one track of one stream: where an ST 2110 source's reassembler and the frames
// consumers of that stream meet, whichever of them starts first.
type fanKey struct {
	stream string
	track  int
}

func openMemif(cfg *MemifConfig, name string, log *slog.Logger) (*memifNode, error) {
	m, err := memif.Listen(memif.Config{Socket: cfg.Socket, Mode: cfg.Mode, Name: "meshgw " + name, Log: log})
	if err != nil {
		return nil, err
	}
	mn := &memifNode{m: m, outs: map[uint32]*memifrtp.Out{}, frameOuts: map[uint32]*memifrtp.FrameOut{},
		producers: map[uint32]*memif.Endpoint{}, frameProducers: map[uint32]bool{}, fans: map[fanKey]*memifrtp.FrameFanout{}}
	for _, it := range cfg.Interfaces {
		ep, err := m.Add(it.ID, it.Secret)
		if err != nil {
			mn.close()
			return nil, err
		}
		mn.eps = append(mn.eps, ep)
		switch {
		case it.Consumer && it.Frames:
			mn.frameOuts[it.ID] = memifrtp.NewFrameOut(ep, log.With("memif", it.ID))
		case it.Consumer:
			mn.outs[it.ID] = memifrtp.NewOut(ep, 0, log.With("memif", it.ID))
		default:
			mn.producers[it.ID] = ep
			mn.frameProducers[it.ID] = it.Frames
		}
	}
	log.Info("memif master listening", "socket", cfg.Socket, "interfaces", len(cfg.Interfaces))
	return mn, nil
}

func (mn *memifNode) close() {
	for _, o := range mn.outs {
		o.Close()
	}
	for _, o := range mn.frameOuts {
		o.Close()
	}
	for _, ep := range mn.eps {
		ep.Close()
	}
	mn.m.Close()
}

// memifOut is consumer interface id's Out.
func (n *Local) memifOut(id uint32) (*memifrtp.Out, error) {
	if n.memif == nil {
		return nil, fmt.Errorf("node %s has no memif master (node.memif): %w", n.name, ErrNotFound)
	}
	o := n.memif.outs[id]
	if o == nil {
		return nil, fmt.Errorf("node %s has no memif consumer interface %d: %w", n.name, id, ErrNotFound)
	}
	return o, nil
}

// memifFrameOut is frames consumer interface id's FrameOut, nil if id is another kind.
func (n *Local) memifFrameOut(id uint32) *memifrtp.FrameOut {
	if n.memif == nil {
		return nil
	}
	return n.memif.frameOuts[id]
}

// memifFanout is the frame fan-out of a stream's track, made on first use; nil when the node
// has no frames consumer interface (the reassembler then only counts).
func (n *Local) memifFanout(stream string, track int) *memifrtp.FrameFanout {
	if n.memif == nil || len(n.memif.frameOuts) == 0 {
		return nil
	}
	mn := n.memif
	mn.fanMu.Lock()
	defer mn.fanMu.Unlock()
	k := fanKey{stream, track}
	ff := mn.fans[k]
	if ff == nil {
		ff = &memifrtp.FrameFanout{}
		mn.fans[k] = ff
	}
	return ff
}

// SourceMemif takes a stream from the memif producer of one of the node's memif interfaces
// (rtp/memifrtp, the packets form), its description from configuration.
const SourceMemif FlowKind = "source.memif"

// MemifSource takes a stream from memif interface Interface of the node's memif master, which
// must be a producer interface; SDP describes the stream (the producer sends only packets).
type MemifSource struct {
	Interface uint32
	SDP       string
	Hubs
}

// Kind implements Spec.
func (MemifSource) Kind() FlowKind { return SourceMemif }

func (s MemifSource) clone() Spec {
	s.Hubs = s.Hubs.clone()
	return s
}
func (s MemifSource) hubs() Hubs { return s.Hubs }
func (s MemifSource) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}

func (s MemifSource) validate(id string) error {
	if _, _, err := sdp.ParseSource([]byte(s.SDP)); err != nil {
		return fmt.Errorf("flow %s: memif source SDP: %w", id, err)
	}
	return nil
}

// memifProducer is producer interface id's endpoint.
func (n *Local) memifProducer(id uint32) (*memif.Endpoint, error) {
	if n.memif == nil {
		return nil, fmt.Errorf("node %s has no memif master (node.memif): %w", n.name, ErrNotFound)
	}
	ep := n.memif.producers[id]
	if ep == nil {
		return nil, fmt.Errorf("node %s has no memif producer interface %d: %w", n.name, id, ErrNotFound)
	}
	return ep, nil
}
