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
	"github.com/meshgw/meshgw/rtp/st2110"
	"github.com/meshgw/meshgw/rtp/st2110out"
)

// FlowKind names what a flow is (Flow.Kind, Spec.Kind): for logs, metrics and errors; the
// behaviour follows the Spec's type.
type FlowKind string

// The kinds of flow a node carries, one per Spec type.
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
	// SinkRTP sends one track to a plain RTP/UDP output, optionally with SMPTE 2022-1 FEC and a
	// second 2022-7 leg.
	SinkRTP FlowKind = "sink.rtp"
	// SourceST2110 receives an SMPTE ST 2110 flow set described by an SDP file (video, audio,
	// ANC, JPEG XS), on one leg or two (2022-7), and reassembles its video frames.
	SourceST2110 FlowKind = "source.st2110"
	// SinkST2110 re-sends one raw video track as a paced ST 2110-20 flow.
	SinkST2110 FlowKind = "sink.st2110"
)

// Flow is the unit of steering: a common header and one kind's Spec. Applying the same flow
// twice is harmless; applying a flow with an existing ID updates it (only Paused may change on
// sinks, the rest is fixed at creation; a relay source may change its upstream: RTP, RTCP and
// SSRCs).
type Flow struct {
	ID string
	// Version orders the commands for one flow ID, so that a retried or late command cannot undo
	// a newer one. Applying an existing ID with a Version at or below the one the node holds is a
	// duplicate: the node changes nothing and answers with the flow's current status. Version 0
	// opts out: such a command is always applied.
	Version uint64
	// Stream names the stream the flow belongs to (the control's stream ID).
	Stream string
	// Spec is what the flow is: exactly one of DemoSource, PullSource, PublisherSource,
	// RTPSource, RelaySource, UDPSink, MulticastSink, UDPIngress or RTPSink (values, not
	// pointers, so copies of a Flow never share a spec).
	Spec Spec
	// Meta holds the control's labels (route path, RTSP session, role). The node does not read
	// them; it keeps them with the flow and returns them from Flows, so a restarted control can
	// rebuild its view from the nodes.
	Meta map[string]string
}

// Spec is one kind of flow's own settings (Flow.Spec). Adding a kind is one Spec type, one
// runner (runner.go), one protobuf message in the Flow's oneof and its conversion
// (gateway/cluster).
type Spec interface {
	// Kind names the spec's kind, for logs and metrics.
	Kind() FlowKind
	// validate checks the spec's own fields; id names the flow in errors.
	validate(id string) error
	// clone copies the spec deeply.
	clone() Spec
}

// Kind is the kind of the flow's spec ("" without one).
func (f Flow) Kind() FlowKind {
	if f.Spec == nil {
		return ""
	}
	return f.Spec.Kind()
}

// Track is the track index of a sink or ingress flow (0 for sources).
func (f Flow) Track() int {
	if t, ok := f.Spec.(interface{ track() int }); ok {
		return t.track()
	}
	return 0
}

// Backup is a demo, pull or rtp:// source's backup (nil for others and without one).
func (f Flow) Backup() *Backup {
	if b, ok := f.Spec.(backedUp); ok {
		return b.backup()
	}
	return nil
}

// Paused tells a sink flow that sends nothing until PLAY (false for others).
func (f Flow) Paused() bool {
	if p, ok := f.Spec.(pausable); ok {
		return p.paused()
	}
	return false
}

// WithPaused returns f with its sink paused or not (f unchanged if it is no sink).
func (f Flow) WithPaused(paused bool) Flow {
	if p, ok := f.Spec.(pausable); ok {
		f.Spec = p.withPaused(paused)
	}
	return f
}

// pausable is a sink spec: Paused sinks exist (ports answered in SETUP) but send nothing until
// PLAY.
type pausable interface {
	paused() bool
	withPaused(bool) Spec
}

// Hubs holds what a source's spec says about the hubs it lays out.
type Hubs struct {
	// Pacing spaces the stream's output to UDP readers at this multiple of its average rate
	// (rtp.HubConfig.Pacing); 0 is off.
	Pacing float64
	// Continue, on a source that takes over a stream whose ingest node died, is where that
	// node's hubs' lines stood (FlowStats.Lines of the old source), one per track: new hubs
	// continue them (rtp.HubConfig.Continue), so readers moved here keep their SSRC and see their
	// line go on forward.
	Continue []rtp.LinePos
}

