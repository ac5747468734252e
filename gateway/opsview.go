package gateway

import (
	"cmp"
	"errors"
	"slices"
	"sync"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/nack"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// This file is the operations read model (ops.Source) of a control: a copy of the live state
// taken under the control's locks in their order (stream.relayMu, then reader.mu, each alone,
// and core.mu alone), plus flow counters read from the nodes (atomics on a local node, the last
// Stats report of a remote one). Nothing here touches the packet path.

// tally keeps, per route, the counters of readers and sources that ended, so that the route's
// counters on /metrics (live flows plus these) never go down when a session leaves. Its lock is
// a leaf: nothing else is locked while it is held, and it is never taken on the packet path.
type tally struct {
	mu     sync.Mutex
	routes map[string]*routeTally
}

type routeTally struct {
	in, out          ops.Counters
	downs            uint64
	fecRec, fecUnrec uint64
}

func (t *tally) route(name string) *routeTally {
	if t.routes == nil {
		t.routes = map[string]*routeTally{}
	}
	r := t.routes[name]
	if r == nil {
		r = &routeTally{}
		t.routes[name] = r
	}
	return r
}

// retireReader adds the last counters of a leaving reader's flows on node via (read before they
// are deleted; a remote node's are its last report, up to a second old).
func (t *tally) retireReader(route string, via *member, flows map[int]*readerFlow) {
	var sum ops.Counters
	for _, rf := range flows {
		if rf.id == "" || rf.multicast || rf.tcp {
			continue
		}
		if st, err := via.n.Stats(rf.id); err == nil {
			addCounters(&sum, counters(st))
		}
	}
	t.mu.Lock()
	addCounters(&t.route(route).out, sum)
	t.mu.Unlock()
}

// retireSource adds the last counters of a source or ingress flow about to be deleted.
func (t *tally) retireSource(route string, m *member, id string) {
	st, err := m.n.Stats(id)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.route(route)
	addCounters(&r.in, counters(st))
	if rs := st.RTPSource; rs != nil {
		r.fecRec += rs.Recovered
		r.fecUnrec += rs.Unrecoverable
	}
}

func (t *tally) sourceDown(route string) {
	t.mu.Lock()
	t.route(route).downs++
	t.mu.Unlock()
}

// addTo adds the ended counters of each route to the routes of snap.
func (t *tally) addTo(routes []ops.Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range routes {
		r := t.routes[routes[i].Name]
		if r == nil {
			continue
		}
		addCounters(&routes[i].In, r.in)
		addCounters(&routes[i].Out, r.out)
		routes[i].SourceRestarts += r.downs
		routes[i].FECRecovered += r.fecRec
		routes[i].FECUnrecoverable += r.fecUnrec
	}
}

func addCounters(dst *ops.Counters, c ops.Counters) {
	dst.Packets += c.Packets
	dst.Bytes += c.Bytes
	dst.Dropped += c.Dropped
	dst.Errors += c.Errors
}

// streamView is what Snapshot copies of a stream under the control's lock.
type streamView struct {
	s          *stream
	ingest     *member
	sourceFlow string
	up, down   bool
	tracks     []rtp.Track
	sdp        []byte
	readers    []*reader
	publisher  *publication
}

// Snapshot implements ops.Source: the control's routes, streams, sessions, nodes and relays now.
func (c *Control) Snapshot() ops.Snapshot {
	var snap ops.Snapshot
	c.mu.Lock()
	views := make([]streamView, 0, len(c.streams.table))
	for _, s := range c.streams.table {
		v := streamView{s: s, ingest: s.ingest, sourceFlow: s.sourceFlow, up: s.isUp, down: s.sourceDown,
			tracks: s.tracks, sdp: s.sdp, publisher: s.publisher}
		for rd := range s.rdrs {
			v.readers = append(v.readers, rd)
		}
		for _, rd := range s.outputs {
			v.readers = append(v.readers, rd)
		}
		views = append(views, v)
	}
	members := make([]*member, 0, len(c.place.members))
	infos := make([]NodeInfo, 0, len(c.place.members))
	for _, m := range c.place.members {
		members = append(members, m)
		infos = append(infos, m.info)
	}
	c.mu.Unlock()

	flowsOn := map[*member]int{}
	for _, v := range views {
		snap.Streams = append(snap.Streams, c.streamSnapshot(v, &snap, flowsOn))
		snap.Relays = append(snap.Relays, c.relaySnapshot(v.s, flowsOn)...)
	}
	snap.Routes = c.routeSnapshot(snap.Streams)
	for i, m := range members {
		info := infos[i]
		n := ops.Node{Name: m.name, Local: m.local, Data: info.Data, RTPPort: info.RTPPort,
			LiveLive: info.LiveLive, Networks: info.ClientNetworks, Flows: flowsOn[m], Up: m.isAlive()}
		if r, ok := m.n.get().(*cluster.Remote); ok {
			n.Capabilities = r.Capabilities()
			n.AttachedAt, n.LastReport = r.Attached(), r.LastReport()
			n.Commands, n.CommandSeconds = r.CommandLatency()
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	slices.SortFunc(snap.Streams, func(a, b ops.Stream) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Nodes, func(a, b ops.Node) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Sessions, func(a, b ops.Session) int { return cmp.Compare(a.ID, b.ID) })
	return snap
}

// routeSnapshot lists the config's routes with the counters of their live streams and of what
// ended (the tally).
func (c *Control) routeSnapshot(streams []ops.Stream) []ops.Route {
	routes := make([]ops.Route, 0, len(c.cfg.Routes))
	idx := map[string]int{}
	for _, r := range c.cfg.Routes {
		idx[r.Name] = len(routes)
		routes = append(routes, ops.Route{Name: r.Name, Source: r.Source, Regex: r.Regexp != nil, OnDemand: r.OnDemand})
	}
	for _, st := range streams {
		i, ok := idx[st.Route]
		if !ok {
			continue
		}
		addCounters(&routes[i].In, st.In)
		addCounters(&routes[i].Out, st.Out)
		routes[i].FECRecovered += st.FECRecovered
		routes[i].FECUnrecoverable += st.FECUnrecoverable
	}
	c.tally.addTo(routes)
	return routes
}

// streamSnapshot fills one stream and appends its sessions to snap; it counts the reader and
// source flows each node carries into flowsOn.
func (c *Control) streamSnapshot(v streamView, snap *ops.Snapshot, flowsOn map[*member]int) ops.Stream {
	s := v.s
	out := ops.Stream{Name: s.path, Route: routeName(s), Source: s.route.Source, State: "starting", Readers: map[string]int{}}
	switch {
	case v.down:
		out.State = "down"
	case v.up:
		out.State = "live"
	}
	if v.ingest != nil {
		out.IngestNode = v.ingest.name
		if v.sourceFlow != "" {
			flowsOn[v.ingest]++
			if st, err := v.ingest.n.Stats(v.sourceFlow); err == nil {
				out.In = counters(st)
				if rs := st.RTPSource; rs != nil {
					out.FECRecovered, out.FECUnrecoverable = rs.Recovered, rs.Unrecoverable
				}
			}
		}
	}
	codecs := sdp.TrackCodecs(v.sdp)
	for i, t := range v.tracks {
		tr := ops.Track{Index: i, Media: t.Media, PayloadType: int(t.PayloadType), ClockRate: int(t.ClockRate)}
		if i < len(codecs) {
			tr.Codec = codecs[i]
		}
		out.Tracks = append(out.Tracks, tr)
	}
	for _, rd := range v.readers {
		sess, via, nflows, ok := rd.snapshot()
		if !ok {
			continue
		}
		if via != nil {
			flowsOn[via] += nflows
		}
		addCounters(&out.Out, sess.Counters)
		if rd.output != nil {
			out.Outputs++
			continue
		}
		out.Readers[sess.Transport]++
		snap.Sessions = append(snap.Sessions, sess)
	}
	if p := v.publisher; p != nil {
		out.Publishers = 1
		sess := ops.Session{ID: "pub-" + s.id, Kind: "publisher", Route: s.path, Transport: "tcp", Node: c.place.local.name,
			Remote: p.conn.Remote, User: p.conn.User, Started: p.started}
		p.mu.Lock()
		ids := slices.Clone(p.flows)
		p.mu.Unlock()
		if len(ids) > 0 {
			sess.Transport = "udp"
		}
		for _, id := range ids {
			if st, err := c.node.Stats(id); err == nil {
				addCounters(&sess.Counters, counters(st))
			}
		}
		flowsOn[c.place.local] += len(ids)
		addCounters(&out.In, sess.Counters)
		snap.Sessions = append(snap.Sessions, sess)
	}
	return out
}

// snapshot is the reader as a session, with its flows' counters summed over tracks, the node
// serving it and its number of flows there. ok is false for a reader without a track set up.
func (rd *reader) snapshot() (sess ops.Session, via *member, nflows int, ok bool) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.closed || len(rd.flows) == 0 {
		return ops.Session{}, nil, 0, false
	}
	sess = ops.Session{ID: rd.id, Kind: "reader", Route: rd.s.path, Remote: rd.conn.Remote, User: rd.conn.User, Started: rd.started}
	if rd.output != nil {
		sess.Kind = "output"
	}
	if rd.via != nil {
		sess.Node = rd.via.name
	}
	for _, rf := range rd.flows {
		switch {
		case rf.multicast:
			sess.Transport = "multicast"
			continue
		case rf.tcp:
			sess.Transport = "tcp"
			continue
		}
		sess.Transport = "udp"
		if u, ok := rf.flow.Spec.(node.UDPSink); ok && len(u.SRTPKey) > 0 {
			sess.Transport = "srtp"
		} else if rf.flow.Kind() == node.SinkRTP {
			sess.Transport = "rtp"
		}
		if rd.via == nil || rf.id == "" {
			continue
		}
		st, err := rd.via.n.Stats(rf.id)
		if err != nil {
			continue
		}
		c := counters(st)
		sess.Counters.Packets += c.Packets
		sess.Counters.Bytes += c.Bytes
		sess.Counters.Dropped += c.Dropped
		sess.Counters.Errors += c.Errors
		if st.Reception != nil && (sess.Reception == nil || st.Reception.Reports > sess.Reception.Reports) {
			sess.Reception = reception(st.Reception)
		}
	}
	for _, rf := range rd.flows {
		if rf.id != "" {
			nflows++
		}
	}
	return sess, rd.via, nflows, true
}

// relaySnapshot lists the hops of stream s, read under its relayMu: one per leg.
func (c *Control) relaySnapshot(s *stream, flowsOn map[*member]int) []ops.Relay {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	var out []ops.Relay
	for _, r := range s.relays {
		flowsOn[r.to]++
		flowsOn[r.from] += len(r.sinks)
		var sinks []string
		for _, f := range r.sinks {
			sinks = append(sinks, f.ID)
		}
		st, err := r.to.n.Stats(r.source.ID)
		if err != nil {
			st = node.FlowStats{}
		}
		var rx, tx *nack.Stats
		if r.to.local {
			rx = c.repairStats(r.source.ID)
		}
		if r.from.local {
			tx = c.repairStats(sinks...)
		}
		out = append(out, relayHops(routeName(s), r.from.name, r.to.name, st, rx, tx)...)
	}
	slices.SortFunc(out, func(a, b ops.Relay) int { return cmp.Or(cmp.Compare(a.To, b.To), cmp.Compare(a.Leg, b.Leg)) })
	return out
}

// repairStats sums the local node's loss repair counters of flows ids; nil when the node keeps
// none (the wire reports of remote nodes do not carry them).
func (c *Control) repairStats(ids ...string) *nack.Stats {
	rn, ok := c.node.(interface {
		RepairStats(string) (nack.Stats, error)
	})
	if !ok {
		return nil
	}
	var sum nack.Stats
	found := false
	for _, id := range ids {
		st, err := rn.RepairStats(id)
		if err != nil {
			continue
		}
		found = true
		sum.Requested += st.Requested
		sum.NACKs += st.NACKs
		sum.Filled += st.Filled
		sum.Lost += st.Lost
		sum.Dups += st.Dups
		sum.Resent += st.Resent
		sum.Missed += st.Missed
	}
	if !found {
		return nil
	}
	return &sum
}

// relayHops turns one relay's counters into its hops: the relay source's stats st on the far
// node, its repair counters rx (nil when unknown) and the ingest side's tx (resends).
func relayHops(route, from, to string, st node.FlowStats, rx, tx *nack.Stats) []ops.Relay {
	base := ops.Relay{Route: route, From: from, To: to, Leg: "a", Packets: st.Packets}
	if rx != nil {
		base.NACKs = rx.NACKs
		base.LostBefore = rx.Filled + rx.Lost
		base.LostAfter = rx.Lost
		base.Repair = true
	}
	if tx != nil {
		base.Retransmissions, base.ResendsKnown = tx.Resent, true
	}
	l := st.RelayLegs
	if l == nil || len(l.Legs) < 2 {
		return []ops.Relay{base}
	}
	var hops []ops.Relay
	for i, leg := range l.Legs[:2] {
		h := base
		h.Leg = string(rune('a' + i))
		h.Packets = leg.Received
		h.Legs = &ops.LegCounters{Received: leg.Received, First: leg.First, Duplicates: leg.Duplicates, Late: leg.Late, Lost: leg.Lost}
		hops = append(hops, h)
	}
	return hops
}

func counters(st node.FlowStats) ops.Counters {
	return ops.Counters{Packets: st.Packets, Bytes: st.Bytes, Dropped: st.Dropped, Errors: st.Errors}
}

func reception(r *rtp.ReceptionStats) *ops.Reception {
	return &ops.Reception{FractionLost: r.FractionLost, CumulativeLost: r.CumulativeLost, Jitter: r.Jitter.Seconds(), RTT: r.RTT, Reports: r.Reports}
}

// routeName is the config entry a stream came from: its pattern for a regex route.
func routeName(s *stream) string {
	if s.route.Pattern != "" {
		return s.route.Pattern
	}
	return s.route.Name
}

// Ready implements ops.Source: nil once the control serves (after the startup grace in a
// cluster) and until it closes.
func (c *Control) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return errors.New("shutting down")
	case !c.started:
		return errors.New("waiting for nodes to re-attach (control.startup_grace)")
	}
	return nil
}
