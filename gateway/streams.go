package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
)

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
	// sourceDown: the source reported it lost its upstream and has not been ready since.
	sourceDown bool
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

func newStream(id, path string, r config.Route) *stream {
	return &stream{id: id, path: path, route: r, ready: make(chan struct{}), gone: make(chan struct{}),
		mcastFlows: map[int]*mcastFlow{}, rdrs: map[*reader]struct{}{}, relays: map[string]*relay{},
		sourceUp: make(chan struct{}), outputs: map[int]*reader{}}
}

// streams is the stream table and the life of each stream's source: starting it on the node
// placement picks, recording that it is live, counting readers, stopping an idle on-demand
// source, forgetting a stream nobody uses, and the stream's multicast group. It calls placement
// and the nodes, nothing above it.
type streams struct {
	*core
	place *placement
	table map[string]*stream // by route path
	mcast *groupAllocator
	// ensureOutputs is called under the lock whenever a stream may lack outputs for its current
	// layout (it went live, or always-on sources were started); the sessions part makes them.
	ensureOutputs func(*stream)
}

// startAll brings up every always-on source (non-regex routes with a demo or pull source and no
// on_demand) that no node already carries.
func (st *streams) startAll(ctx context.Context) error {
	st.mu.Lock()
	st.started = true
	st.mu.Unlock()
	for _, r := range st.cfg.Routes {
		// outputs are readers that never leave: their route runs from the start
		if r.Regexp != nil || (r.OnDemand && len(r.Outputs) == 0) || r.Source == config.SourcePublisher {
			continue
		}
		st.mu.Lock()
		s := st.streamLocked(r.Name, r)
		err := st.startSourceLocked(ctx, s)
		st.ensureOutputs(s) // adopted streams that are up already
		st.mu.Unlock()
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
	}
	return nil
}

// stopLocked stops every idle timer of a closing control and lists the source flows it runs on
// its local node, for the caller to delete.
func (st *streams) stopLocked() []string {
	var local []string
	for _, s := range st.table {
		if s.idle != nil {
			s.idle.Stop()
		}
		if s.sourceFlow != "" && s.ingest == st.place.local {
			local = append(local, s.sourceFlow)
		}
	}
	return local
}

// streamLocked is the stream at path, made for route r when there is none.
func (st *streams) streamLocked(path string, r config.Route) *stream {
	s := st.table[path]
	if s == nil {
		s = newStream(newID("st"), path, r)
		st.table[path] = s
	}
	return s
}

// adoptLocked is the stream at path for a flow of stream id a node reported after the control
// restarted, made with that ID when there is none; nil when the path's stream has another ID.
func (st *streams) adoptLocked(id, path string, r config.Route) *stream {
	s := st.table[path]
	if s == nil {
		s = newStream(id, path, r)
		st.table[path] = s
	} else if s.id != id {
		return nil
	}
	return s
}

// adoptSourceLocked records that m runs flow id as the source of s, which m reported after the
// control restarted; up says its report has the stream live, with the description in st. False
// when s already has another source (the flow is deleted).
func (st *streams) adoptSourceLocked(s *stream, m *member, id string, up bool, src cluster.SourceState) bool {
	if s.sourceFlow != "" && s.sourceFlow != id {
		return false
	}
	s.sourceFlow, s.ingest = id, m
	if up && !s.isUp {
		st.adoptUpLocked(s, src)
		close(s.sourceUp)
	}
	return true
}

// adoptUpLocked marks s live with the description a node reported after the control restarted
// (its source's or a relay's), unless it is already.
func (st *streams) adoptUpLocked(s *stream, src cluster.SourceState) {
	if !s.isUp {
		s.sdp, s.tracks, s.isUp = src.SDP, src.Tracks, true
		close(s.ready)
	}
}

// currentLocked reports whether s is still the stream of its path.
func (st *streams) currentLocked(s *stream) bool { return st.table[s.path] == s }

// allLocked lists every stream.
func (st *streams) allLocked() []*stream {
	out := make([]*stream, 0, len(st.table))
	for _, s := range st.table {
		out = append(out, s)
	}
	return out
}

func (st *streams) byIDLocked(id string) *stream {
	for _, s := range st.table {
		if s.id == id {
			return s
		}
	}
	return nil
}

