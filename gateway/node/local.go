package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/nack"
	"github.com/meshgw/meshgw/rtp/srtp"
	"github.com/meshgw/meshgw/rtsp/demo"
)

// ErrNotFound is returned for a flow or stream the node does not have.
var ErrNotFound = errors.New("not found")

// LocalConfig configures an in-process node.
type LocalConfig struct {
	Name string
	// UDP is the node's shared RTP/RTCP socket pair configuration.
	UDP    rtp.UDPConfig
	Events Events
	Logger *slog.Logger
	// Advertise is the data address readers and other nodes reach this node at. When valid it is
	// every FlowStatus.Source, as the pair's bound address may be a wildcard or a private address
	// behind NAT.
	Advertise netip.Addr
	// ReportInterval is the mean interval of the receiver reports the node sends its UDP
	// publishers (0: DefaultReportInterval).
	ReportInterval time.Duration
	// LiveLive, when set, opens a second socket pair on the node's second network
	// (node.live_live_address): relays between two such nodes run over both networks as the two
	// legs of SMPTE 2022-7 (UDPSink.SecondPair, RelaySource.RTP2).
	LiveLive *rtp.UDPConfig
}

// Local is a node inside the control's process: it serves UDP readers and publishers from its
// socket pair, and gives the control's RTSP connections direct access to hubs for interleaved
// (TCP) transport.
type Local struct {
	name      string
	udp       *rtp.UDPPair
	udp2      *rtp.UDPPair // the live-live pair, nil without
	pool      *rtp.Pool
	events    Events
	log       *slog.Logger
	advertise netip.Addr

	clipOnce sync.Once
	clip     *demo.Clip
	clipErr  error

	mu      sync.Mutex
	streams map[string]*nodeStream
	flows   map[string]*flow
	peers   map[peerKey]*peer
	nflows  uint64 // flows ever created, for Flows' order
	closed  bool
	done    chan struct{} // closed by Close: ends reportLoop
	wg      sync.WaitGroup
	// after holds event reports queued under the lock, delivered once it is released
	after []func()
}

// nodeStream is a stream's hubs on this node and the source feeding them.
type nodeStream struct {
	id     string
	hubs   []*rtp.Hub
	tracks []rtp.Track
	source *flow // the source flow, nil while none
	// cont is the lines the next hubs made for the stream continue (Hubs.Continue), once
	cont []rtp.LinePos
	// live is hubs published for the source's packet path, which must not take the node's lock
	// per packet.
	live atomic.Pointer[[]*rtp.Hub]
}

// liveHub returns a track's hub for the packet path, nil when the track does not exist.
func (s *nodeStream) liveHub(track int) *rtp.Hub {
	hp := s.live.Load()
	if hp == nil || track < 0 || track >= len(*hp) {
		return nil
	}
	return (*hp)[track]
}

// flow is one flow on the node: its spec as last applied, the runner of its kind (runner.go) and
// the pieces the node's shared code (peers, reports, repair) reaches.
type flow struct {
	spec   Flow
	run    runner
	role   role
	seq    uint64 // creation order
	stream *nodeStream
	// sinks: the hub, what the flow hangs on it (hubSink: an output, the relay history in front
	// of a UDP sink, the UDP sink itself; added while it hangs there) and how it is closed
	// (without the node's lock); sink is the flow's UDP sink, if any
	hub       *rtp.Hub
	hubSink   rtp.Sink
	added     bool
	closeSink func()
	sink      *rtp.UDPSink
	srtpOut   bool // the UDP sink protects with SRTP: its reader's reports are encrypted
	// srtp unprotects an SRTP publisher's ingress or an encrypted relay (nil: plain). Only the
	// pair's two read goroutines use it (RTP and RTCP, which it keeps apart); a relay
	// re-pointed with a new key swaps it.
	srtp atomic.Pointer[srtp.Unprotector]
	// srtp2 unprotects the SRTCP of a live-live relay's second leg (each leg's reports have their
	// own index); the legs' SRTP share srtp under llmu (livelive.go).
	srtp2 atomic.Pointer[srtp.Unprotector]
	llmu  sync.Mutex
	// ingress / RTCP liveness: unix nanos of the last packet from the peer
	last atomic.Int64
	// pkts and bytes count ingress packets (RTP payload and header; SRTP after unprotect); errs
	// are packets refused
	// (malformed relay packets, SRTP that failed, replays of an rtsps:// pull)
	pkts, bytes, errs atomic.Uint64
	// repair.go: a NACK relay sink's history; a NACK relay source's per-track repair and its
	// feedback sinks to the upstream's RTCP address (the second over the second pair,
	// livelive.go).
	hist *nack.History
	rx   []*nack.Repairer
	fb   nack.Feedback
	// livelive.go: a two-leg relay source's per-track merges
	mg []*rtp.Merge
	// a relay source's per-track chains (setRelayChains): the heads its peers write into, in2
	// those of the second leg (nil without merges)
	in, in2 []rtp.Writer
	// rr is what the reader of a UDP sink reports about its line (peer.go noteReports)
	rrMu sync.Mutex
	rr   rtp.ReceptionStats
	// up sends a plain UDP publisher's ingress its receiver reports (reports.go)
	up *upstreamReports
}

