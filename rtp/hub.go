package rtp

import (
	"errors"
	"log/slog"
)

// Track describes one RTP media of a stream.
type Track struct {
	Media       string // "video", "audio", "application"
	PayloadType uint8
	ClockRate   uint32
}

// HubConfig configures a Hub.
type HubConfig struct {
	Track  Track
	Pool   *Pool
	Logger *slog.Logger
}

// HubStats are a hub's counters since it was created.
type HubStats struct{ PacketsIn, BytesIn, PacketsOut, Invalid, Epochs uint64 }

// SinkStats are a sink's counters since it was created.
type SinkStats struct{ Packets, Bytes, Dropped, Errors uint64 }

// Sink receives packets from hubs. Deliver must never block: a full sink
// drops and counts.
type Sink interface {
	// DeliverRTP hands over one reference to p; the sink must eventually
	// Release it exactly once (also when it drops it).
	DeliverRTP(p *Packet)
	// DeliverRTCP hands over hub-generated RTCP (sender reports) for this
	// sink's track; same ownership rule as DeliverRTP.
	DeliverRTCP(p *Packet)
}

// Hub fans one track's packets from its one active source out to its sinks.
type Hub struct {
	cfg HubConfig
}

// NewHub returns a hub for one track.
func NewHub(cfg HubConfig) *Hub { return &Hub{cfg: cfg} }

// WriteRTP takes one RTP packet from the source.
func (h *Hub) WriteRTP(b []byte) error { return errors.ErrUnsupported }

// WriteRTCP takes RTCP from the source.
func (h *Hub) WriteRTCP(b []byte) error { return errors.ErrUnsupported }

// SourceRestarted marks the start of a new source epoch.
func (h *Hub) SourceRestarted() {}

// AddSink adds s.
func (h *Hub) AddSink(s Sink) {}

// RemoveSink removes s.
func (h *Hub) RemoveSink(s Sink) {}

// SSRC returns the output SSRC.
func (h *Hub) SSRC() uint32 { return 0 }

// NextSeqTS reports what the next packet out will carry.
func (h *Hub) NextSeqTS() (seq uint16, ts uint32, ok bool) { return 0, 0, false }

// Track returns the hub's track.
func (h *Hub) Track() Track { return h.cfg.Track }

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats { return HubStats{} }

// Close stops the hub.
func (h *Hub) Close() {}
