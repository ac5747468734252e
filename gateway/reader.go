package gateway

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// reader is one reader session's handle on a stream (rtsp.ReadStream).
type reader struct {
	ss     *sessions
	s      *stream
	id     string
	remote netip.Addr // the player's address, for placement
	sdp    []byte
	tracks []rtp.Track
	gone   chan struct{}

	mu sync.Mutex
	// via is the node whose copy of the stream the reader takes: the serving node of a UDP reader,
	// the local node for interleaved and multicast readers. nil until the first SETUP.
	via     *member
	flows   map[int]*readerFlow
	playing bool
	closed  bool
	// adopted readers were rebuilt from a node's report after a control restart: they have no
	// RTSP session here and end when the player stops sending RTCP for session_timeout.
	adopted bool
	// output is the route output this reader is (output.go), nil for RTSP readers.
	output *config.Output
	// conn is the RTSP connection the reader came on (zero for outputs and adopted readers) and
	// started when, for the operations view (opsview.go).
	conn    rtsp.ConnInfo
	started time.Time
}

type readerFlow struct {
	id        string
	multicast bool
	tcp       bool
	flow      node.Flow
}

func (r *reader) SDP() []byte            { return r.sdp }
func (r *reader) Tracks() []rtp.Track    { return r.tracks }
func (r *reader) Done() <-chan struct{}  { return r.gone }
func (r *reader) trackOK(track int) bool { return track >= 0 && track < len(r.tracks) }

// attach picks the node the reader takes the stream from on its first SETUP and makes the stream
// available there. want is nil for UDP (placement decides) or the local node. It holds r.mu.
func (r *reader) attachLocked(ctx context.Context, want *member, dst netip.Addr) (*member, error) {
	if r.via != nil {
		if want != nil && r.via != want {
			return nil, rtsp.Errorf(rtsp.StatusUnsupportedTransp, "mixing interleaved or multicast with UDP tracks served by node %s is not supported", r.via.name)
		}
		return r.via, nil
	}
	m := want
	if m == nil {
		r.ss.mu.Lock()
		m = r.ss.place.servingLocked(r.s, dst, nil)
		r.ss.mu.Unlock()
	}
	if err := r.ss.relays.ensure(ctx, r.s, m); err != nil {
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "relay to node " + m.name, Err: err}
	}
	r.via = m
	return m, nil
}

func (r *reader) SetupUDP(ctx context.Context, track int, rtpDst, rtcpDst netip.AddrPort) (rtsp.UDPSetup, error) {
	return r.setupUDP(ctx, track, rtpDst, rtcpDst, nil)
}

// SRTPMode implements rtsp.SRTPStream.
func (r *reader) SRTPMode() rtsp.SRTPMode { return srtpMode(r.s.route) }

// SetupSRTPUDP implements rtsp.SRTPStream: the sink flow carries the reader's key to whichever
// node serves it.
func (r *reader) SetupSRTPUDP(ctx context.Context, track int, rtpDst, rtcpDst netip.AddrPort, p rtsp.SRTPParams) (rtsp.UDPSetup, error) {
	return r.setupUDP(ctx, track, rtpDst, rtcpDst, p.Key[:])
}

