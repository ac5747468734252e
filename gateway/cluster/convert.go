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
	p := &api.Flow{Id: f.ID, Version: f.Version, Stream: f.Stream}
	if len(f.Meta) > 0 {
		p.Meta = maps.Clone(f.Meta)
	}
	switch sp := f.Spec.(type) {
	case node.DemoSource:
		p.Spec = &api.Flow_Demo{Demo: demoToProto(sp)}
	case node.PullSource:
		p.Spec = &api.Flow_Pull{Pull: pullToProto(sp)}
	case node.PublisherSource:
		p.Spec = &api.Flow_Publisher{Publisher: &api.PublisherSource{Tracks: tracksToProto(sp.Tracks), Hubs: hubsToProto(sp.Hubs)}}
	case node.RTPSource:
		p.Spec = &api.Flow_RtpSource{RtpSource: &api.RtpSource{Url: sp.URL, Sdp: sp.SDP, Interface: sp.Interface,
			FecColumns: uint32(sp.FECColumns), FecRows: uint32(sp.FECRows), Leg2: sp.Leg2, SkewNanos: int64(sp.Skew),
			Hubs: hubsToProto(sp.Hubs), Backup: backupToProto(sp.Backup)}}
	case node.ST2110Sink:
		p.Spec = &api.Flow_St2110Sink{St2110Sink: &api.St2110Sink{Track: int64(sp.Track), Video: addrPortString(sp.Video),
			Leg2: addrPortString(sp.Leg2), Fmtp: sp.Fmtp, PayloadType: uint32(sp.PayloadType), Tp: sp.TP, Ttl: uint32(sp.TTL),
			SdpFile: sp.SDPFile, Paused: sp.Paused}}
	case node.ST2110Source:
		p.Spec = &api.Flow_St2110Source{St2110Source: &api.St2110Source{Sdp: sp.SDP, Interface: sp.Interface,
			SkewNanos: int64(sp.Skew), Hubs: hubsToProto(sp.Hubs)}}
	case node.RelaySource:
		p.Spec = &api.Flow_Relay{Relay: &api.RelaySource{Tracks: tracksToProto(sp.Tracks), Ssrcs: cloneOrNil(sp.SSRCs),
			Rtp: addrPortString(sp.RTP), Rtcp: addrPortString(sp.RTCP), SrtpKey: cloneOrNil(sp.SRTPKey),
			Nack: sp.NACK, NackWaitNanos: int64(sp.NACKWait), Rtp2: addrPortString(sp.RTP2), Rtcp2: addrPortString(sp.RTCP2),
			SkewNanos: int64(sp.Skew), Pacing: sp.Pacing}}
	case node.UDPSink:
		p.Spec = &api.Flow_UdpSink{UdpSink: &api.UdpSink{Track: int64(sp.Track), Rtp: addrPortString(sp.RTP),
			Rtcp: addrPortString(sp.RTCP), Paused: sp.Paused, SrtpKey: cloneOrNil(sp.SRTPKey),
			SrtpResume: srtpStateToProto(sp.SRTPResume), Nack: sp.NACK, SecondPair: sp.SecondPair}}
	case node.MulticastSink:
		p.Spec = &api.Flow_MulticastSink{MulticastSink: &api.MulticastSink{Track: int64(sp.Track), Rtp: addrPortString(sp.RTP),
			Rtcp: addrPortString(sp.RTCP), Paused: sp.Paused}}
	case node.UDPIngress:
		in := &api.UdpIngress{Track: int64(sp.Track), Rtp: addrPortString(sp.RTP), Rtcp: addrPortString(sp.RTCP),
			SrtpKey: cloneOrNil(sp.SRTPKey)}
		if len(sp.SRTPROCs) > 0 {
			in.SrtpRocs = maps.Clone(sp.SRTPROCs)
		}
		p.Spec = &api.Flow_UdpIngress{UdpIngress: in}
	case node.RTPSink:
		p.Spec = &api.Flow_RtpSink{RtpSink: &api.RtpSink{Track: int64(sp.Track), Rtp: addrPortString(sp.RTP),
			Rtcp: addrPortString(sp.RTCP), Paused: sp.Paused, Output: outputToProto(sp.Output)}}
	case node.MemifSource:
		p.Spec = &api.Flow_MemifSource{MemifSource: &api.MemifSource{Interface: sp.Interface, Sdp: sp.SDP, Hubs: hubsToProto(sp.Hubs)}}
	case node.MemifSink:
		p.Spec = &api.Flow_MemifSink{MemifSink: &api.MemifSink{Track: int64(sp.Track), Interface: sp.Interface, Paused: sp.Paused}}
	}
	return p
}

