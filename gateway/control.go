// Package gateway is meshgw's control: it turns the route table into live streams, decides which
// node carries what, and steers nodes through flows. The RTSP front door (package rtsp) asks it for
// streams; nodes (package gateway/node) report back what their sources do.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// LocalNode is the node embedded in the control's process: a Node that also lends hubs to the
// control's interleaved (TCP) sessions.
type LocalNode interface {
	node.Node
	Hub(stream string, track int) (*rtp.Hub, error)
}

// Control owns routes and streams and steers the nodes: its embedded local node and the remote
// nodes that attach to it.
type Control struct {
	cfg  *config.Config
	node LocalNode
	log  *slog.Logger

	mu      sync.Mutex
	streams map[string]*stream // by route path
	mcast   *groupAllocator
	members map[string]*member // by node name, the local node included
	local   *member
	closed  bool
	// detached: the control is shutting down but its remote nodes keep every flow, so readers
	// fed by them keep playing and a new control can adopt them.
	detached bool
	// started: always-on sources have been started (after the startup grace, in the cluster).
	started bool
	done    chan struct{}
	wg      sync.WaitGroup

	// adopted is closed when FinishAdoption has rebuilt the state from the nodes' reports; nil
	// when there is no startup grace (nothing to wait for). graceEnd is when the grace ends.
	// Both are set before the front door opens and never change after (grace.go).
	adopted  chan struct{}
	graceEnd time.Time
}

// stream is the control's view of one live (or starting) instance of a route.
type stream struct {
	id    string
	path  string
	route config.Route

	// ready is closed when the source first delivered a description.
	ready  chan struct{}
	isUp   bool
	sdp    []byte
	tracks []rtp.Track
	// gone is closed when readers of the current layout must end.
	gone chan struct{}

	sourceFlow string
	// ingest is the node carrying the source; sourceUp is closed when it reported ready.
	ingest   *member
	sourceUp chan struct{}
	readers  int
	// rdrs are the stream's readers, for moving them when their node fails.
	rdrs map[*reader]struct{}

	// relayMu serialises relay changes (which wait on nodes) without holding the control's lock.
	relayMu   sync.Mutex
	relays    map[string]*relay // by far node name
	idle      *time.Timer
	publisher *publication

	// multicast: group and per-track sink flows shared by multicast readers
	group      netip.Addr
	mcastFlows map[int]*mcastFlow

	// outputs are the route's outputs (output.go) by index; outMu serialises their changes.
	outputs map[int]*reader
	outMu   sync.Mutex
}

type mcastFlow struct {
	id      string
	players int
}

// New builds the control over a local node. Start sources with Start.
func New(cfg *config.Config, n LocalNode, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	local := &member{name: cfg.Node.Name, n: &nodeRef{cur: n}, local: true}
	local.alive.Store(true)
	if a := cfg.Node.DataAddress; a.IsValid() {
		local.info.Data = a
	}
	return &Control{
		cfg: cfg, node: n, log: log, streams: map[string]*stream{},
		mcast:   newGroupAllocator(cfg.RTSP.Multicast.Range),
		members: map[string]*member{local.name: local}, local: local,
		done: make(chan struct{}),
	}
}

// SetLocalPorts tells the control where its local node's socket pair is, so relays to and from
// it know where to send. addr may be invalid when node.data_address is not set.
func (c *Control) SetLocalPorts(addr netip.Addr, rtpPort, rtcpPort int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr.IsValid() && !addr.IsUnspecified() && !c.local.info.Data.IsValid() {
		c.local.info.Data = addr.Unmap()
	}
	c.local.info.RTPPort, c.local.info.RTCPPort = rtpPort, rtcpPort
}

// SetLocalLiveLive tells the control where its local node's second socket pair is
// (node.live_live_address), so live-live relays to and from it know where their second leg goes.
func (c *Control) SetLocalLiveLive(addr netip.Addr, rtpPort, rtcpPort int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local.info.LiveLive = addr.Unmap()
	c.local.info.LiveLiveRTPPort, c.local.info.LiveLiveRTCPPort = rtpPort, rtcpPort
}

// Start brings up every always-on source (non-regex routes with a demo or pull source and no
// on_demand) that no node already carries.
func (c *Control) Start(ctx context.Context) error {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	for _, r := range c.cfg.Routes {
		// outputs are readers that never leave: their route runs from the start
		if r.Regexp != nil || (r.OnDemand && len(r.Outputs) == 0) || r.Source == config.SourcePublisher {
			continue
		}
		c.mu.Lock()
		s := c.streamLocked(r.Name, r)
		err := c.startSourceLocked(ctx, s)
		c.ensureOutputsLocked(s) // adopted streams that are up already
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
	}
	return nil
}