func (h Hubs) clone() Hubs {
	h.Continue = slices.Clone(h.Continue)
	return h
}

// WithContinue returns f with the lines its new hubs continue (Hubs.Continue), if f is a source
// that lays out hubs of its own (every source but a relay).
func (f Flow) WithContinue(lines []rtp.LinePos) Flow {
	if c, ok := f.Spec.(continuer); ok {
		f.Spec = c.withContinue(lines)
	}
	return f
}

// continuer is a source spec whose hubs may continue another node's lines.
type continuer interface {
	hubs() Hubs
	withContinue([]rtp.LinePos) Spec
}

// Backup, on a demo, pull or rtp:// source, is a second source (a DemoSource or PullSource)
// that runs hot next to it behind a selector (see rtp/backup): switched to when the first stalls
// for Stall (0: DefaultBackupStall), or merged with it as a 2022-7 leg, by Mode (BackupAuto,
// BackupMerge, BackupSwitch; "" is BackupAuto).
type Backup struct {
	Source Spec
	Stall  time.Duration
	Mode   string
}

func (b *Backup) clone() *Backup {
	if b == nil {
		return nil
	}
	c := *b
	if c.Source != nil {
		c.Source = c.Source.clone()
	}
	return &c
}

// backedUp is a source spec that may carry a Backup.
type backedUp interface{ backup() *Backup }

// DemoSource plays the embedded demo clip into the stream's hubs.
type DemoSource struct {
	Hubs
	Backup *Backup
}

// PullSource pulls the stream from an upstream RTSP server or camera, or over RTP over QUIC
// from a RoQ server (roq:// or quic:// URL, rtp/roq).
type PullSource struct {
	URL          string
	Transport    string // auto|udp|tcp
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// TLSCA is a PEM CA (or self-signed certificate) for rtsps:// and roq://, instead of the system
	// roots.
	TLSCA []byte
	Hubs
	Backup *Backup
}

// PublisherSource creates the stream's hubs for a publisher whose packets arrive through
// UDPIngress flows or interleaved on the control's connection.
type PublisherSource struct {
	// Tracks are the announced tracks.
	Tracks []rtp.Track
	Hubs
}

// RTPSource receives plain RTP over UDP (URL rtp://HOST:PORT), optionally with SMPTE 2022-1 FEC
// and as two 2022-7 legs; see source_rtp.go.
type RTPSource struct {
	URL string
	// SDP is the stream's description (empty: one MPEG-TS track, PT 33).
	SDP string
	// Interface is the interface multicast groups are joined on.
	Interface string
	// FECColumns/FECRows are the SMPTE 2022-1 L and D (decoding is on when FECColumns > 0;
	// FECRows 0 is column FEC only).
	FECColumns, FECRows int
	// Leg2 is the 2022-7 second leg rtp://HOST2:PORT2 (empty: one leg) and Skew its merge
	// window.
	Leg2 string
	Skew time.Duration
	Hubs
	Backup *Backup
}

// ST2110Source receives an ST 2110 flow set (source: st2110://FILE.sdp); see source_st2110.go.
type ST2110Source struct {
	// SDP is the sender's session description (rtp/st2110.ParseSDP reads it).
	SDP string
	// Interface is the interface multicast groups are joined on.
	Interface string
	// Skew is the 2022-7 merge window when the SDP groups two legs (0: merge.ClassB).
	Skew time.Duration
	Hubs
}

// ST2110Sink re-sends one raw video track (RFC 4175) as an ST 2110-20 flow: frames cut at line
// boundaries, RTP timestamps from the media clock, paced per ST 2110-21; see sink_st2110.go.
type ST2110Sink struct {
	Track int
	// Video is the destination; Leg2, when valid, gets an identical copy (SMPTE 2022-7).
	Video, Leg2 netip.AddrPort
	// Fmtp is the track's RFC 4175 / ST 2110-20 fmtp (exactframerate required) and PayloadType
	// its payload type.
	Fmtp        string
	PayloadType uint8
	// TP is the sender type (2110TPNL, 2110TPN or 2110TPW; empty: 2110TPNL).
	TP  string
	TTL int
	// SDPFile, when set, is where the node writes the flow's ST 2110 SDP for receivers.
	SDPFile string
	Paused  bool
}

