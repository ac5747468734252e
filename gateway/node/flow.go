// Package node is meshgw's per-host forwarder as the control sees it: flows (sources, sinks,
// ingress bindings) created, updated and deleted by the control, carried out by the data plane of
// package rtp. Local is the in-process implementation; a remote node speaks the same flows over the
// control↔node API.
package node

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/srtp"
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
	// SourceRTP receives plain RTP over UDP (URL rtp://HOST:PORT), optionally with SMPTE 2022-1
	// FEC and as two 2022-7 legs; see source_rtp.go.
	SourceRTP FlowKind = "source.rtp"
	// SourceRelay takes a stream another node relays to this one over RTP/UDP (the upstream node
	// runs a SinkUDP per track to this node's pair). Its hubs are transparent: they output the
	// upstream hubs' SSRC/seq/timestamp line unchanged, so a reader moved between nodes stays on
	// one line.
	SourceRelay FlowKind = "source.relay"
	// SinkUDP sends one track to one UDP reader.
	SinkUDP FlowKind = "sink.udp"
	// SinkMulticast sends one track to a multicast group.
	SinkMulticast FlowKind = "sink.multicast"
	// IngressUDP binds a publisher's UDP address to one track of the stream.
	IngressUDP FlowKind = "ingress.udp"
	// SinkRTP sends one track to a plain RTP/UDP output (RTP to Flow.RTP, sender reports to
	// Flow.RTCP), optionally with SMPTE 2022-1 FEC and a second 2022-7 leg (Flow.Output).
	SinkRTP FlowKind = "sink.rtp"
)

// Flow is the unit of steering. Applying the same flow twice is harmless; applying a flow with an
// existing ID updates it (only Paused may change on sinks, the rest is fixed at creation; a relay
// source may change its upstream: RTP, RTCP and SSRCs).
type Flow struct {
	ID string
	// Version orders the commands for one flow ID, so that a retried or late command cannot undo
	// a newer one. Applying an existing ID with a Version at or below the one the node holds is a
	// duplicate: the node changes nothing and answers with the flow's current status. Version 0
	// opts out: such a command is always applied.
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
	Tracks       []rtp.Track // publisher: the announced tracks; relay: the upstream's layout
	// TLSCA is a pull source's PEM CA (or self-signed certificate) for rtsps://, instead of
	// the system roots.
	TLSCA []byte
	// SSRCs are a relay's per-track upstream SSRCs (those of the upstream node's hubs). They tell
	// apart the streams that arrive from one upstream address and become this node's hub SSRCs.
	SSRCs []uint32
	// Pacing spaces the stream's output to UDP readers at this multiple of
	// its average rate (rtp.HubConfig.Pacing); 0 is off.
	Pacing float64
	// Continue, on a source that takes over a stream whose ingest node died, is where that
	// node's hubs' lines stood (FlowStats.Lines of the old source), one per track: new hubs
	// continue them (rtp.HubConfig.Continue), so readers moved here keep their SSRC and see their
	// line go on forward.
	Continue []rtp.LinePos

	// Sinks and ingress: the reader's destination, or the publisher's source address. Relay: the
	// upstream node's pair addresses the packets come from.
	RTP, RTCP netip.AddrPort
	// Paused sinks exist (ports answered in SETUP) but send nothing until PLAY.
	Paused bool
	// SRTPKey, when set, is the AES_CM_128_HMAC_SHA1_80 master key and salt (30 bytes) a
	// UDP sink protects its reader's packets with, or an ingress unprotects its publisher's
	// with; a relay's sinks and its relay source share one, so node-to-node links carry SRTP.
	// The control draws reader keys and hands them over its mTLS channel, so a remote node can
	// serve an SRTP reader. Never logged: Flow's String and GoString redact it.
	SRTPKey []byte
	// SRTPROCs are the rollover counters an SRTP publisher announced per SSRC (MIKEY).
	SRTPROCs map[uint32]uint32
	// SRTPResume, on an SRTP reader's SinkUDP that takes over from another node (the reader
	// moved), is where that node's sender stood (its FlowStats.SRTP): the sink goes on from it,
	// so the player's SRTP context follows and no packet index serves twice under its key.
	SRTPResume *srtp.SendState

	// Backup, on a demo or pull source, is a second source (kind SourcePull or
	// SourceDemo with its own URL, Transport, Reconnect*; ID and Stream are
	// the parent's) that runs hot next to this one behind a selector (see
	// rtp/backup): switched to when this source stalls for BackupStall (0:
	// DefaultBackupStall), or merged with it as a 2022-7 leg, by BackupMode
	// (BackupAuto, BackupMerge, BackupSwitch; "" is BackupAuto).
	Backup      *Flow
	BackupStall time.Duration
	BackupMode  string
	// Output configures a SinkRTP beyond its destination.
	Output OutputSpec
	// NACK turns on loss repair on a relay link (PROTOCOLS.md §7.4). On a relay's SinkUDP the
	// node keeps a history of the packets it sent and retransmits those the far node asks for; on
	// a SourceRelay the node asks for missing packets with RTCP NACKs to the upstream's RTCP
	// address and holds later packets for up to NACKWait so its hubs see the line in order.
	NACK bool
	// NACKWait bounds how long a SourceRelay with NACK waits for a missing packet (0: 200 ms).
	NACKWait time.Duration
	// SMPTE 2022-7 on a relay link: the link runs twice, over the nodes' first and second
	// networks. SecondPair makes a relay's SinkUDP send from the node's live-live socket pair
	// (LocalConfig.LiveLive) instead of its first. On a SourceRelay, RTP2 and RTCP2 are the
	// upstream's live-live pair addresses the second leg comes from; the legs are merged by
	// sequence number within Skew (0: merge.ClassB) before loss repair and the hubs.
	SecondPair  bool
	RTP2, RTCP2 netip.AddrPort
	// SourceRTP: SDP is the stream's description (empty: one MPEG-TS track, PT 33); RTPInterface
	// the interface multicast groups are joined on; FECColumns/FECRows the SMPTE 2022-1 L and D
	// (decoding is on when FECColumns > 0; FECRows 0 is column FEC only); Leg2 the 2022-7 second
	// leg rtp://HOST2:PORT2 (empty: one leg) and Skew its merge window.
	SDP                 string
	RTPInterface        string
	FECColumns, FECRows int
	Leg2                string
	Skew                time.Duration

	// Meta holds the control's labels (route path, RTSP session, role). The node does not read
	// them; it keeps them with the flow and returns them from Flows, so a restarted control can
	// rebuild its view from the nodes.
	Meta map[string]string
}