// Detach marks the control as going away while its remote nodes stay: reader sessions that end
// because the control stops leave their flows on remote nodes running, for the next control to
// adopt. Call it before closing the front door.
func (c *Control) Detach() {
	c.mu.Lock()
	c.detached = true
	c.mu.Unlock()
}

// Close deletes every flow the control created on its local node; flows on remote nodes keep
// running (DESIGN §1: established flows survive the control).
func (c *Control) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	var local []string
	for _, s := range c.streams {
		if s.idle != nil {
			s.idle.Stop()
		}
		if s.sourceFlow != "" && s.ingest == c.local {
			local = append(local, s.sourceFlow)
		}
	}
	c.mu.Unlock()
	ctx := context.Background()
	for _, id := range local {
		_ = c.node.Delete(ctx, id)
	}
	c.wg.Wait()
}

func newID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (c *Control) streamLocked(path string, r config.Route) *stream {
	s := c.streams[path]
	if s == nil {
		s = newStream(newID("st"), path, r)
		c.streams[path] = s
	}
	return s
}

func newStream(id, path string, r config.Route) *stream {
	return &stream{id: id, path: path, route: r, ready: make(chan struct{}), gone: make(chan struct{}),
		mcastFlows: map[int]*mcastFlow{}, rdrs: map[*reader]struct{}{}, relays: map[string]*relay{},
		sourceUp: make(chan struct{}), outputs: map[int]*reader{}}
}

// sourceFlowFor is the source flow of s for its route.
func sourceFlowFor(s *stream) (node.Flow, error) {
	f := node.Flow{ID: newID("src"), Version: 1, Stream: s.id,
		Meta: map[string]string{metaRole: roleSource, metaRoute: s.path}}
	hubs := node.Hubs{Pacing: s.route.Pacing}
	var backup *node.Backup
	if r := s.route; r.Backup != "" {
		var b node.Spec = node.DemoSource{}
		if r.Backup != config.SourceDemo {
			b = node.PullSource{URL: r.Backup, Transport: r.SourceTransport, ReconnectMin: r.ReconnectMin, ReconnectMax: r.ReconnectMax}
		}
		backup = &node.Backup{Source: b, Stall: r.BackupStall, Mode: r.BackupMode}
	}
	switch {
	case s.route.Source == config.SourceDemo:
		f.Spec = node.DemoSource{Hubs: hubs, Backup: backup}
	case s.route.IsPull():
		sp := node.PullSource{URL: s.route.Source, Transport: s.route.SourceTransport,
			ReconnectMin: s.route.ReconnectMin, ReconnectMax: s.route.ReconnectMax, Hubs: hubs, Backup: backup}
		if s.route.SourceTLSCA != "" {
			// read by the control, so a remote node pulling the camera needs no file of its own
			ca, err := os.ReadFile(s.route.SourceTLSCA)
			if err != nil {
				return f, fmt.Errorf("route %s: source_tls_ca: %w", s.path, err)
			}
			sp.TLSCA = ca
		}
		f.Spec = sp
	case s.route.IsRTP() && s.route.RTPSource != nil:
		f.Spec = rtpSourceSpec(s.route, hubs, backup)
	default:
		return f, fmt.Errorf("route %s has no source the control can start", s.path)
	}
	return f, nil
}

func (c *Control) startSourceLocked(ctx context.Context, s *stream) error {
	if s.sourceFlow != "" {
		return nil
	}
	f, err := sourceFlowFor(s)
	if err != nil {
		return err
	}
	m := c.ingestLocked(s, nil)
	s.sourceFlow = f.ID
	s.ingest = m
	// Apply runs the node's start hooks, which may report back into the control: no lock then.
	c.mu.Unlock()
	_, err = m.n.Apply(ctx, f)
	c.mu.Lock()
	if err != nil {
		if s.sourceFlow == f.ID {
			s.sourceFlow = ""
			s.ingest = nil
		}
		return fmt.Errorf("on node %s: %w", m.name, err)
	}
	c.log.Info("source started", "route", s.path, "kind", f.Kind(), "stream", s.id, "node", m.name)
	return nil
}

// SourceReady implements node.Events for the local node.
func (c *Control) SourceReady(streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	c.sourceReady(c.local, streamID, sdp, tracks, replaced)
}

// sourceReady records a node's report that the stream it ingests is live. Reports from a node
// that no longer ingests the stream (a failover raced with them) are ignored.
func (c *Control) sourceReady(m *member, streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.byIDLocked(streamID)
	if s == nil || (s.ingest != nil && s.ingest != m) {
		return
	}
	select {
	case <-s.sourceUp:
	default:
		close(s.sourceUp)
	}
	if replaced {
		// readers of the old layout cannot follow the new one
		close(s.gone)
		s.gone = make(chan struct{})
	}
	if sdp != nil {
		s.sdp = sdp
	}
	s.tracks = tracks
	if !s.isUp && s.sdp != nil {
		s.isUp = true
		close(s.ready)
	}
	c.ensureOutputsLocked(s)
	c.log.Info("source ready", "route", s.path, "tracks", len(tracks), "replaced", replaced, "node", m.name)
}