// RelaySource takes a stream another node relays to this one over RTP/UDP (the upstream node
// runs a UDPSink per track to this node's pair). Its hubs are transparent: they output the
// upstream hubs' SSRC/seq/timestamp line unchanged, so a reader moved between nodes stays on one
// line.
type RelaySource struct {
	// Tracks are the upstream's layout.
	Tracks []rtp.Track
	// SSRCs are the per-track upstream SSRCs (those of the upstream node's hubs). They tell
	// apart the streams that arrive from one upstream address and become this node's hub SSRCs.
	SSRCs []uint32
	// RTP and RTCP are the upstream node's pair addresses the packets come from.
	RTP, RTCP netip.AddrPort
	// SRTPKey is the relay's key, shared with the upstream's relay sinks, so node-to-node links
	// carry SRTP. Never logged.
	SRTPKey []byte
	// NACK turns on loss repair (RFC 4585; docs/ARCHITECTURE.md, "On edge-a" step 9): the node asks
	// for missing packets with RTCP NACKs to the upstream's RTCP address and holds later packets
	// for up to NACKWait (0: 200 ms) so its hubs see the line in order.
	NACK     bool
	NACKWait time.Duration
	// RTP2 and RTCP2 are the upstream's live-live pair addresses a second SMPTE 2022-7 leg comes
	// from, over the nodes' second networks; the legs are merged by sequence number within Skew
	// (0: merge.ClassB) before loss repair and the hubs.
	RTP2, RTCP2 netip.AddrPort
	Skew        time.Duration
	// Pacing as in Hubs (a relay's hubs carry the upstream's line: they continue nothing).
	Pacing float64
}

// UDPSink sends one track to one UDP reader (or, for a relay, to another node's pair).
type UDPSink struct {
	Track int
	// RTP and RTCP are the reader's destination.
	RTP, RTCP netip.AddrPort
	Paused    bool
	// SRTPKey, when set, is the AES_CM_128_HMAC_SHA1_80 master key and salt (30 bytes) the sink
	// protects its reader's packets with. The control draws reader keys and hands them over its
	// mTLS channel, so a remote node can serve an SRTP reader. Never logged.
	SRTPKey []byte
	// SRTPResume, on an SRTP reader's sink that takes over from another node (the reader
	// moved), is where that node's sender stood (its FlowStats.SRTP): the sink goes on from it,
	// so the player's SRTP context follows and no packet index serves twice under its key.
	SRTPResume *srtp.SendState
	// NACK, on a relay's sink, keeps a history of the packets sent and retransmits those the far
	// node asks for.
	NACK bool
	// SecondPair makes a relay's sink send from the node's live-live socket pair
	// (LocalConfig.LiveLive) instead of its first.
	SecondPair bool
}

// MulticastSink sends one track to a multicast group.
type MulticastSink struct {
	Track     int
	RTP, RTCP netip.AddrPort
	Paused    bool
}

// UDPIngress binds a publisher's UDP address to one track of the stream.
type UDPIngress struct {
	Track int
	// RTP and RTCP are the publisher's source addresses.
	RTP, RTCP netip.AddrPort
	// SRTPKey, when set, is the key the ingress unprotects its publisher's packets with. Never
	// logged.
	SRTPKey []byte
	// SRTPROCs are the rollover counters the SRTP publisher announced per SSRC (MIKEY).
	SRTPROCs map[uint32]uint32
}

// RTPSink sends one track to a plain RTP/UDP output (RTP to RTP, sender reports to RTCP),
// optionally with SMPTE 2022-1 FEC and a second 2022-7 leg (Output).
type RTPSink struct {
	Track     int
	RTP, RTCP netip.AddrPort
	Paused    bool
	// Output configures the sink beyond its destination.
	Output OutputSpec
}

// Kind implements Spec.
func (DemoSource) Kind() FlowKind { return SourceDemo }

// Kind implements Spec.
func (PullSource) Kind() FlowKind { return SourcePull }

// Kind implements Spec.
func (PublisherSource) Kind() FlowKind { return SourcePublisher }

