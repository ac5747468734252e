package cluster

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// FlowToProto converts a flow for the wire. Unset addresses become empty strings and empty
// slices and maps nil, so that FlowFromProto gives back an identical flow.
func FlowToProto(f node.Flow) *api.Flow {
	p := &api.Flow{
		Id:                f.ID,
		Version:           f.Version,
		Kind:              string(f.Kind),
		Stream:            f.Stream,
		Track:             int64(f.Track),
		Url:               f.URL,
		Transport:         f.Transport,
		ReconnectMinNanos: int64(f.ReconnectMin),
		ReconnectMaxNanos: int64(f.ReconnectMax),
		Tracks:            tracksToProto(f.Tracks),
		Pacing:            f.Pacing,
		Rtp:               addrPortString(f.RTP),
		Rtcp:              addrPortString(f.RTCP),
		Paused:            f.Paused,
		Output:            outputToProto(f.Output),
		Nack:              f.NACK,
		NackWaitNanos:     int64(f.NACKWait),
		SecondPair:        f.SecondPair,
		Rtp2:              addrPortString(f.RTP2),
		Rtcp2:             addrPortString(f.RTCP2),
		ContinueLines:     linesToProto(f.Continue),
		SrtpResume:        srtpStateToProto(f.SRTPResume),
	}
	if len(f.SRTPKey) > 0 {
		p.SrtpKey = append([]byte(nil), f.SRTPKey...)
	}
	if len(f.SRTPROCs) > 0 {
		p.SrtpRocs = maps.Clone(f.SRTPROCs)
	}
	if len(f.TLSCA) > 0 {
		p.TlsCa = append([]byte(nil), f.TLSCA...)
	}
	if len(f.SSRCs) > 0 {
		p.Ssrcs = append([]uint32(nil), f.SSRCs...)
	}
	if f.SDP != "" || f.RTPInterface != "" || f.FECColumns != 0 || f.FECRows != 0 || f.Leg2 != "" || f.Skew != 0 {
		p.RtpSource = &api.RtpSource{Sdp: f.SDP, Interface: f.RTPInterface, FecColumns: uint32(f.FECColumns),
			FecRows: uint32(f.FECRows), Leg2: f.Leg2, SkewNanos: int64(f.Skew)}
	}
	if len(f.Meta) > 0 {
		p.Meta = make(map[string]string, len(f.Meta))
		for k, v := range f.Meta {
			p.Meta[k] = v
		}
	}
	if f.Backup != nil {
		p.Backup = FlowToProto(*f.Backup)
	}
	p.BackupStallNanos, p.BackupMode = int64(f.BackupStall), f.BackupMode
	return p
}

// FlowFromProto converts a flow from the wire and validates it (node.Flow.Validate), so whatever
// it returns without error can be applied; the error says which field is wrong.
func FlowFromProto(p *api.Flow) (node.Flow, error) {
	if p == nil {
		return node.Flow{}, errors.New("no flow")
	}
	f, err := flowFromProto(p)
	if err != nil {
		return node.Flow{}, err
	}
	// a backup is one level deep: converting it without recursion bounds the work
	if p.Backup != nil {
		if p.Backup.Backup != nil {
			return node.Flow{}, fmt.Errorf("flow %s: the backup has a backup of its own", p.Id)
		}
		b, err := flowFromProto(p.Backup)
		if err != nil {
			return node.Flow{}, fmt.Errorf("flow %s: backup: %w", p.Id, err)
		}
		f.Backup = &b
	}
	f.BackupStall, f.BackupMode = time.Duration(p.BackupStallNanos), p.BackupMode
	if err := f.Validate(); err != nil {
		return node.Flow{}, err
	}
	return f, nil
}