// NewLocal opens the node's UDP socket pair (two with LiveLive).
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = "local"
	}
	if cfg.UDP.Logger == nil {
		cfg.UDP.Logger = cfg.Logger
	}
	udp, err := rtp.ListenUDP(cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	var udp2 *rtp.UDPPair
	if cfg.LiveLive != nil {
		lc := *cfg.LiveLive
		if lc.Logger == nil {
			lc.Logger = cfg.Logger
		}
		if udp2, err = rtp.ListenUDP(lc); err != nil {
			udp.Close()
			return nil, fmt.Errorf("node %s: live-live pair: %w", cfg.Name, err)
		}
	}
	n := &Local{
		name: cfg.Name, udp: udp, udp2: udp2, pool: rtp.NewPool(), events: cfg.Events, advertise: cfg.Advertise,
		log:     cfg.Logger.With("node", cfg.Name),
		streams: map[string]*nodeStream{}, flows: map[string]*flow{}, peers: map[peerKey]*peer{},
		done: make(chan struct{}),
	}
	interval := cfg.ReportInterval
	if interval <= 0 {
		interval = DefaultReportInterval
	}
	n.wg.Add(1)
	go n.reportLoop(interval)
	return n, nil
}

// Name implements Node.
func (n *Local) Name() string { return n.name }

// UDP exposes the node's socket pair (ports for logs and tests).
func (n *Local) UDP() *rtp.UDPPair { return n.udp }

// LiveLiveUDP returns the node's second socket pair (LocalConfig.LiveLive), nil without one.
func (n *Local) LiveLiveUDP() *rtp.UDPPair { return n.udp2 }

// pair returns the socket pair of the first or second network.
func (n *Local) pair(second bool) *rtp.UDPPair {
	if second {
		return n.udp2
	}
	return n.udp
}

// Hub gives the hub of a stream's track to the control's interleaved sessions.
func (n *Local) Hub(stream string, track int) (*rtp.Hub, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.streams[stream]
	if s == nil || s.hubs == nil {
		return nil, fmt.Errorf("stream %s: %w", stream, ErrNotFound)
	}
	if track < 0 || track >= len(s.hubs) {
		return nil, fmt.Errorf("stream %s has no track %d: %w", stream, track, ErrNotFound)
	}
	return s.hubs[track], nil
}

// Apply implements Node.
func (n *Local) Apply(ctx context.Context, f Flow) (FlowStatus, error) {
	if err := f.Validate(); err != nil {
		return FlowStatus{}, err
	}
	f = f.clone() // the caller keeps its slices and maps
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return FlowStatus{}, errors.New("node is closed")
	}
	if old := n.flows[f.ID]; old != nil {
		st, err := n.updateLocked(old, f)
		after := n.after
		n.after = nil
		n.mu.Unlock()
		for _, fn := range after {
			fn()
		}
		return st, err
	}
	r, role, err := newRunner(f)
	if err != nil {
		n.mu.Unlock()
		return FlowStatus{}, err
	}
	fl := &flow{spec: f, run: r, role: role}
	var st FlowStatus
	start, err := r.start(n, fl)
	if err == nil {
		st = n.statusLocked(fl)
	}
	n.mu.Unlock()
	if err != nil {
		return FlowStatus{}, fmt.Errorf("node %s: apply %s %s: %w", n.name, f.Kind(), f.ID, err)
	}
	if start != nil {
		start()
	}
	return st, nil
}

func (n *Local) stream(id string) *nodeStream {
	s := n.streams[id]
	if s == nil {
		s = &nodeStream{id: id}
		n.streams[id] = s
	}
	return s
}

