package gateway

import (
	"cmp"
	"errors"
	"slices"

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

// streamView is what Snapshot copies of a stream under the control's lock.
type streamView struct {
	s          *stream
	ingest     *member
	sourceFlow string
	up         bool
	tracks     []rtp.Track
	sdp        []byte
	readers    []*reader
	publisher  *publication
}

// Snapshot implements ops.Source: the control's routes, streams, sessions, nodes and relays now.
func (c *Control) Snapshot() ops.Snapshot {
	var snap ops.Snapshot
	for _, r := range c.cfg.Routes {
		name := r.Name
		snap.Routes = append(snap.Routes, ops.Route{Name: name, Source: r.Source, Regex: r.Regexp != nil, OnDemand: r.OnDemand})
	}

	c.mu.Lock()
	views := make([]streamView, 0, len(c.streams.table))
	for _, s := range c.streams.table {
		v := streamView{s: s, ingest: s.ingest, sourceFlow: s.sourceFlow, up: s.isUp, tracks: s.tracks, sdp: s.sdp, publisher: s.publisher}
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
		snap.Relays = append(snap.Relays, c.relaySnapshot(v.s)...)
	}
	for i, m := range members {
		info := infos[i]
		snap.Nodes = append(snap.Nodes, ops.Node{Name: m.name, Local: m.local, Data: info.Data, RTPPort: info.RTPPort,
			LiveLive: info.LiveLive, Networks: info.ClientNetworks, Flows: flowsOn[m], Up: m.isAlive()})
	}
	slices.SortFunc(snap.Streams, func(a, b ops.Stream) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Nodes, func(a, b ops.Node) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Sessions, func(a, b ops.Session) int { return cmp.Compare(a.ID, b.ID) })
	return snap
}

// streamSnapshot fills one stream and appends its sessions to snap; it counts the reader and
// source flows each node carries into flowsOn.
func (c *Control) streamSnapshot(v streamView, snap *ops.Snapshot, flowsOn map[*member]int) ops.Stream {
	s := v.s
	out := ops.Stream{Name: s.path, Route: routeName(s), Source: s.route.Source, State: "starting", Readers: map[string]int{}}
	switch {
	case v.up:
		out.State = "live"
	case v.sourceFlow != "" && isClosed(s.sourceUp):
		out.State = "down"
	}
	if v.ingest != nil {
		out.IngestNode = v.ingest.name
		if v.sourceFlow != "" {
			flowsOn[v.ingest]++
			if st, err := v.ingest.n.Stats(v.sourceFlow); err == nil {
				out.In = counters(st)
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
		out.Readers[sess.Transport]++
		out.Out.Packets += sess.Counters.Packets
		out.Out.Bytes += sess.Counters.Bytes
		out.Out.Dropped += sess.Counters.Dropped
		out.Out.Errors += sess.Counters.Errors
		if rd.output == nil {
			snap.Sessions = append(snap.Sessions, sess)
		}
	}
	if p := v.publisher; p != nil {
		out.Publishers = 1
		snap.Sessions = append(snap.Sessions, ops.Session{ID: p.conn.Remote.String(), Kind: "publisher", Route: s.path,
			Transport: "rtsp", Node: c.place.local.name, Remote: p.conn.Remote, User: p.conn.User, Started: p.started, Counters: out.In})
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
func (c *Control) relaySnapshot(s *stream) []ops.Relay {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	var out []ops.Relay
	for _, r := range s.relays {
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
		out = append(out, relayHops(s.path, r.from.name, r.to.name, st, rx, tx)...)
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
func relayHops(stream, from, to string, st node.FlowStats, rx, tx *nack.Stats) []ops.Relay {
	base := ops.Relay{Stream: stream, From: from, To: to, Leg: "a", Packets: st.Packets}
	if rx != nil {
		base.NACKs = rx.NACKs
		base.LostBefore = rx.Filled + rx.Lost
		base.LostAfter = rx.Lost
		base.Repair = true
	}
	if tx != nil {
		base.Retransmissions = tx.Resent
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

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
