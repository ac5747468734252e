package gateway

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// publication is one publisher session's handle on its stream (rtsp.PublishStream).
type publication struct {
	ss     *sessions
	s      *stream
	sdp    []byte
	tracks []rtp.Track
	kicked chan struct{}
	// conn is the publisher's RTSP connection and started when, for the operations view.
	conn    rtsp.ConnInfo
	started time.Time

	mu     sync.Mutex
	flows  []string
	closed bool
}

// openPublish takes a publisher's ANNOUNCE (Control.OpenPublish): the stream's source becomes a
// publisher source on the local node.
func (ss *sessions) openPublish(ctx context.Context, ci rtsp.ConnInfo, path string, sdp []byte, tracks []rtp.Track) (rtsp.PublishStream, error) {
	r, ok := ss.cfg.Match(path)
	if !ok {
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no route matches %q", path)
	}
	if r.Source != config.SourcePublisher {
		return nil, rtsp.Errorf(405, "route %q takes its stream from %s, not from publishers", path, r.Source)
	}
	// An adopted stream of the route keeps its ID and flows only if the publisher comes after
	// the adoption; before it, the publisher would make a new stream the adoption then refuses.
	s, err := ss.lockStream(ctx, r, path)
	if err != nil {
		return nil, err
	}
	var old *publication
	if s.publisher != nil {
		if !r.OverridePublisher {
			ss.mu.Unlock()
			return nil, rtsp.Errorf(rtsp.StatusConflict, "route %q is already being published", path)
		}
		old = s.publisher
	}
	p := &publication{ss: ss, s: s, sdp: sdp, tracks: tracks, kicked: make(chan struct{}), conn: ci, started: time.Now()}
	s.publisher = p
	flowID := s.sourceFlow
	if flowID == "" {
		flowID = newID("pub")
		s.sourceFlow = flowID
	}
	s.ingest = ss.place.local
	ss.mu.Unlock()
	if old != nil {
		ss.log.Info("publisher replaced", "route", path, "by", ci.Remote)
		old.kick()
	}
	// One source flow per stream for its whole life: a returning publisher with the same tracks
	// continues the readers' line instead of starting a new one.
	_, err = ss.node.Apply(ctx, node.Flow{ID: flowID, Version: uint64(time.Now().UnixNano()), Stream: s.id,
		Spec: node.PublisherSource{Tracks: tracks, Hubs: node.Hubs{Pacing: s.route.Pacing}}})
	if err != nil {
		p.Close()
		return nil, errStatus("publisher source", err)
	}
	ss.log.Info("publisher announced", "route", path, "remote", ci.Remote, "tracks", len(tracks))
	return p, nil
}

func (p *publication) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.kicked:
	default:
		close(p.kicked)
	}
}

func (p *publication) Done() <-chan struct{} { return p.kicked }

func (p *publication) SetupUDP(ctx context.Context, track int, rtpSrc, rtcpSrc netip.AddrPort) (rtsp.UDPSetup, error) {
	return p.setupUDP(ctx, track, rtpSrc, rtcpSrc, nil)
}

// SRTPMode implements rtsp.SRTPStream.
func (p *publication) SRTPMode() rtsp.SRTPMode { return srtpMode(p.s.route) }

// SetupSRTPUDP implements rtsp.SRTPStream: the ingress unprotects with the publisher's key.
func (p *publication) SetupSRTPUDP(ctx context.Context, track int, rtpSrc, rtcpSrc netip.AddrPort, sp rtsp.SRTPParams) (rtsp.UDPSetup, error) {
	return p.setupUDP(ctx, track, rtpSrc, rtcpSrc, &sp)
}

func (p *publication) setupUDP(ctx context.Context, track int, rtpSrc, rtcpSrc netip.AddrPort, sp *rtsp.SRTPParams) (rtsp.UDPSetup, error) {
	if track < 0 || track >= len(p.tracks) {
		return rtsp.UDPSetup{}, rtsp.Errorf(rtsp.StatusNotFound, "no track %d", track)
	}
	in := node.UDPIngress{Track: track, RTP: rtpSrc, RTCP: rtcpSrc}
	if sp != nil {
		in.SRTPKey, in.SRTPROCs = sp.Key[:], sp.ROCs
	}
	f := node.Flow{ID: newID("in"), Version: 1, Stream: p.s.id, Spec: in}
	st, err := p.ss.node.Apply(ctx, f)
	if err != nil {
		return rtsp.UDPSetup{}, errStatus("publisher ingress", err)
	}
	p.mu.Lock()
	p.flows = append(p.flows, f.ID)
	p.mu.Unlock()
	return rtsp.UDPSetup{Source: st.Source, RTPPort: st.RTPPort, RTCPPort: st.RTCPPort}, nil
}

func (p *publication) Hub(track int) (*rtp.Hub, error) {
	h, err := p.ss.node.Hub(p.s.id, track)
	if err != nil {
		return nil, errStatus("publisher track", err)
	}
	return h, nil
}

func (p *publication) Record(ctx context.Context) error {
	p.ss.mu.Lock()
	defer p.ss.mu.Unlock()
	if p.s.publisher != p {
		return rtsp.Errorf(rtsp.StatusConflict, "this publisher was replaced")
	}
	p.ss.streams.publishedLocked(p.s, p.sdp, p.tracks)
	p.ss.log.Info("publisher recording", "route", p.s.path)
	return nil
}

func (p *publication) LastActivity() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return lastActivity(p.ss.node, p.flows)
}

// lastActivity is the latest sign of life among a session's flows on the node.
func lastActivity(n node.Node, ids []string) time.Time {
	var last time.Time
	for _, id := range ids {
		if st, err := n.Stats(id); err == nil && st.LastActivity.After(last) {
			last = st.LastActivity
		}
	}
	return last
}

func (p *publication) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	flows := p.flows
	p.flows = nil
	p.mu.Unlock()
	for _, id := range flows {
		_ = p.ss.node.Delete(context.Background(), id)
	}
	ss := p.ss
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := p.s
	if s.publisher != p {
		return
	}
	s.publisher = nil
	ss.log.Info("publisher left", "route", s.path)
	if s.readers == 0 {
		ss.streams.dropLocked(s)
		return
	}
	// readers stay and continue on the same line if a publisher with the same tracks returns
}

// srtpMode maps a route's srtp: setting to the front door's policy.
func srtpMode(r config.Route) rtsp.SRTPMode {
	switch r.SRTP {
	case config.SRTPOptional:
		return rtsp.SRTPOptional
	case config.SRTPRequired:
		return rtsp.SRTPRequired
	}
	return rtsp.SRTPOff
}