func (n *Local) demoClip() (*demo.Clip, error) {
	n.clipOnce.Do(func() { n.clip, n.clipErr = demo.Load() })
	return n.clip, n.clipErr
}

// setHubsLocked gives a stream hubs for tracks, keeping the existing ones when the layout is the
// same so readers stay on one continuous line. It reports whether the hubs were replaced.
//
// relaySSRCs, for a relay source, makes new hubs transparent with those SSRCs (the upstream
// hubs'). An existing hub already carrying its relay SSRC is not restarted: the relayed line is
// continuous by itself, and the hub's own epoch checks see where it is not.
func (n *Local) setHubsLocked(s *nodeStream, tracks []rtp.Track, pacing float64, relaySSRCs []uint32) (replaced bool) {
	if s.hubs != nil && sameLayout(s.tracks, tracks) {
		for i, h := range s.hubs {
			if relaySSRCs != nil && h.SSRC() == relaySSRCs[i] {
				continue
			}
			h.SourceRestarted()
		}
		return false
	}
	replaced = s.hubs != nil
	for _, h := range s.hubs {
		h.Close()
	}
	s.tracks = append([]rtp.Track(nil), tracks...)
	s.hubs = make([]*rtp.Hub, len(tracks))
	cont := s.cont
	s.cont = nil // a later layout change starts new lines
	for i, t := range tracks {
		cfg := rtp.HubConfig{Track: t, Pool: n.pool, Logger: n.log, Pacing: pacing}
		switch {
		case relaySSRCs != nil:
			cfg.SSRC, cfg.Transparent = relaySSRCs[i], true
		case len(cont) == len(tracks):
			cfg.SSRC, cfg.Continue = cont[i].SSRC, &cont[i]
		}
		s.hubs[i] = rtp.NewHub(cfg)
	}
	hubs := append([]*rtp.Hub(nil), s.hubs...)
	s.live.Store(&hubs)
	// sinks of the old layout are gone with their hubs
	for _, f := range n.flows {
		if f.stream == s && f.hub != nil && replaced {
			f.added = false
			f.hub = nil
		}
	}
	return replaced
}