// cloneOrNil copies a slice for the wire, nil when empty.
func cloneOrNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

func hubsToProto(h node.Hubs) *api.Hubs {
	if h.Pacing == 0 && len(h.Continue) == 0 {
		return nil
	}
	return &api.Hubs{Pacing: h.Pacing, ContinueLines: linesToProto(h.Continue)}
}

func demoToProto(sp node.DemoSource) *api.DemoSource {
	return &api.DemoSource{Hubs: hubsToProto(sp.Hubs), Backup: backupToProto(sp.Backup)}
}

func pullToProto(sp node.PullSource) *api.PullSource {
	return &api.PullSource{Url: sp.URL, Transport: sp.Transport, ReconnectMinNanos: int64(sp.ReconnectMin),
		ReconnectMaxNanos: int64(sp.ReconnectMax), TlsCa: cloneOrNil(sp.TLSCA), Hubs: hubsToProto(sp.Hubs),
		Backup: backupToProto(sp.Backup)}
}

// backupToProto converts a source's backup; a source the wire cannot carry as a backup (Validate
// refuses it) goes without one.
func backupToProto(b *node.Backup) *api.Backup {
	if b == nil {
		return nil
	}
	p := &api.Backup{StallNanos: int64(b.Stall), Mode: b.Mode}
	switch sp := b.Source.(type) {
	case node.DemoSource:
		p.Source = &api.Backup_Demo{Demo: demoToProto(sp)}
	case node.PullSource:
		p.Source = &api.Backup_Pull{Pull: pullToProto(sp)}
	}
	return p
}

// FlowFromProto converts a flow from the wire and validates it (node.Flow.Validate), so whatever
// it returns without error can be applied; the error says which field is wrong.
func FlowFromProto(p *api.Flow) (node.Flow, error) {
	if p == nil {
		return node.Flow{}, errors.New("no flow")
	}
	f := node.Flow{ID: p.Id, Version: p.Version, Stream: p.Stream}
	if len(p.Meta) > 0 {
		f.Meta = maps.Clone(p.Meta)
	}
	var err error
	if f.Spec, err = specFromProto(p); err != nil {
		return node.Flow{}, fmt.Errorf("flow %s: %w", p.Id, err)
	}
	if err := f.Validate(); err != nil {
		return node.Flow{}, err
	}
	return f, nil
}

// specFromProto converts the flow's spec without validating it.
func specFromProto(p *api.Flow) (node.Spec, error) {
	switch s := p.Spec.(type) {
	case *api.Flow_Demo:
		return demoFromProto(s.Demo, true)
	case *api.Flow_Pull:
		return pullFromProto(s.Pull, true)
	case *api.Flow_Publisher:
		return publisherFromProto(s.Publisher)
	case *api.Flow_RtpSource:
		return rtpSourceFromProto(s.RtpSource)
	case *api.Flow_St2110Source:
		h, err := hubsFromProto(s.St2110Source.GetHubs())
		if err != nil {
			return nil, err
		}
		return node.ST2110Source{SDP: s.St2110Source.GetSdp(), Interface: s.St2110Source.GetInterface(),
			Skew: time.Duration(s.St2110Source.GetSkewNanos()), Hubs: h}, nil
	case *api.Flow_Relay:
		return relayFromProto(s.Relay)
	case *api.Flow_UdpSink:
		return udpSinkFromProto(s.UdpSink)
	case *api.Flow_MulticastSink:
		return multicastFromProto(s.MulticastSink)
	case *api.Flow_UdpIngress:
		return ingressFromProto(s.UdpIngress)
	case *api.Flow_RtpSink:
		return rtpSinkFromProto(s.RtpSink)
	case *api.Flow_St2110Sink:
		return st2110SinkFromProto(s.St2110Sink)
	case *api.Flow_MemifSource:
		h, err := hubsFromProto(s.MemifSource.GetHubs())
		if err != nil {
			return nil, err
		}
		return node.MemifSource{Interface: s.MemifSource.GetInterface(), SDP: s.MemifSource.GetSdp(), Hubs: h}, nil
	case *api.Flow_MemifSink:
		track, err := trackFromProto(s.MemifSink.GetTrack())
		if err != nil {
			return nil, err
		}
		return node.MemifSink{Track: track, Interface: s.MemifSink.GetInterface(), Paused: s.MemifSink.GetPaused()}, nil
	}
	return nil, errors.New("no spec (which kind of flow?)")
}