func (r *reader) setupUDP(ctx context.Context, track int, rtpDst, rtcpDst netip.AddrPort, key []byte) (rtsp.UDPSetup, error) {
	if !r.trackOK(track) {
		return rtsp.UDPSetup{}, rtsp.Errorf(rtsp.StatusNotFound, "no track %d", track)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.attachLocked(ctx, nil, rtpDst.Addr())
	if err != nil {
		return rtsp.UDPSetup{}, err
	}
	f := node.Flow{ID: newID("rd"), Version: 1, Stream: r.s.id,
		Spec: node.UDPSink{Track: track, RTP: rtpDst, RTCP: rtcpDst, Paused: true, SRTPKey: key},
		Meta: map[string]string{metaRole: roleReader, metaRoute: r.s.path, metaSession: r.id, metaReader: r.remote.String()}}
	st, err := m.n.Apply(ctx, f)
	if err != nil {
		return rtsp.UDPSetup{}, errStatus("reader sink on node "+m.name, err)
	}
	r.flows[track] = &readerFlow{id: f.ID, flow: f}
	return rtsp.UDPSetup{Source: st.Source, RTPPort: st.RTPPort, RTCPPort: st.RTCPPort, SSRC: st.SSRC}, nil
}

func (r *reader) SetupMulticast(ctx context.Context, track int) (rtsp.MulticastSetup, error) {
	if !r.trackOK(track) {
		return rtsp.MulticastSetup{}, rtsp.Errorf(rtsp.StatusNotFound, "no track %d", track)
	}
	mc := r.ss.cfg.RTSP.Multicast
	r.ss.mu.Lock()
	group, ok := r.ss.streams.groupLocked(r.s)
	r.ss.mu.Unlock()
	if !ok {
		return rtsp.MulticastSetup{}, rtsp.Errorf(rtsp.StatusNotEnoughBandwidth, "multicast range %s is exhausted", mc.Range)
	}
	r.mu.Lock()
	_, err := r.attachLocked(ctx, r.ss.place.local, netip.Addr{})
	r.mu.Unlock()
	if err != nil {
		return rtsp.MulticastSetup{}, err
	}
	hub, err := r.ss.node.Hub(r.s.id, track)
	if err != nil {
		return rtsp.MulticastSetup{}, errStatus("multicast track", err)
	}
	r.mu.Lock()
	r.flows[track] = &readerFlow{multicast: true}
	r.mu.Unlock()
	port := mc.Port + 2*track
	return rtsp.MulticastSetup{Group: group, RTPPort: port, RTCPPort: port + 1, TTL: mc.TTL, SSRC: hub.SSRC()}, nil
}

func (r *reader) SetupTCP(ctx context.Context, track int) (*rtp.Hub, error) {
	if !r.trackOK(track) {
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no track %d", track)
	}
	r.mu.Lock()
	_, err := r.attachLocked(ctx, r.ss.place.local, netip.Addr{})
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h, err := r.ss.node.Hub(r.s.id, track)
	if err != nil {
		return nil, errStatus("interleaved track", err)
	}
	r.mu.Lock()
	r.flows[track] = &readerFlow{tcp: true}
	r.mu.Unlock()
	return h, nil
}

func (r *reader) Play(ctx context.Context) ([]rtsp.TrackPosition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos := make([]rtsp.TrackPosition, len(r.tracks))
	for track, rf := range r.flows {
		switch {
		case rf.multicast:
			st, err := r.ss.joinMulticast(ctx, r.s, track)
			if err != nil {
				return nil, err
			}
			pos[track] = rtsp.TrackPosition{Seq: st.NextSeq, TS: st.NextTS, OK: st.PosOK}
		case rf.tcp:
			if h, err := r.ss.node.Hub(r.s.id, track); err == nil {
				seq, ts, ok := h.NextSeqTS()
				pos[track] = rtsp.TrackPosition{Seq: seq, TS: ts, OK: ok}
			}
		default:
			rf.flow = rf.flow.WithPaused(false)
			rf.flow.Version++
			st, err := r.via.n.Apply(ctx, rf.flow)
			if err != nil {
				return nil, errStatus("start reader sink", err)
			}
			pos[track] = rtsp.TrackPosition{Seq: st.NextSeq, TS: st.NextTS, OK: st.PosOK}
		}
	}
	r.playing = true
	return pos, nil
}

func (r *reader) Pause(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.playing {
		return nil
	}
	for track, rf := range r.flows {
		switch {
		case rf.multicast:
			r.ss.leaveMulticast(r.s, track)
		case rf.tcp:
		default:
			rf.flow = rf.flow.WithPaused(true)
			rf.flow.Version++
			if _, err := r.via.n.Apply(ctx, rf.flow); err != nil {
				return errStatus("pause reader sink", err)
			}
		}
	}
	r.playing = false
	return nil
}

func (r *reader) LastActivity() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.flows))
	for _, rf := range r.flows {
		if rf.id != "" {
			ids = append(ids, rf.id)
		}
	}
	if r.via == nil {
		return time.Time{}
	}
	return lastActivity(r.via.n, ids)
}