// clone copies f deeply: a node keeps flows beyond the call that brought them and hands them out
// again, and neither side may see the other's later changes.
func (f Flow) clone() Flow {
	f.Tracks = slices.Clone(f.Tracks)
	f.SSRCs = slices.Clone(f.SSRCs)
	f.Meta = maps.Clone(f.Meta)
	if f.Backup != nil {
		b := f.Backup.clone()
		f.Backup = &b
	}
	f.SRTPKey = slices.Clone(f.SRTPKey)
	f.TLSCA = slices.Clone(f.TLSCA)
	f.SRTPROCs = maps.Clone(f.SRTPROCs)
	f.Continue = slices.Clone(f.Continue)
	if f.SRTPResume != nil {
		r := *f.SRTPResume
		f.SRTPResume = &r
	}
	return f
}

// String describes the flow for logs with its key redacted.
func (f Flow) String() string {
	key := ""
	if len(f.SRTPKey) > 0 {
		key = " (SRTP key redacted)"
		f.SRTPKey = nil
	}
	type plain Flow // no String method: no recursion
	return fmt.Sprintf("%+v%s", plain(f), key)
}

// GoString is String, so %#v redacts too.
func (f Flow) GoString() string { return f.String() }

// Validate checks a flow before it reaches the data plane, so a bad command gets a precise error.
func (f Flow) Validate() error {
	if f.ID == "" {
		return fmt.Errorf("flow has no ID")
	}
	if f.Stream == "" {
		return fmt.Errorf("flow %s: no stream", f.ID)
	}
	if len(f.SRTPKey) != 0 && len(f.SRTPKey) != srtp.KeyLen {
		return fmt.Errorf("flow %s: SRTP key of %d bytes, want %d", f.ID, len(f.SRTPKey), srtp.KeyLen)
	}
	switch f.Kind {
	case SourceDemo:
	case SourcePull:
		if f.URL == "" {
			return fmt.Errorf("flow %s: pull source without URL", f.ID)
		}
		if len(f.TLSCA) > 0 && !x509.NewCertPool().AppendCertsFromPEM(f.TLSCA) {
			return fmt.Errorf("flow %s: TLS CA holds no PEM certificate", f.ID)
		}
	case SourceRTP:
		if _, err := rtpSourceConfig(f); err != nil {
			return fmt.Errorf("flow %s: rtp source: %w", f.ID, err)
		}
	case SourcePublisher:
		if len(f.Tracks) == 0 {
			return fmt.Errorf("flow %s: publisher source without tracks", f.ID)
		}
	case SourceRelay:
		if len(f.Tracks) == 0 {
			return fmt.Errorf("flow %s: relay source without tracks", f.ID)
		}
		if len(f.SSRCs) != len(f.Tracks) {
			return fmt.Errorf("flow %s: relay source has %d SSRCs for %d tracks", f.ID, len(f.SSRCs), len(f.Tracks))
		}
		for i, ssrc := range f.SSRCs {
			if ssrc == 0 {
				return fmt.Errorf("flow %s: relay source track %d has no SSRC", f.ID, i)
			}
			for j := range i {
				if f.SSRCs[j] == ssrc {
					return fmt.Errorf("flow %s: relay source tracks %d and %d share SSRC %08x", f.ID, j, i, ssrc)
				}
			}
		}
		if !f.RTP.IsValid() || !f.RTCP.IsValid() {
			return fmt.Errorf("flow %s: relay source needs the upstream RTP and RTCP addresses", f.ID)
		}
		if len(f.SRTPKey) != 0 && len(f.SRTPKey) != srtp.KeyLen {
			return fmt.Errorf("flow %s: relay SRTP key of %d bytes, want %d", f.ID, len(f.SRTPKey), srtp.KeyLen)
		}
		if f.RTP2.IsValid() != f.RTCP2.IsValid() {
			return fmt.Errorf("flow %s: a relay's second leg needs both the upstream's RTP and RTCP addresses", f.ID)
		}
		if f.Skew < 0 || f.Skew > maxRelaySkew {
			return fmt.Errorf("flow %s: relay skew %v, want 0..%v", f.ID, f.Skew, maxRelaySkew)
		}
	case SinkRTP:
		if err := f.Output.validate(f); err != nil {
			return fmt.Errorf("flow %s: %w", f.ID, err)
		}
	case SinkUDP, SinkMulticast, IngressUDP:
		if len(f.SRTPKey) != 0 && (len(f.SRTPKey) != srtp.KeyLen || f.Kind == SinkMulticast) {
			return fmt.Errorf("flow %s: SRTP key of %d bytes on %s (want %d bytes, on sink.udp or ingress.udp)", f.ID, len(f.SRTPKey), f.Kind, srtp.KeyLen)
		}
		if f.Track < 0 {
			return fmt.Errorf("flow %s: negative track", f.ID)
		}
		if !f.RTP.IsValid() || !f.RTCP.IsValid() {
			return fmt.Errorf("flow %s: %s needs RTP and RTCP addresses", f.ID, f.Kind)
		}
		if f.SecondPair && f.Kind != SinkUDP {
			return fmt.Errorf("flow %s: only a sink.udp sends from the second pair", f.ID)
		}
		if f.SRTPResume != nil && (f.Kind != SinkUDP || len(f.SRTPKey) == 0) {
			return fmt.Errorf("flow %s: an SRTP sender state to resume needs an SRTP sink.udp", f.ID)
		}
	default:
		return fmt.Errorf("flow %s: unknown kind %q", f.ID, f.Kind)
	}
	return f.validateBackup()
}