func hubsFromProto(p *api.Hubs) (node.Hubs, error) {
	if p == nil {
		return node.Hubs{}, nil
	}
	if math.IsNaN(p.Pacing) || math.IsInf(p.Pacing, 0) || p.Pacing < 0 {
		return node.Hubs{}, fmt.Errorf("pacing %v is not a finite number ≥ 0", p.Pacing)
	}
	lines, err := linesFromProto(p.ContinueLines)
	if err != nil {
		return node.Hubs{}, fmt.Errorf("continue: %w", err)
	}
	return node.Hubs{Pacing: p.Pacing, Continue: lines}, nil
}

// backupFromProto converts a source's backup. A backup is one level deep: its source is
// converted without a backup of its own, which bounds the work.
func backupFromProto(p *api.Backup) (*node.Backup, error) {
	if p == nil {
		return nil, nil
	}
	b := &node.Backup{Stall: time.Duration(p.StallNanos), Mode: p.Mode}
	var err error
	switch s := p.Source.(type) {
	case *api.Backup_Demo:
		b.Source, err = demoFromProto(s.Demo, false)
	case *api.Backup_Pull:
		b.Source, err = pullFromProto(s.Pull, false)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return b, nil
}

// errNestedBackup refuses a backup's own backup before converting it.
var errNestedBackup = errors.New("the backup has a backup of its own")

func demoFromProto(p *api.DemoSource, withBackup bool) (node.Spec, error) {
	h, err := hubsFromProto(p.GetHubs())
	if err != nil {
		return nil, err
	}
	sp := node.DemoSource{Hubs: h}
	if p.GetBackup() != nil && !withBackup {
		return nil, errNestedBackup
	}
	if sp.Backup, err = backupFromProto(p.GetBackup()); err != nil {
		return nil, err
	}
	return sp, nil
}

func pullFromProto(p *api.PullSource, withBackup bool) (node.Spec, error) {
	h, err := hubsFromProto(p.GetHubs())
	if err != nil {
		return nil, err
	}
	sp := node.PullSource{URL: p.GetUrl(), Transport: p.GetTransport(), ReconnectMin: time.Duration(p.GetReconnectMinNanos()),
		ReconnectMax: time.Duration(p.GetReconnectMaxNanos()), TLSCA: cloneOrNil(p.GetTlsCa()), Hubs: h}
	if p.GetBackup() != nil && !withBackup {
		return nil, errNestedBackup
	}
	if sp.Backup, err = backupFromProto(p.GetBackup()); err != nil {
		return nil, err
	}
	return sp, nil
}

func publisherFromProto(p *api.PublisherSource) (node.Spec, error) {
	h, err := hubsFromProto(p.GetHubs())
	if err != nil {
		return nil, err
	}
	tracks, err := tracksFromProto(p.GetTracks())
	if err != nil {
		return nil, err
	}
	return node.PublisherSource{Tracks: tracks, Hubs: h}, nil
}

func rtpSourceFromProto(p *api.RtpSource) (node.Spec, error) {
	h, err := hubsFromProto(p.GetHubs())
	if err != nil {
		return nil, err
	}
	if p.GetFecColumns() > 255 || p.GetFecRows() > 255 {
		return nil, fmt.Errorf("FEC L×D %d×%d out of range", p.GetFecColumns(), p.GetFecRows())
	}
	sp := node.RTPSource{URL: p.GetUrl(), SDP: p.GetSdp(), Interface: p.GetInterface(), FECColumns: int(p.GetFecColumns()),
		FECRows: int(p.GetFecRows()), Leg2: p.GetLeg2(), Skew: time.Duration(p.GetSkewNanos()), Hubs: h}
	if sp.Backup, err = backupFromProto(p.GetBackup()); err != nil {
		return nil, err
	}
	return sp, nil
}

// addrField is one address of a spec on the wire: its name for errors, the "ip:port" string
// (empty: unset) and where it goes.
type addrField struct {
	name string
	s    string
	dst  *netip.AddrPort
}

// addrs parses a spec's addresses.
func addrs(fs ...addrField) error {
	for _, f := range fs {
		ap, err := parseAddrPort(f.s)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = ap
	}
	return nil
}

func relayFromProto(p *api.RelaySource) (node.Spec, error) {
	if math.IsNaN(p.GetPacing()) || math.IsInf(p.GetPacing(), 0) || p.GetPacing() < 0 {
		return nil, fmt.Errorf("pacing %v is not a finite number ≥ 0", p.GetPacing())
	}
	tracks, err := tracksFromProto(p.GetTracks())
	if err != nil {
		return nil, err
	}
	sp := node.RelaySource{Tracks: tracks, SSRCs: cloneOrNil(p.GetSsrcs()), SRTPKey: cloneOrNil(p.GetSrtpKey()),
		NACK: p.GetNack(), NACKWait: time.Duration(p.GetNackWaitNanos()), Skew: time.Duration(p.GetSkewNanos()),
		Pacing: p.GetPacing()}
	if err := addrs(addrField{"rtp", p.GetRtp(), &sp.RTP}, addrField{"rtcp", p.GetRtcp(), &sp.RTCP},
		addrField{"rtp2", p.GetRtp2(), &sp.RTP2}, addrField{"rtcp2", p.GetRtcp2(), &sp.RTCP2}); err != nil {
		return nil, err
	}
	if sp.NACKWait < 0 {
		return nil, errors.New("negative NACK wait")
	}
	return sp, nil
}

// trackFromProto converts a sink's or ingress's track index: int is 32 bits on some targets the
// node may be built for.
func trackFromProto(t int64) (int, error) {
	if int64(int(t)) != t {
		return 0, fmt.Errorf("track %d out of range", t)
	}
	return int(t), nil
}

func udpSinkFromProto(p *api.UdpSink) (node.Spec, error) {
	track, err := trackFromProto(p.GetTrack())
	if err != nil {
		return nil, err
	}
	sp := node.UDPSink{Track: track, Paused: p.GetPaused(), SRTPKey: cloneOrNil(p.GetSrtpKey()), NACK: p.GetNack(),
		SecondPair: p.GetSecondPair()}
	if err := addrs(addrField{"rtp", p.GetRtp(), &sp.RTP}, addrField{"rtcp", p.GetRtcp(), &sp.RTCP}); err != nil {
		return nil, err
	}
	if sp.SRTPResume, err = srtpStateFromProto(p.GetSrtpResume()); err != nil {
		return nil, fmt.Errorf("srtp resume: %w", err)
	}
	return sp, nil
}

func multicastFromProto(p *api.MulticastSink) (node.Spec, error) {
	track, err := trackFromProto(p.GetTrack())
	if err != nil {
		return nil, err
	}
	sp := node.MulticastSink{Track: track, Paused: p.GetPaused()}
	if err := addrs(addrField{"rtp", p.GetRtp(), &sp.RTP}, addrField{"rtcp", p.GetRtcp(), &sp.RTCP}); err != nil {
		return nil, err
	}
	return sp, nil
}

func ingressFromProto(p *api.UdpIngress) (node.Spec, error) {
	track, err := trackFromProto(p.GetTrack())
	if err != nil {
		return nil, err
	}
	sp := node.UDPIngress{Track: track, SRTPKey: cloneOrNil(p.GetSrtpKey())}
	if len(p.GetSrtpRocs()) > 0 {
		sp.SRTPROCs = maps.Clone(p.GetSrtpRocs())
	}
	if err := addrs(addrField{"rtp", p.GetRtp(), &sp.RTP}, addrField{"rtcp", p.GetRtcp(), &sp.RTCP}); err != nil {
		return nil, err
	}
	return sp, nil
}

func rtpSinkFromProto(p *api.RtpSink) (node.Spec, error) {
	track, err := trackFromProto(p.GetTrack())
	if err != nil {
		return nil, err
	}
	sp := node.RTPSink{Track: track, Paused: p.GetPaused()}
	if err := addrs(addrField{"rtp", p.GetRtp(), &sp.RTP}, addrField{"rtcp", p.GetRtcp(), &sp.RTCP}); err != nil {
		return nil, err
	}
	if sp.Output, err = outputFromProto(p.GetOutput()); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return sp, nil
}

func st2110SinkFromProto(p *api.St2110Sink) (node.Spec, error) {
	track, err := trackFromProto(p.GetTrack())
	if err != nil {
		return nil, err
	}
	if p.GetPayloadType() > 127 || p.GetTtl() > 255 {
		return nil, fmt.Errorf("payload type %d or TTL %d out of range", p.GetPayloadType(), p.GetTtl())
	}
	sp := node.ST2110Sink{Track: track, Fmtp: p.GetFmtp(), PayloadType: uint8(p.GetPayloadType()), TP: p.GetTp(),
		TTL: int(p.GetTtl()), SDPFile: p.GetSdpFile(), Paused: p.GetPaused()}
	if err := addrs(addrField{"video", p.GetVideo(), &sp.Video}, addrField{"leg2", p.GetLeg2(), &sp.Leg2}); err != nil {
		return nil, err
	}
	return sp, nil
}

// checkFlowStrings refuses a flow the wire cannot carry: protobuf strings must be UTF-8, and a
// message that fails to marshal would end the whole stream instead of failing one command.
func checkFlowStrings(f node.Flow) error {
	strs := map[string]string{"ID": f.ID, "stream": f.Stream}
	if err := specStrings(f.Spec, strs); err != nil {
		return fmt.Errorf("flow %q: %w", f.ID, err)
	}
	for name, s := range strs {
		if !utf8.ValidString(s) {
			return fmt.Errorf("flow %q: %s is not valid UTF-8", f.ID, name)
		}
	}
	for k, v := range f.Meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("flow %q: meta %q is not valid UTF-8", f.ID, k)
		}
	}
	return nil
}