// Kind implements Spec.
func (RTPSource) Kind() FlowKind { return SourceRTP }

// Kind implements Spec.
func (RelaySource) Kind() FlowKind { return SourceRelay }

// Kind implements Spec.
func (ST2110Source) Kind() FlowKind { return SourceST2110 }

func (s ST2110Source) clone() Spec {
	s.Hubs = s.Hubs.clone()
	return s
}

func (s ST2110Source) hubs() Hubs { return s.Hubs }

func (s ST2110Source) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}

// Kind implements Spec.
func (ST2110Sink) Kind() FlowKind { return SinkST2110 }

func (s ST2110Sink) clone() Spec  { return s }
func (s ST2110Sink) track() int   { return s.Track }
func (s ST2110Sink) paused() bool { return s.Paused }
func (s ST2110Sink) withPaused(p bool) Spec {
	s.Paused = p
	return s
}

func (s ST2110Sink) validate(id string) error {
	if s.Track < 0 {
		return fmt.Errorf("flow %s: negative track", id)
	}
	if !s.Video.IsValid() || !s.Video.Addr().Is4() {
		return fmt.Errorf("flow %s: st2110 sink needs an IPv4 video destination", id)
	}
	if s.Leg2.IsValid() && !s.Leg2.Addr().Is4() {
		return fmt.Errorf("flow %s: st2110 sink leg 2 must be IPv4", id)
	}
	if _, err := st2110.ParseVideoFmtp(s.Fmtp); err != nil {
		return fmt.Errorf("flow %s: st2110 sink: %w", id, err)
	}
	switch s.TP {
	case "", st2110.TPN, st2110.TPNL, st2110.TPW:
	default:
		return fmt.Errorf("flow %s: st2110 sink TP %q", id, s.TP)
	}
	if s.TTL < 0 || s.TTL > 255 {
		return fmt.Errorf("flow %s: st2110 sink TTL %d", id, s.TTL)
	}
	return nil
}

func (s ST2110Source) validate(id string) error {
	if _, _, err := st2110SourceConfig(s); err != nil {
		return fmt.Errorf("flow %s: st2110 source: %w", id, err)
	}
	return nil
}

// Kind implements Spec.
func (UDPSink) Kind() FlowKind { return SinkUDP }

// Kind implements Spec.
func (MulticastSink) Kind() FlowKind { return SinkMulticast }

// Kind implements Spec.
func (UDPIngress) Kind() FlowKind { return IngressUDP }

// Kind implements Spec.
func (RTPSink) Kind() FlowKind { return SinkRTP }

func (s DemoSource) clone() Spec {
	s.Hubs, s.Backup = s.Hubs.clone(), s.Backup.clone()
	return s
}

func (s PullSource) clone() Spec {
	s.TLSCA = slices.Clone(s.TLSCA)
	s.Hubs, s.Backup = s.Hubs.clone(), s.Backup.clone()
	return s
}

func (s PublisherSource) clone() Spec {
	s.Tracks = slices.Clone(s.Tracks)
	s.Hubs = s.Hubs.clone()
	return s
}

func (s RTPSource) clone() Spec {
	s.Hubs, s.Backup = s.Hubs.clone(), s.Backup.clone()
	return s
}

func (s RelaySource) clone() Spec {
	s.Tracks, s.SSRCs, s.SRTPKey = slices.Clone(s.Tracks), slices.Clone(s.SSRCs), slices.Clone(s.SRTPKey)
	return s
}

func (s UDPSink) clone() Spec {
	s.SRTPKey = slices.Clone(s.SRTPKey)
	if s.SRTPResume != nil {
		r := *s.SRTPResume
		s.SRTPResume = &r
	}
	return s
}

func (s MulticastSink) clone() Spec { return s }

func (s UDPIngress) clone() Spec {
	s.SRTPKey, s.SRTPROCs = slices.Clone(s.SRTPKey), maps.Clone(s.SRTPROCs)
	return s
}

func (s RTPSink) clone() Spec { return s }