func sameLayout(a, b []rtp.Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// addFlowLocked records a new flow.
func (n *Local) addFlowLocked(fl *flow) {
	n.nflows++
	fl.seq = n.nflows
	n.flows[fl.spec.ID] = fl
}

func (n *Local) statusLocked(fl *flow) FlowStatus {
	st := FlowStatus{Source: n.udp.LocalAddr(), RTPPort: n.udp.RTPPort(), RTCPPort: n.udp.RTCPPort()}
	switch {
	case n.advertise.IsValid():
		st.Source = n.advertise
	case st.Source.IsUnspecified():
		st.Source = netip.Addr{}
	}
	if fl.hub != nil {
		st.SSRC = fl.hub.SSRC()
		st.NextSeq, st.NextTS, st.PosOK = fl.hub.NextSeqTS()
	}
	if r, ok := fl.run.(interface{ status(*FlowStatus) }); ok {
		r.status(&st) // an ingress hides the hub's SSRC
	}
	return st
}

func (n *Local) updateLocked(fl *flow, f Flow) (FlowStatus, error) {
	if f.Kind() != fl.spec.Kind() || f.Stream != fl.spec.Stream || f.Track() != fl.spec.Track() {
		return FlowStatus{}, fmt.Errorf("node %s: flow %s exists as %s of %s; only Paused may change", n.name, f.ID, fl.spec.Kind(), fl.spec.Stream)
	}
	if f.Version != 0 && f.Version <= fl.spec.Version {
		// a retried command, or a stale one that arrived late: the state stands
		return n.statusLocked(fl), nil
	}
	if err := fl.run.update(n, fl, f); err != nil {
		return FlowStatus{}, err
	}
	return n.statusLocked(fl), nil
}

// checkSecondPair refuses a flow that needs the live-live pair on a node without one.
func (n *Local) checkSecondPair(needed bool) error {
	if needed && n.udp2 == nil {
		return errors.New("this node has no second network for a live-live relay (node.live_live_address)")
	}
	return nil
}

// setUnprotect gives an ingress or relay flow the unprotector of key (none without one) with the
// rollover counters rocs, and a relay with a second leg a second one for it.
func (fl *flow) setUnprotect(id string, key []byte, rocs map[uint32]uint32, second bool) error {
	if len(key) == 0 {
		fl.srtp.Store(nil)
		fl.srtp2.Store(nil)
		return nil
	}
	k, err := srtp.KeyFromBytes(key)
	if err != nil {
		return fmt.Errorf("flow %s: %w", id, err)
	}
	un, err := srtp.NewUnprotector(k, rocs)
	if err != nil {
		return fmt.Errorf("flow %s: %w", id, err)
	}
	var un2 *srtp.Unprotector
	if second {
		if un2, err = srtp.NewUnprotector(k, rocs); err != nil {
			return fmt.Errorf("flow %s: %w", id, err)
		}
	}
	fl.srtp.Store(un)
	fl.srtp2.Store(un2)
	return nil
}

// lines are where hubs' output lines stand; nil unless every hub has sent.
func lines(hubs []*rtp.Hub) []rtp.LinePos {
	var out []rtp.LinePos
	for _, h := range hubs {
		p, ok := h.Line()
		if !ok {
			return nil
		}
		out = append(out, p)
	}
	return out
}

// Delete implements Node. Deleting an unknown flow is not an error: commands are idempotent.
func (n *Local) Delete(ctx context.Context, id string) error {
	n.mu.Lock()
	fl := n.flows[id]
	if fl == nil {
		n.mu.Unlock()
		return nil
	}
	delete(n.flows, id)
	stop := n.teardownLocked(fl)
	n.mu.Unlock()
	stop()
	return nil
}

// teardownLocked detaches a flow and returns what must run without the lock (stopping a source
// waits for its goroutine, which may be calling back into the node).
func (n *Local) teardownLocked(fl *flow) func() { return fl.run.stop(n, fl) }

// dropOrphanLocked forgets a stream left with neither source nor sinks (its publisher went and
// then its last reader) and returns the closing of its hubs.
func (n *Local) dropOrphanLocked(s *nodeStream) func() {
	if s.source != nil || n.streamHasSinksLocked(s) || n.streams[s.id] != s {
		return func() {}
	}
	hubs := s.hubs
	s.hubs, s.tracks = nil, nil
	s.live.Store(nil)
	delete(n.streams, s.id)
	return func() {
		for _, h := range hubs {
			h.Close()
		}
	}
}

func (n *Local) streamHasSinksLocked(s *nodeStream) bool {
	for _, f := range n.flows {
		if f.stream == s && f.role == roleSink {
			return true
		}
	}
	return false
}

// Stats implements Node.
func (n *Local) Stats(id string) (FlowStats, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fl := n.flows[id]
	if fl == nil {
		return FlowStats{}, fmt.Errorf("flow %s: %w", id, ErrNotFound)
	}
	st := fl.run.stats(n, fl)
	if fl.role == roleSource && fl.stream.source == fl {
		st.Lines = lines(fl.stream.hubs)
	}
	return st, nil
}

// Flows lists every flow the node holds as last applied (sources first, then the rest, each in
// creation order), so a node can report its state to a control that restarted. The flows are
// copies.
func (n *Local) Flows() []Flow {
	n.mu.Lock()
	fls := make([]*flow, 0, len(n.flows))
	for _, fl := range n.flows {
		fls = append(fls, fl)
	}
	slices.SortFunc(fls, func(a, b *flow) int {
		if sa, sb := a.role == roleSource, b.role == roleSource; sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]Flow, len(fls))
	for i, fl := range fls {
		out[i] = fl.spec.clone()
	}
	n.mu.Unlock()
	return out
}

// Close stops every flow and the node's sockets.
func (n *Local) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	var stops []func()
	// sinks first so sources can release their hubs
	for id, fl := range n.flows {
		if fl.role != roleSource {
			stops = append(stops, n.teardownLocked(fl))
			delete(n.flows, id)
		}
	}
	for id, fl := range n.flows {
		stops = append(stops, n.teardownLocked(fl))
		delete(n.flows, id)
	}
	var hubs []*rtp.Hub
	for _, s := range n.streams {
		hubs = append(hubs, s.hubs...)
	}
	n.streams = map[string]*nodeStream{}
	n.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	n.wg.Wait()
	for _, h := range hubs {
		h.Close()
	}
	err := n.udp.Close()
	if n.udp2 != nil {
		err = errors.Join(err, n.udp2.Close())
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", n.name, err)
	}
	return nil
}