// flowFromProto converts one flow message's own fields (not its backup) without validating.
func flowFromProto(p *api.Flow) (node.Flow, error) {
	f := node.Flow{
		ID:           p.Id,
		Version:      p.Version,
		Kind:         node.FlowKind(p.Kind),
		Stream:       p.Stream,
		URL:          p.Url,
		Transport:    p.Transport,
		ReconnectMin: time.Duration(p.ReconnectMinNanos),
		ReconnectMax: time.Duration(p.ReconnectMaxNanos),
		Pacing:       p.Pacing,
		Paused:       p.Paused,
		NACK:         p.Nack,
		NACKWait:     time.Duration(p.NackWaitNanos),
	}
	// int is 32 bits on some targets the node may be built for.
	if int64(int(p.Track)) != p.Track {
		return node.Flow{}, fmt.Errorf("flow %s: track %d out of range", p.Id, p.Track)
	}
	f.Track = int(p.Track)
	if math.IsNaN(p.Pacing) || math.IsInf(p.Pacing, 0) || p.Pacing < 0 {
		return node.Flow{}, fmt.Errorf("flow %s: pacing %v is not a finite number ≥ 0", p.Id, p.Pacing)
	}
	var err error
	if f.Tracks, err = tracksFromProto(p.Tracks); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: %w", p.Id, err)
	}
	if f.RTP, err = parseAddrPort(p.Rtp); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: rtp: %w", p.Id, err)
	}
	if f.RTCP, err = parseAddrPort(p.Rtcp); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: rtcp: %w", p.Id, err)
	}
	if f.RTP2, err = parseAddrPort(p.Rtp2); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: rtp2: %w", p.Id, err)
	}
	if f.RTCP2, err = parseAddrPort(p.Rtcp2); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: rtcp2: %w", p.Id, err)
	}
	f.SecondPair = p.SecondPair
	if f.Continue, err = linesFromProto(p.ContinueLines); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: continue: %w", p.Id, err)
	}
	if f.SRTPResume, err = srtpStateFromProto(p.SrtpResume); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: srtp resume: %w", p.Id, err)
	}
	if len(p.Ssrcs) > 0 {
		f.SSRCs = append([]uint32(nil), p.Ssrcs...)
	}
	if f.Output, err = outputFromProto(p.Output); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: output: %w", p.Id, err)
	}
	if f.NACKWait < 0 {
		return node.Flow{}, fmt.Errorf("flow %s: negative NACK wait", p.Id)
	}
	if r := p.RtpSource; r != nil {
		if r.FecColumns > 255 || r.FecRows > 255 {
			return node.Flow{}, fmt.Errorf("flow %s: FEC L×D %d×%d out of range", p.Id, r.FecColumns, r.FecRows)
		}
		f.SDP, f.RTPInterface, f.Leg2 = r.Sdp, r.Interface, r.Leg2
		f.FECColumns, f.FECRows, f.Skew = int(r.FecColumns), int(r.FecRows), time.Duration(r.SkewNanos)
	}
	if len(p.SrtpKey) > 0 {
		f.SRTPKey = append([]byte(nil), p.SrtpKey...)
	}
	if len(p.SrtpRocs) > 0 {
		f.SRTPROCs = maps.Clone(p.SrtpRocs)
	}
	if len(p.TlsCa) > 0 {
		f.TLSCA = append([]byte(nil), p.TlsCa...)
	}
	if len(p.Meta) > 0 {
		f.Meta = make(map[string]string, len(p.Meta))
		for k, v := range p.Meta {
			f.Meta[k] = v
		}
	}
	return f, nil
}

// checkFlowStrings refuses a flow the wire cannot carry: protobuf strings must be UTF-8, and a
// message that fails to marshal would end the whole stream instead of failing one command.
func checkFlowStrings(f node.Flow) error {
	if f.Backup != nil {
		if err := checkFlowStrings(*f.Backup); err != nil {
			return fmt.Errorf("flow %q: backup: %w", f.ID, err)
		}
	}
	for name, s := range map[string]string{"ID": f.ID, "kind": string(f.Kind), "stream": f.Stream, "URL": f.URL, "transport": f.Transport, "backup mode": f.BackupMode,
		"SDP": f.SDP, "RTP interface": f.RTPInterface, "leg 2": f.Leg2} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("flow %q: %s is not valid UTF-8", f.ID, name)
		}
	}
	for k, v := range f.Meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("flow %q: meta %q is not valid UTF-8", f.ID, k)
		}
	}
	for _, t := range f.Tracks {
		if !utf8.ValidString(t.Media) {
			return fmt.Errorf("flow %q: track media %q is not valid UTF-8", f.ID, t.Media)
		}
	}
	return nil
}

// wireText makes free text (error messages, which may quote what an upstream sent) safe for a
// protobuf string.
func wireText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func addrPortString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
	}
	return ap, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}

func tracksToProto(ts []rtp.Track) []*api.Track {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*api.Track, len(ts))
	for i, t := range ts {
		out[i] = &api.Track{Media: t.Media, PayloadType: uint32(t.PayloadType), ClockRate: t.ClockRate}
	}
	return out
}

func tracksFromProto(ps []*api.Track) ([]rtp.Track, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]rtp.Track, len(ps))
	for i, p := range ps {
		if p == nil {
			return nil, fmt.Errorf("track %d is empty", i)
		}
		if p.PayloadType > math.MaxUint8 {
			return nil, fmt.Errorf("track %d: payload type %d out of range", i, p.PayloadType)
		}
		out[i] = rtp.Track{Media: p.Media, PayloadType: uint8(p.PayloadType), ClockRate: p.ClockRate}
	}
	return out, nil
}