func (s DemoSource) backup() *Backup { return s.Backup }
func (s PullSource) backup() *Backup { return s.Backup }
func (s RTPSource) backup() *Backup  { return s.Backup }
func (s DemoSource) hubs() Hubs      { return s.Hubs }
func (s PullSource) hubs() Hubs      { return s.Hubs }
func (s PublisherSource) hubs() Hubs { return s.Hubs }
func (s RTPSource) hubs() Hubs       { return s.Hubs }
func (s UDPSink) track() int         { return s.Track }
func (s MulticastSink) track() int   { return s.Track }
func (s UDPIngress) track() int      { return s.Track }
func (s RTPSink) track() int         { return s.Track }
func (s UDPSink) paused() bool       { return s.Paused }
func (s MulticastSink) paused() bool { return s.Paused }
func (s RTPSink) paused() bool       { return s.Paused }
func (s UDPSink) withPaused(p bool) Spec {
	s.Paused = p
	return s
}
func (s MulticastSink) withPaused(p bool) Spec {
	s.Paused = p
	return s
}
func (s RTPSink) withPaused(p bool) Spec {
	s.Paused = p
	return s
}
func (s DemoSource) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}
func (s PullSource) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}
func (s PublisherSource) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}
func (s RTPSource) withContinue(l []rtp.LinePos) Spec {
	s.Continue = l
	return s
}

// clone copies f deeply: a node keeps flows beyond the call that brought them and hands them out
// again, and neither side may see the other's later changes.
func (f Flow) clone() Flow {
	f.Meta = maps.Clone(f.Meta)
	if f.Spec != nil {
		f.Spec = f.Spec.clone()
	}
	return f
}

// redacted formats a keyed spec for logs: plain is the spec without its key (a type without a
// String method, so no recursion), key the key it had.
func redacted(plain any, key []byte) string {
	if len(key) > 0 {
		return fmt.Sprintf("%+v (SRTP key redacted)", plain)
	}
	return fmt.Sprintf("%+v", plain)
}

// String describes the spec for logs with its key redacted.
func (s UDPSink) String() string {
	type plain UDPSink
	key := s.SRTPKey
	s.SRTPKey = nil
	return redacted(plain(s), key)
}

// String describes the spec for logs with its key redacted.
func (s UDPIngress) String() string {
	type plain UDPIngress
	key := s.SRTPKey
	s.SRTPKey = nil
	return redacted(plain(s), key)
}

// String describes the spec for logs with its key redacted.
func (s RelaySource) String() string {
	type plain RelaySource
	key := s.SRTPKey
	s.SRTPKey = nil
	return redacted(plain(s), key)
}

// GoString is String, so %#v redacts too.
func (s UDPSink) GoString() string { return s.String() }

// GoString is String, so %#v redacts too.
func (s UDPIngress) GoString() string { return s.String() }

// GoString is String, so %#v redacts too.
func (s RelaySource) GoString() string { return s.String() }

// String describes the flow for logs with its key redacted (the keyed specs redact their own).
func (f Flow) String() string {
	spec := "<nil>"
	if f.Spec != nil {
		spec = fmt.Sprintf("%s %v", f.Spec.Kind(), f.Spec)
	}
	return fmt.Sprintf("{ID:%s Version:%d Stream:%s Spec:%s Meta:%v}", f.ID, f.Version, f.Stream, spec, f.Meta)
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
	if f.Spec == nil {
		return fmt.Errorf("flow %s: no spec (which kind of flow?)", f.ID)
	}
	if err := f.Spec.validate(f.ID); err != nil {
		return err
	}
	if b, ok := f.Spec.(backedUp); ok {
		return validateBackup(f.ID, f.Stream, b.backup())
	}
	return nil
}

// checkKey refuses an SRTP key of the wrong length.
func checkKey(id string, key []byte) error {
	if len(key) != 0 && len(key) != srtp.KeyLen {
		return fmt.Errorf("flow %s: SRTP key of %d bytes, want %d", id, len(key), srtp.KeyLen)
	}
	return nil
}

func (DemoSource) validate(string) error { return nil }

func (s PullSource) validate(id string) error {
	if s.URL == "" {
		return fmt.Errorf("flow %s: pull source without URL", id)
	}
	if len(s.TLSCA) > 0 && !x509.NewCertPool().AppendCertsFromPEM(s.TLSCA) {
		return fmt.Errorf("flow %s: TLS CA holds no PEM certificate", id)
	}
	return nil
}