// ingestLocked picks the node that ingests s (placement.ingestLocked) given how many sources
// each node carries now.
func (st *streams) ingestLocked(s *stream, exclude *member) *member {
	load := map[*member]int{}
	for _, o := range st.table {
		if o.ingest != nil {
			load[o.ingest]++
		}
	}
	return st.place.ingestLocked(s, exclude, load)
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

func (st *streams) startSourceLocked(ctx context.Context, s *stream) error {
	if s.sourceFlow != "" {
		return nil
	}
	f, err := sourceFlowFor(s)
	if err != nil {
		return err
	}
	m := st.ingestLocked(s, nil)
	s.sourceFlow = f.ID
	s.ingest = m
	// Apply runs the node's start hooks, which may report back into the control: no lock then.
	st.mu.Unlock()
	_, err = m.n.Apply(ctx, f)
	st.mu.Lock()
	if err != nil {
		if s.sourceFlow == f.ID {
			s.sourceFlow = ""
			s.ingest = nil
		}
		return fmt.Errorf("on node %s: %w", m.name, err)
	}
	st.log.Info("source started", "route", s.path, "kind", f.Kind(), "stream", s.id, "node", m.name)
	return nil
}

// ready records a node's report that the stream it ingests is live. Reports from a node that no
// longer ingests the stream (a failover raced with them) are ignored.
func (st *streams) ready(m *member, streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byIDLocked(streamID)
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
	s.sourceDown = false
	s.tracks = tracks
	if !s.isUp && s.sdp != nil {
		s.isUp = true
		close(s.ready)
	}
	st.ensureOutputs(s)
	st.log.Info("source ready", "route", s.path, "tracks", len(tracks), "replaced", replaced, "node", m.name)
}

// publishedLocked records that s's publisher started recording with this description.
func (st *streams) publishedLocked(s *stream, sdp []byte, tracks []rtp.Track) {
	s.sdp = sdp
	s.tracks = tracks
	if !s.isUp {
		s.isUp = true
		close(s.ready)
	}
	st.ensureOutputs(s)
}

// acquireLocked counts one more reader of s and keeps its source from idling.
func (st *streams) acquireLocked(s *stream) {
	s.readers++
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
}

// releaseReader drops one reader of s; the last one of an on-demand route arms its idle timer.
func (st *streams) releaseReader(s *stream) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.readers--
	if s.readers > 0 || st.closed {
		return
	}
	stoppable := s.route.OnDemand || s.route.Regexp != nil && s.route.Source != config.SourcePublisher
	if s.route.Source == config.SourcePublisher {
		if s.publisher == nil {
			st.dropLocked(s)
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
	s.idle = time.AfterFunc(after, func() { st.stopIdle(s) })
}

func (st *streams) stopIdle(s *stream) {
	st.mu.Lock()
	if s.readers > 0 || st.table[s.path] != s {
		st.mu.Unlock()
		return
	}
	flowID, m := s.sourceFlow, s.ingest
	delete(st.table, s.path)
	st.mu.Unlock()
	st.log.Info("on-demand source idle; stopping", "route", s.path)
	if flowID != "" && m != nil {
		st.tally.retireSource(routeName(s), m, flowID)
		if err := m.n.Delete(context.Background(), flowID); err != nil {
			st.log.Error("stop idle source", "route", s.path, "err", err)
		}
	}
}

// forgetLocked removes s from the table without stopping anything: a publisher route nobody
// publishes to.
func (st *streams) forgetLocked(s *stream) {
	if st.table[s.path] == s {
		delete(st.table, s.path)
	}
}

// dropLocked forgets a stream with neither readers nor publisher.
func (st *streams) dropLocked(s *stream) {
	st.forgetLocked(s)
	if s.sourceFlow != "" && s.ingest != nil {
		id, m := s.sourceFlow, s.ingest
		s.sourceFlow = ""
		st.wg.Add(1)
		route := routeName(s)
		go func() {
			defer st.wg.Done()
			st.tally.retireSource(route, m, id)
			_ = m.n.Delete(context.Background(), id)
		}()
	}
	if s.group.IsValid() {
		st.mcast.release(s.group)
		s.group = netip.Addr{}
	}
}

// groupLocked is s's multicast group, drawn from the configured range on first use; false when
// the range is exhausted.
func (st *streams) groupLocked(s *stream) (netip.Addr, bool) {
	if !s.group.IsValid() {
		g, ok := st.mcast.alloc()
		if !ok {
			return netip.Addr{}, false
		}
		s.group = g
	}
	return s.group, true
}

// groupAllocator hands out multicast groups from the configured range, one per stream.
type groupAllocator struct {
	mu     sync.Mutex
	prefix netip.Prefix
	used   map[netip.Addr]bool
}

func newGroupAllocator(p netip.Prefix) *groupAllocator {
	return &groupAllocator{prefix: p.Masked(), used: map[netip.Addr]bool{}}
}

func (g *groupAllocator) alloc() (netip.Addr, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.prefix.IsValid() {
		return netip.Addr{}, false
	}
	// skip the network address itself; use the range in order
	for a := g.prefix.Addr().Next(); g.prefix.Contains(a); a = a.Next() {
		if !g.used[a] {
			g.used[a] = true
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (g *groupAllocator) release(a netip.Addr) {
	g.mu.Lock()
	delete(g.used, a)
	g.mu.Unlock()
}