func statusToProto(s node.FlowStatus) *api.FlowStatus {
	return &api.FlowStatus{
		Source:   addrString(s.Source),
		RtpPort:  uint32(s.RTPPort),
		RtcpPort: uint32(s.RTCPPort),
		Ssrc:     s.SSRC,
		NextSeq:  uint32(s.NextSeq),
		NextTs:   s.NextTS,
		PosOk:    s.PosOK,
	}
}

func statusFromProto(p *api.FlowStatus) (node.FlowStatus, error) {
	if p == nil {
		return node.FlowStatus{}, nil
	}
	src, err := parseAddr(p.Source)
	if err != nil {
		return node.FlowStatus{}, fmt.Errorf("status source: %w", err)
	}
	if p.RtpPort > math.MaxUint16 || p.RtcpPort > math.MaxUint16 {
		return node.FlowStatus{}, fmt.Errorf("status ports %d/%d out of range", p.RtpPort, p.RtcpPort)
	}
	if p.NextSeq > math.MaxUint16 {
		return node.FlowStatus{}, fmt.Errorf("status next seq %d out of range", p.NextSeq)
	}
	return node.FlowStatus{
		Source: src, RTPPort: int(p.RtpPort), RTCPPort: int(p.RtcpPort), SSRC: p.Ssrc,
		NextSeq: uint16(p.NextSeq), NextTS: p.NextTs, PosOK: p.PosOk,
	}, nil
}

func statsToProto(id string, s node.FlowStats) *api.FlowStats {
	p := &api.FlowStats{FlowId: id, Packets: s.Packets, Bytes: s.Bytes, Dropped: s.Dropped, Errors: s.Errors, Fec: s.FEC}
	if !s.LastActivity.IsZero() {
		p.LastActivityUnixNanos = s.LastActivity.UnixNano()
	}
	if b := s.Backup; b.Mode != "" {
		p.Backup = &api.BackupStats{Mode: b.Mode, Active: b.Active, Switches: b.Switches, LastReason: wireText(b.LastReason),
			PrimaryPackets: b.PrimaryPackets, BackupPackets: b.BackupPackets, Lost: b.Lost}
		if !b.LastSwitch.IsZero() {
			p.Backup.LastSwitchUnixNanos = b.LastSwitch.UnixNano()
		}
	}
	if r := s.RTPSource; r != nil {
		p.RtpSource = &api.RtpSourceStats{Received: r.Received, Bytes: r.Bytes, Invalid: r.Invalid, Fec: r.FEC,
			Recovered: r.Recovered, Unrecoverable: r.Unrecoverable, Output: r.Output, Lost: r.Lost}
		p.RtpSource.Legs = legsToProto(r.Legs)
	}
	p.Lines = linesToProto(s.Lines)
	p.Srtp = srtpStateToProto(s.SRTP)
	if r := s.Reception; r != nil {
		p.Reception = &api.ReceptionStats{Reports: r.Reports, FractionLost: r.FractionLost, CumulativeLost: r.CumulativeLost,
			HighestSeq: r.HighestSeq, JitterNanos: int64(r.Jitter), RttNanos: int64(r.RTT), LastUnixNanos: r.Last.UnixNano()}
	}
	if m := s.RelayLegs; m != nil {
		p.RelayLegs = &api.MergerStats{Legs: legsToProto(m.Legs), Output: m.Output, Lost: m.Lost, Resets: m.Resets,
			Overruns: m.Overruns, Refilled: m.Refilled}
	}
	return p
}

func srtpStateToProto(st *srtp.SendState) *api.SrtpSendState {
	if st == nil {
		return nil
	}
	return &api.SrtpSendState{Ssrc: st.SSRC, Roc: st.ROC, MaxSeq: uint32(st.MaxSeq), RtcpIndex: st.RTCPIndex}
}

func srtpStateFromProto(p *api.SrtpSendState) (*srtp.SendState, error) {
	if p == nil {
		return nil, nil
	}
	if p.MaxSeq > math.MaxUint16 || p.RtcpIndex >= 1<<31 {
		return nil, fmt.Errorf("sequence number %d or SRTCP index %d out of range", p.MaxSeq, p.RtcpIndex)
	}
	return &srtp.SendState{SSRC: p.Ssrc, ROC: p.Roc, MaxSeq: uint16(p.MaxSeq), RTCPIndex: p.RtcpIndex}, nil
}