// specStrings adds a spec's strings to strs by name and checks its tracks' media names.
func specStrings(spec node.Spec, strs map[string]string) error {
	var (
		tracks []rtp.Track
		b      *node.Backup
	)
	switch sp := spec.(type) {
	case node.DemoSource:
		b = sp.Backup
	case node.PullSource:
		strs["URL"], strs["transport"] = sp.URL, sp.Transport
		b = sp.Backup
	case node.RTPSource:
		strs["URL"], strs["SDP"], strs["RTP interface"], strs["leg 2"] = sp.URL, sp.SDP, sp.Interface, sp.Leg2
		b = sp.Backup
	case node.PublisherSource:
		tracks = sp.Tracks
	case node.RelaySource:
		tracks = sp.Tracks
	case node.ST2110Source:
		strs["SDP"], strs["ST 2110 interface"] = sp.SDP, sp.Interface
	case node.ST2110Sink:
		strs["fmtp"], strs["TP"], strs["SDP file"] = sp.Fmtp, sp.TP, sp.SDPFile
	}
	for _, t := range tracks {
		if !utf8.ValidString(t.Media) {
			return fmt.Errorf("track media %q is not valid UTF-8", t.Media)
		}
	}
	if b != nil {
		strs["backup mode"] = b.Mode
		bs := map[string]string{}
		if err := specStrings(b.Source, bs); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		for name, s := range bs {
			if !utf8.ValidString(s) {
				return fmt.Errorf("backup: %s is not valid UTF-8", name)
			}
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