func (r *reader) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	flows := r.flows
	playing := r.playing
	via := r.via
	r.flows = nil
	r.mu.Unlock()
	r.ss.mu.Lock()
	delete(r.s.rdrs, r)
	// A detached control leaves remote flows running for the next control to adopt.
	keep := r.ss.detached && via != nil && !via.local
	r.ss.mu.Unlock()
	ctx := context.Background()
	if via != nil && !keep {
		r.logReception(via, flows)
	}
	for track, rf := range flows {
		switch {
		case rf.multicast:
			if playing {
				r.ss.leaveMulticast(r.s, track)
			}
		case rf.id != "" && !keep && via.isAlive():
			if err := via.n.Delete(ctx, rf.id); err != nil && !errors.Is(err, node.ErrNotFound) {
				r.ss.log.Error("delete reader sink", "node", via.name, "flow", rf.id, "err", err)
			}
		}
	}
	if via != nil && !keep {
		r.ss.relays.release(r.s, via)
	}
	r.ss.streams.releaseReader(r.s)
}

// logReception logs what a leaving UDP reader's RTCP receiver reports said about each track
// (from its node's last stats): the loss, jitter and round trip the player saw.
func (r *reader) logReception(via *member, flows map[int]*readerFlow) {
	for track, rf := range flows {
		if rf.id == "" || rf.multicast || rf.tcp {
			continue
		}
		st, err := via.n.Stats(rf.id)
		if err != nil || st.Reception == nil {
			continue
		}
		rr := st.Reception
		r.ss.log.Info("reader reception", "route", r.s.path, "reader", r.remote, "node", via.name, "track", track,
			"reports", rr.Reports, "lost", rr.CumulativeLost, "fraction_lost", rr.FractionLost,
			"jitter", rr.Jitter.Round(10*time.Microsecond), "rtt", rr.RTT.Round(10*time.Microsecond))
	}
}

// joinMulticast counts one more multicast player of a track; the first starts the group's sink.
func (ss *sessions) joinMulticast(ctx context.Context, s *stream, track int) (node.FlowStatus, error) {
	ss.mu.Lock()
	mf := s.mcastFlows[track]
	if mf == nil {
		mf = &mcastFlow{id: newID("mc")}
		s.mcastFlows[track] = mf
	}
	mf.players++
	first := mf.players == 1
	group := s.group
	ss.mu.Unlock()
	mc := ss.cfg.RTSP.Multicast
	port := uint16(mc.Port + 2*track)
	f := node.Flow{ID: mf.id, Version: 0, Stream: s.id,
		Spec: node.MulticastSink{Track: track, RTP: netip.AddrPortFrom(group, port), RTCP: netip.AddrPortFrom(group, port+1)}}
	st, err := ss.node.Apply(ctx, f) // idempotent for later players: returns the position
	if err != nil {
		ss.leaveMulticast(s, track)
		return st, errStatus("multicast sink", err)
	}
	if first {
		ss.log.Info("multicast started", "route", s.path, "track", track, "group", group, "port", port)
	}
	return st, nil
}

func (ss *sessions) leaveMulticast(s *stream, track int) {
	ss.mu.Lock()
	mf := s.mcastFlows[track]
	if mf == nil {
		ss.mu.Unlock()
		return
	}
	mf.players--
	last := mf.players <= 0
	if last {
		delete(s.mcastFlows, track)
	}
	ss.mu.Unlock()
	if last {
		if err := ss.node.Delete(context.Background(), mf.id); err != nil {
			ss.log.Error("delete multicast sink", "err", err)
		}
	}
}
