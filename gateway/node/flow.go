// Package node is meshgw's per-host forwarder as the control sees it: flows (sources, sinks,
// ingress bindings) created, updated and deleted by the control, carried out by the data plane of
// package rtp. Local is the in-process implementation; a remote node speaks the same flows over the
// control↔node API.
package node

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// FlowKind says what a flow is.
type FlowKind string

// The kinds of flow a node carries.
const (
	// SourceDemo plays the embedded demo clip into the stream's hubs.
	SourceDemo FlowKind = "source.demo"
	// SourcePull pulls the stream from an upstream RTSP server or camera.
	SourcePull FlowKind = "source.pull"
	// SourcePublisher creates the stream's hubs for a publisher whose packets arrive through
	// IngressUDP flows or interleaved on the control's connection.
	SourcePublisher FlowKind = "source.publisher"
	// SinkUDP sends one track to one UDP reader.
	SinkUDP FlowKind = "sink.udp"
	// SinkMulticast sends one track to a multicast group.
	SinkMulticast FlowKind = "sink.multicast"
	// IngressUDP binds a publisher's UDP address to one track of the stream.
	IngressUDP FlowKind = "ingress.udp"
	// SourceRelay feeds the stream from another node's relay (placeholder for the relay work
	// landing in parallel; declared here so the control↔node API can carry it).
	SourceRelay FlowKind = "source.relay"
)

// Flow is the unit of steering. Applying the same flow twice is harmless; applying a flow with an
// existing ID updates it (only Paused may change on sinks, the rest is fixed at creation).
type Flow struct {
	ID      string
	Version uint64
	Kind    FlowKind
	// Stream names the stream the flow belongs to (the control's stream ID).
	Stream string
	// Track is the track index for sinks and ingress.
	Track int

	// Sources.
	URL          string
	Transport    string // pull: auto|udp|tcp
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	Tracks       []rtp.Track // publisher: the announced tracks
	// Pacing spaces the stream's output to UDP readers at this multiple of
	// its average rate (rtp.HubConfig.Pacing); 0 is off.
	Pacing float64

	// Sinks and ingress: the reader's destination, or the publisher's source address.
	RTP, RTCP netip.AddrPort
	// Paused sinks exist (ports answered in SETUP) but send nothing until PLAY.
	Paused bool

	// SSRCs of the stream's tracks, when the control fixes them (relays keep one line per track
	// across nodes).
	SSRCs []uint32
	// Meta is free-form labels the control attaches to a flow; the node keeps and reports them.
	Meta map[string]string
}

// Validate checks a flow before it reaches the data plane, so a bad command gets a precise error.
func (f Flow) Validate() error {
	if f.ID == "" {
		return fmt.Errorf("flow has no ID")
	}
	if f.Stream == "" {
		return fmt.Errorf("flow %s: no stream", f.ID)
	}
	switch f.Kind {
	case SourceDemo:
	case SourcePull:
		if f.URL == "" {
			return fmt.Errorf("flow %s: pull source without URL", f.ID)
		}
	case SourcePublisher:
		if len(f.Tracks) == 0 {
			return fmt.Errorf("flow %s: publisher source without tracks", f.ID)
		}
	case SinkUDP, SinkMulticast, IngressUDP:
		if f.Track < 0 {
			return fmt.Errorf("flow %s: negative track", f.ID)
		}
		if !f.RTP.IsValid() || !f.RTCP.IsValid() {
			return fmt.Errorf("flow %s: %s needs RTP and RTCP addresses", f.ID, f.Kind)
		}
	default:
		return fmt.Errorf("flow %s: unknown kind %q", f.ID, f.Kind)
	}
	return nil
}

// FlowStatus is a node's answer to an applied flow.
type FlowStatus struct {
	// Source is the node's data address (for source= in SETUP); invalid when the node listens on
	// every address and the control should use the address the client reached.
	Source   netip.Addr
	RTPPort  int
	RTCPPort int
	// SSRC of the track the sink sends.
	SSRC uint32
	// NextSeq/NextTS: where the track's line continues (for RTP-Info), valid when PosOK.
	NextSeq uint16
	NextTS  uint32
	PosOK   bool
}

// FlowStats is what a node knows of a flow's traffic.
type FlowStats struct {
	Packets, Bytes, Dropped, Errors uint64
	// LastActivity is the last packet from the peer: RTCP from a reader, media from a publisher.
	LastActivity time.Time
}

// Events are what a node reports to its control about the streams it ingests.
type Events interface {
	// SourceReady: a source flow's stream is live with this description (on each (re)connect).
	// Replaced means the track layout changed, so readers of the old layout must be ended.
	SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool)
	// SourceDown: a source lost its upstream (it keeps retrying on its own).
	SourceDown(stream string, err error)
}

// Node is the data plane the control steers.
type Node interface {
	Name() string
	Apply(ctx context.Context, f Flow) (FlowStatus, error)
	Delete(ctx context.Context, id string) error
	Stats(id string) (FlowStats, error)
}