func linesToProto(ls []rtp.LinePos) []*api.LinePos {
	var p []*api.LinePos
	for _, l := range ls {
		p = append(p, &api.LinePos{Ssrc: l.SSRC, NextSeq: uint32(l.NextSeq), NextTs: l.NextTS, AtUnixNanos: l.At.UnixNano(), Rate: l.Rate})
	}
	return p
}

func linesFromProto(p []*api.LinePos) ([]rtp.LinePos, error) {
	var ls []rtp.LinePos
	for _, l := range p {
		switch {
		case l == nil:
			return nil, errors.New("empty line position")
		case l.NextSeq > math.MaxUint16:
			return nil, fmt.Errorf("line position sequence number %d out of range", l.NextSeq)
		case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate < 0:
			return nil, fmt.Errorf("line position rate %v is not a finite number ≥ 0", l.Rate)
		case l.Ssrc == 0:
			return nil, errors.New("line position without SSRC")
		}
		ls = append(ls, rtp.LinePos{SSRC: l.Ssrc, NextSeq: uint16(l.NextSeq), NextTS: l.NextTs, At: time.Unix(0, l.AtUnixNanos), Rate: l.Rate})
	}
	return ls, nil
}

func legsToProto(legs []merge.LegStats) []*api.RtpLegStats {
	var p []*api.RtpLegStats
	for _, l := range legs {
		p = append(p, &api.RtpLegStats{Received: l.Received, Invalid: l.Invalid,
			First: l.First, Duplicates: l.Duplicates, Late: l.Late, Lost: l.Lost, Diverged: l.Diverged})
	}
	return p
}

// legsFromProto keeps at most merge.MaxLegs legs.
func legsFromProto(p []*api.RtpLegStats) []merge.LegStats {
	var legs []merge.LegStats
	for _, l := range p {
		if l != nil && len(legs) < merge.MaxLegs {
			legs = append(legs, merge.LegStats{Received: l.Received, Invalid: l.Invalid,
				First: l.First, Duplicates: l.Duplicates, Late: l.Late, Lost: l.Lost, Diverged: l.Diverged})
		}
	}
	return legs
}

func statsFromProto(p *api.FlowStats) node.FlowStats {
	s := node.FlowStats{Packets: p.Packets, Bytes: p.Bytes, Dropped: p.Dropped, Errors: p.Errors, FEC: p.Fec}
	if p.LastActivityUnixNanos != 0 {
		s.LastActivity = time.Unix(0, p.LastActivityUnixNanos)
	}
	if b := p.Backup; b != nil {
		s.Backup = node.BackupStats{Mode: b.Mode, Active: b.Active, Switches: b.Switches, LastReason: b.LastReason,
			PrimaryPackets: b.PrimaryPackets, BackupPackets: b.BackupPackets, Lost: b.Lost}
		if b.LastSwitchUnixNanos != 0 {
			s.Backup.LastSwitch = time.Unix(0, b.LastSwitchUnixNanos)
		}
	}
	if r := p.RtpSource; r != nil {
		s.RTPSource = &rtp.RTPSourceStats{Received: r.Received, Bytes: r.Bytes, Invalid: r.Invalid, FEC: r.Fec,
			Recovered: r.Recovered, Unrecoverable: r.Unrecoverable, Output: r.Output, Lost: r.Lost, LastPacket: s.LastActivity}
		s.RTPSource.Legs = legsFromProto(r.Legs)
	}
	// a node's broken report loses only the positions, which serve one failover
	s.Lines, _ = linesFromProto(p.Lines)
	s.SRTP, _ = srtpStateFromProto(p.Srtp)
	if r := p.Reception; r != nil {
		s.Reception = &rtp.ReceptionStats{Reports: r.Reports, FractionLost: r.FractionLost, CumulativeLost: r.CumulativeLost,
			HighestSeq: r.HighestSeq, Jitter: time.Duration(r.JitterNanos), RTT: time.Duration(r.RttNanos), Last: time.Unix(0, r.LastUnixNanos)}
	}
	if m := p.RelayLegs; m != nil {
		s.RelayLegs = &merge.Stats{Legs: legsFromProto(m.Legs), Output: m.Output, Lost: m.Lost, Resets: m.Resets,
			Overruns: m.Overruns, Refilled: m.Refilled}
	}
	return s
}