func (s RTPSource) validate(id string) error {
	if _, err := rtpSourceConfig(s); err != nil {
		return fmt.Errorf("flow %s: rtp source: %w", id, err)
	}
	return nil
}

func (s PublisherSource) validate(id string) error {
	if len(s.Tracks) == 0 {
		return fmt.Errorf("flow %s: publisher source without tracks", id)
	}
	return nil
}

func (s RelaySource) validate(id string) error {
	if err := checkKey(id, s.SRTPKey); err != nil {
		return err
	}
	if len(s.Tracks) == 0 {
		return fmt.Errorf("flow %s: relay source without tracks", id)
	}
	if len(s.SSRCs) != len(s.Tracks) {
		return fmt.Errorf("flow %s: relay source has %d SSRCs for %d tracks", id, len(s.SSRCs), len(s.Tracks))
	}
	for i, ssrc := range s.SSRCs {
		if ssrc == 0 {
			return fmt.Errorf("flow %s: relay source track %d has no SSRC", id, i)
		}
		for j := range i {
			if s.SSRCs[j] == ssrc {
				return fmt.Errorf("flow %s: relay source tracks %d and %d share SSRC %08x", id, j, i, ssrc)
			}
		}
	}
	if !s.RTP.IsValid() || !s.RTCP.IsValid() {
		return fmt.Errorf("flow %s: relay source needs the upstream RTP and RTCP addresses", id)
	}
	if s.RTP2.IsValid() != s.RTCP2.IsValid() {
		return fmt.Errorf("flow %s: a relay's second leg needs both the upstream's RTP and RTCP addresses", id)
	}
	if s.Skew < 0 || s.Skew > maxRelaySkew {
		return fmt.Errorf("flow %s: relay skew %v, want 0..%v", id, s.Skew, maxRelaySkew)
	}
	return nil
}

func (s RTPSink) validate(id string) error {
	if err := s.Output.validate(s); err != nil {
		return fmt.Errorf("flow %s: %w", id, err)
	}
	return nil
}

// validateDest checks what the UDP sinks and the ingress share: a track and both addresses.
func validateDest(id string, kind FlowKind, track int, rtpAddr, rtcpAddr netip.AddrPort) error {
	if track < 0 {
		return fmt.Errorf("flow %s: negative track", id)
	}
	if !rtpAddr.IsValid() || !rtcpAddr.IsValid() {
		return fmt.Errorf("flow %s: %s needs RTP and RTCP addresses", id, kind)
	}
	return nil
}

func (s UDPSink) validate(id string) error {
	if err := checkKey(id, s.SRTPKey); err != nil {
		return err
	}
	if err := validateDest(id, SinkUDP, s.Track, s.RTP, s.RTCP); err != nil {
		return err
	}
	if s.SRTPResume != nil && len(s.SRTPKey) == 0 {
		return fmt.Errorf("flow %s: an SRTP sender state to resume needs an SRTP sink.udp", id)
	}
	return nil
}

func (s MulticastSink) validate(id string) error {
	return validateDest(id, SinkMulticast, s.Track, s.RTP, s.RTCP)
}

func (s UDPIngress) validate(id string) error {
	if err := checkKey(id, s.SRTPKey); err != nil {
		return err
	}
	return validateDest(id, IngressUDP, s.Track, s.RTP, s.RTCP)
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
	// ST2110 holds a SourceST2110 flow's frame counters, one entry per video essence; nil for
	// others.
	ST2110 []st2110.ReassemblerStats
	// ST2110Timing is, per video essence of a SourceST2110 flow, the ST 2110-21 reading of its
	// arrivals (Cinst against CMAX, VRX against VRX_FULL of the SDP's TP; TPW when it has none).
	ST2110Timing []st2110.TimingReading
	// ST2110Out holds a SinkST2110 flow's sender counters; nil for others.
	ST2110Out *st2110out.Stats
	// RelayLegs holds a two-leg SourceRelay's 2022-7 merge counters, summed over its tracks;
	// nil for others.
	RelayLegs *merge.Stats
	// Lines are where a source's hubs' output lines stand, one per track (for Hubs.Continue);
	// nil for other flows and before the first packet.
	Lines []rtp.LinePos
	// SRTP is where an SRTP reader's sink stands as a sender (for UDPSink.SRTPResume); nil for
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