// FlowStatus is a node's answer to an applied flow.
type FlowStatus struct {
	// Source is the node's data address (for source= in SETUP, and where an upstream node sends a
	// relay): LocalConfig.Advertise when set, else the pair's bound address; invalid when the node
	// listens on every address and the control should use the address the client reached.
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
//
// For a SinkRTP, Packets and Bytes are the media packets sent (over both legs), FEC the 2022-1
// FEC packets sent, Errors the send errors plus packets the FEC encoder refused.
//
// For a relay source, Packets and Bytes are the RTP packets taken into its hubs, Dropped the
// datagrams from its upstream addresses that no relay of the node expects (shared by the relays
// from those addresses), Errors the packets its hubs rejected as malformed.
// For an ingress or a pull source, Errors are the packets refused before the hub: SRTP that
// failed authentication or the replay check, and replays from an rtsps:// pull.
type FlowStats struct {
	Packets, Bytes, Dropped, Errors uint64
	// FEC counts FEC packets sent by a SinkRTP.
	FEC uint64
	// LastActivity is the last packet from the peer: RTCP from a reader, media from a publisher,
	// RTP or RTCP from a relay's upstream node.
	LastActivity time.Time
	// Backup is the selector of a source flow with a backup (zero Mode
	// otherwise); Packets then counts the packets it put into the hubs.
	Backup BackupStats
	// RTPSource holds a SourceRTP flow's receive counters (FEC, 2022-7 legs); nil for others.
	RTPSource *rtp.RTPSourceStats
	// RelayLegs holds a two-leg SourceRelay's 2022-7 merge counters, summed over its tracks;
	// nil for others.
	RelayLegs *merge.Stats
	// Lines are where a source's hubs' output lines stand, one per track (for Flow.Continue);
	// nil for other flows and before the first packet.
	Lines []rtp.LinePos
	// SRTP is where an SRTP reader's sink stands as a sender (for Flow.SRTPResume); nil for
	// other flows and before the first packet.
	SRTP *srtp.SendState
	// Reception is what the reader of a plain UDP sink said about its line in its RTCP receiver
	// reports (loss, jitter, round trip); nil before its first report.
	Reception *rtp.ReceptionStats
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