// helloToProto converts a node's registration for the wire.
func helloToProto(h Hello) *api.Hello {
	p := &api.Hello{
		Name:         h.Name,
		DataAddress:  addrString(h.DataAddr),
		RtpPort:      uint32(h.RTPPort),
		RtcpPort:     uint32(h.RTCPPort),
		Capabilities: append([]string(nil), h.Capabilities...),
		BootId:       h.BootID,

		LiveLiveAddress:  addrString(h.LiveLiveAddr),
		LiveLiveRtpPort:  uint32(h.LiveLiveRTPPort),
		LiveLiveRtcpPort: uint32(h.LiveLiveRTCPPort),
	}
	for _, n := range h.ClientNetworks {
		p.ClientNetworks = append(p.ClientNetworks, n.String())
	}
	for _, f := range h.Flows {
		p.Flows = append(p.Flows, FlowToProto(f))
	}
	for _, s := range h.Sources {
		p.Sources = append(p.Sources, &api.SourceState{
			Stream: s.Stream, Sdp: s.SDP, Tracks: tracksToProto(s.Tracks), Up: s.Up, Error: wireText(s.Err),
		})
	}
	return p
}

// helloFromProto converts a node's registration. A reported flow or source that does not convert
// is left out and returned in skipped rather than refusing the node: the node keeps running it
// either way, and refusing would keep the node out of the cluster for good.
func helloFromProto(p *api.Hello) (h Hello, skipped []error, err error) {
	h = Hello{Name: p.Name, BootID: p.BootId}
	if h.DataAddr, err = parseAddr(p.DataAddress); err != nil {
		return Hello{}, nil, fmt.Errorf("data address: %w", err)
	}
	if p.RtpPort > math.MaxUint16 || p.RtcpPort > math.MaxUint16 {
		return Hello{}, nil, fmt.Errorf("ports %d/%d out of range", p.RtpPort, p.RtcpPort)
	}
	h.RTPPort, h.RTCPPort = int(p.RtpPort), int(p.RtcpPort)
	if h.LiveLiveAddr, err = parseAddr(p.LiveLiveAddress); err != nil {
		return Hello{}, nil, fmt.Errorf("live-live address: %w", err)
	}
	if p.LiveLiveRtpPort > math.MaxUint16 || p.LiveLiveRtcpPort > math.MaxUint16 {
		return Hello{}, nil, fmt.Errorf("live-live ports %d/%d out of range", p.LiveLiveRtpPort, p.LiveLiveRtcpPort)
	}
	h.LiveLiveRTPPort, h.LiveLiveRTCPPort = int(p.LiveLiveRtpPort), int(p.LiveLiveRtcpPort)
	for _, s := range p.ClientNetworks {
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return Hello{}, nil, fmt.Errorf("client network: %w", err)
		}
		h.ClientNetworks = append(h.ClientNetworks, n)
	}
	if len(p.Capabilities) > 0 {
		h.Capabilities = append([]string(nil), p.Capabilities...)
	}
	for _, pf := range p.Flows {
		f, err := FlowFromProto(pf)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("reported flow: %w", err))
			continue
		}
		h.Flows = append(h.Flows, f)
	}
	for _, ps := range p.Sources {
		if ps == nil {
			continue
		}
		tracks, err := tracksFromProto(ps.Tracks)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("reported source %s: %w", ps.Stream, err))
			continue
		}
		h.Sources = append(h.Sources, SourceState{Stream: ps.Stream, SDP: ps.Sdp, Tracks: tracks, Up: ps.Up, Err: ps.Error})
	}
	return h, skipped, nil
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// outputToProto converts a sink.rtp's spec; nil for the zero spec, so other flows carry nothing.
func outputToProto(o node.OutputSpec) *api.OutputSpec {
	if o == (node.OutputSpec{}) {
		return nil
	}
	return &api.OutputSpec{Leg2: addrPortString(o.Leg2), FecColumns: uint32(o.FECColumns), FecRows: uint32(o.FECRows),
		FecMode: uint32(o.FECMode), Ttl: uint32(o.TTL)}
}

// outputFromProto converts a sink.rtp's spec; ranges are checked here, the rest by Validate.
func outputFromProto(p *api.OutputSpec) (node.OutputSpec, error) {
	if p == nil {
		return node.OutputSpec{}, nil
	}
	if p.FecColumns > 255 || p.FecRows > 255 || p.FecMode > 255 || p.Ttl > 255 {
		return node.OutputSpec{}, fmt.Errorf("FEC %d×%d mode %d or TTL %d out of range", p.FecColumns, p.FecRows, p.FecMode, p.Ttl)
	}
	leg2, err := parseAddrPort(p.Leg2)
	if err != nil {
		return node.OutputSpec{}, fmt.Errorf("leg2: %w", err)
	}
	return node.OutputSpec{Leg2: leg2, FECColumns: int(p.FecColumns), FECRows: int(p.FecRows),
		FECMode: fec.Mode(p.FecMode), TTL: int(p.Ttl)}, nil
}