// SourceDown implements node.Events.
func (c *Control) SourceDown(streamID string, err error) {
	c.mu.Lock()
	s := c.byIDLocked(streamID)
	c.mu.Unlock()
	if s != nil {
		c.log.Warn("source down; retrying", "route", s.path, "err", err)
	}
}

func (c *Control) byIDLocked(id string) *stream {
	for _, s := range c.streams {
		if s.id == id {
			return s
		}
	}
	return nil
}

// OpenRead implements rtsp.Handler.
func (c *Control) OpenRead(ctx context.Context, ci rtsp.ConnInfo, path string) (rtsp.ReadStream, error) {
	r, ok := c.cfg.Match(path)
	if !ok {
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no route matches %q", path)
	}
	if err := c.awaitAdoption(ctx, r); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusServiceUnavailable, "shutting down")
	}
	s := c.streamLocked(path, r)
	if r.Source == config.SourcePublisher && (s.publisher == nil || !s.isUp) {
		if s.readers == 0 && s.publisher == nil {
			delete(c.streams, path)
		}
		c.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no one is publishing to %q", path)
	}
	if r.MaxReaders > 0 && s.readers-outputReaders(s) >= r.MaxReaders {
		c.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusNotEnoughBandwidth, "route %q already has its %d readers", path, r.MaxReaders)
	}
	s.readers++
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	var err error
	if r.Source != config.SourcePublisher {
		err = c.startSourceLocked(ctx, s)
	}
	ready := s.ready
	c.mu.Unlock()
	if err != nil {
		c.releaseReader(s)
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "source could not start", Err: err}
	}
	wait := startTimeout(r)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
		c.releaseReader(s)
		return nil, rtsp.Errorf(rtsp.StatusServiceUnavailable, "source of %q not ready after %s", path, wait)
	case <-ctx.Done():
		c.releaseReader(s)
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "gave up waiting for the source", Err: ctx.Err()}
	}
	c.mu.Lock()
	rs := &reader{c: c, s: s, id: newID("rs"), remote: ci.Remote.Addr().Unmap(), sdp: s.sdp, tracks: s.tracks, gone: s.gone, flows: map[int]*readerFlow{}}
	s.rdrs[rs] = struct{}{}
	c.mu.Unlock()
	return rs, nil
}

// releaseReader drops one reader of s; the last one of an on-demand route arms its idle timer.
func (c *Control) releaseReader(s *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.readers--
	if s.readers > 0 || c.closed {
		return
	}
	stoppable := s.route.OnDemand || s.route.Regexp != nil && s.route.Source != config.SourcePublisher
	if s.route.Source == config.SourcePublisher {
		if s.publisher == nil {
			c.dropStreamLocked(s)
		}
		return
	}
	if !stoppable || s.sourceFlow == "" {
		return
	}
	after := s.route.OnDemandCloseAfter
	if after <= 0 {
		after = 10 * time.Second
	}
	s.idle = time.AfterFunc(after, func() { c.stopIdle(s) })
}

func (c *Control) stopIdle(s *stream) {
	c.mu.Lock()
	if s.readers > 0 || c.streams[s.path] != s {
		c.mu.Unlock()
		return
	}
	flowID, m := s.sourceFlow, s.ingest
	delete(c.streams, s.path)
	c.mu.Unlock()
	c.log.Info("on-demand source idle; stopping", "route", s.path)
	if flowID != "" && m != nil {
		if err := m.n.Delete(context.Background(), flowID); err != nil {
			c.log.Error("stop idle source", "route", s.path, "err", err)
		}
	}
}

// dropStreamLocked forgets a stream with neither readers nor publisher.
func (c *Control) dropStreamLocked(s *stream) {
	if c.streams[s.path] == s {
		delete(c.streams, s.path)
	}
	if s.sourceFlow != "" && s.ingest != nil {
		id, m := s.sourceFlow, s.ingest
		s.sourceFlow = ""
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = m.n.Delete(context.Background(), id)
		}()
	}
	if s.group.IsValid() {
		c.mcast.release(s.group)
		s.group = netip.Addr{}
	}
}

// errStatus turns a node error into a front-door error with a status.
func errStatus(what string, err error) error {
	if errors.Is(err, node.ErrNotFound) {
		return &rtsp.Error{Status: rtsp.StatusNotFound, Msg: what, Err: err}
	}
	return &rtsp.Error{Status: rtsp.StatusInternal, Msg: what, Err: err}
}

// remoteSourceReady is SourceReady from a remote node.
func (c *Control) remoteSourceReady(name, streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	c.mu.Lock()
	m := c.members[name]
	c.mu.Unlock()
	if m != nil {
		c.sourceReady(m, streamID, sdp, tracks, replaced)
	}
}
