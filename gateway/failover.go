package gateway

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// NodeUp registers a remote node that attached (first time, after its own restart, or after the
// control restarted). flows and sources are what the node carries right now: the control adopts
// what it does not know (it restarted), deletes what it no longer wants (readers moved away while
// the node was gone), and moves back readers that belong on the node.
func (c *Control) NodeUp(name string, n node.Node, info NodeInfo, flows []node.Flow, sources []cluster.SourceState) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	m := c.members[name]
	if m != nil && m.local {
		c.mu.Unlock()
		c.log.Error("a remote node uses the control's local node name; ignoring it", "node", name)
		return
	}
	if m == nil {
		m = &member{name: name, n: &nodeRef{}}
		c.members[name] = m
	}
	restarted := m.info.Boot != "" && m.info.Boot != info.Boot
	m.info = info
	m.n.set(n)
	m.alive.Store(true)
	c.mu.Unlock()
	c.log.Info("node attached", "node", name, "data", info.Data, "rtp_port", info.RTPPort,
		"client_networks", info.ClientNetworks, "flows", len(flows), "restarted", restarted)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reconcile(m, flows, sources)
	}()
}

// NodeDown marks a remote node dead and moves its work: streams it ingested are started on
// another node, its readers move to another node with their SSRC/seq/timestamp line intact (the
// hubs behind relays are transparent), and relays toward it are taken down.
func (c *Control) NodeDown(name string, n node.Node, err error) {
	c.mu.Lock()
	m := c.members[name]
	if m == nil || m.local || m.n.get() != n || !m.isAlive() {
		c.mu.Unlock()
		return // an older connection of a node that already re-attached
	}
	m.alive.Store(false)
	var streams []*stream
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	// A control that is going away leaves the nodes' work where it is for the next control.
	closing := c.closed || c.detached
	c.mu.Unlock()
	if closing {
		return
	}
	c.log.Warn("node down; moving its work", "node", name, "err", err)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		start := time.Now()
		ctx := context.Background()
		for _, s := range streams {
			c.failoverStream(ctx, s, m)
		}
		c.log.Info("node's work moved", "node", name, "took", time.Since(start))
	}()
}

// failoverStream repairs one stream after node dead failed.
func (c *Control) failoverStream(ctx context.Context, s *stream, dead *member) {
	s.relayMu.Lock()
	if r := s.relays[dead.name]; r != nil && r.to == dead {
		delete(s.relays, dead.name)
		c.dropRelayFlows(r) // the sinks on the ingest node still point at the dead node
	}
	c.mu.Lock()
	lost := s.ingest == dead
	var moving []*reader
	for r := range s.rdrs {
		moving = append(moving, r)
	}
	c.mu.Unlock()
	if lost {
		c.reingestLocked(ctx, s, dead)
	}
	s.relayMu.Unlock()
	for _, r := range moving {
		r.mu.Lock()
		on := r.via == dead
		r.mu.Unlock()
		if on {
			c.moveReader(ctx, r, dead, nil)
		}
	}
}

// reingestLocked starts s's source on another node and re-points its relays there. The new node's
// hubs continue the line readers already have: a node that held a relay of s keeps its hubs (the
// new source's SSRC starts a new epoch on them), and far nodes' relay hubs do the same. It holds
// s.relayMu.
func (c *Control) reingestLocked(ctx context.Context, s *stream, dead *member) {
	c.mu.Lock()
	if c.closed || c.streams[s.path] != s {
		c.mu.Unlock()
		return
	}
	to := c.ingestLocked(s, dead)
	f, err := sourceFlowFor(s)
	if err != nil {
		c.mu.Unlock()
		c.log.Error("re-ingest", "route", s.path, "err", err)
		return
	}
	if dead != nil && s.sourceFlow != "" {
		// The dead node's last report says where its lines stood: new hubs continue them, so
		// the readers it served keep their SSRC when they move (a node that already relays the
		// stream keeps its own hubs, which continue by themselves).
		if st, err := dead.n.Stats(s.sourceFlow); err == nil && len(st.Lines) == len(s.tracks) {
			f = f.WithContinue(st.Lines)
		}
	}
	s.sourceFlow, s.ingest = f.ID, to
	s.sourceUp = make(chan struct{})
	up := s.sourceUp
	c.mu.Unlock()
	if r := s.relays[to.name]; r != nil {
		// Its relay source goes; the hubs stay for the readers there and take the new source.
		if err := to.n.Delete(ctx, r.source.ID); err != nil && !errors.Is(err, node.ErrNotFound) {
			c.log.Error("delete relay source before re-ingest", "node", to.name, "err", err)
		}
		delete(s.relays, to.name)
	}
	if _, err := to.n.Apply(ctx, f); err != nil {
		c.log.Error("re-ingest failed", "route", s.path, "node", to.name, "err", err)
		return
	}
	c.log.Info("stream re-ingested", "route", s.path, "from", dead.name, "to", to.name)
	wait := startTimeout(s.route)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-up:
	case <-t.C:
		c.log.Error("re-ingested source not ready; relays stay down", "route", s.path, "node", to.name)
		return
	case <-c.done:
		return
	}
	c.repointRelaysLocked(ctx, s, to)
}

// moveReader moves a UDP reader's flows from node from to another node: to, or the best live
// node other than from. The new node's flows are made before the old ones go, so a planned move
// loses nothing (the player's jitter buffer drops the few duplicates).
func (c *Control) moveReader(ctx context.Context, r *reader, from, to *member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.via != from {
		return
	}
	resume := map[int]*srtp.SendState{}
	for track, rf := range r.flows {
		if rf.tcp || rf.multicast {
			return // served by the local node, which does not move
		}
		if sp, ok := rf.flow.Spec.(node.UDPSink); ok && len(sp.SRTPKey) > 0 {
			// The player's SRTP context follows the old node's packet index (rollover counter,
			// SRTCP index): the new node's sink goes on from where the old one's last report
			// put it. The line is the same packets on every node (transparent hubs), so an index
			// sent again carries the same plaintext, and the SRTCP index skips well ahead. With
			// no report yet (the node died within a second of the reader's start) the index is
			// unknown: such a reader stays and ends at session_timeout; its player comes back
			// with new keys.
			st, err := from.n.Stats(rf.id)
			if err != nil || st.SRTP == nil {
				c.log.Warn("SRTP reader not moved: its sender state is unknown", "route", r.s.path, "reader", r.remote, "from", from.name)
				return
			}
			resume[track] = st.SRTP
		}
	}
	if to == nil {
		c.mu.Lock()
		to = c.servingLocked(r.s, r.remote, from)
		c.mu.Unlock()
	}
	if to == from {
		return
	}
	if err := c.ensureRelay(ctx, r.s, to); err != nil {
		c.log.Error("move reader: relay", "route", r.s.path, "to", to.name, "err", err)
		return
	}
	for track, rf := range r.flows {
		f := rf.flow
		f = f.WithPaused(!r.playing)
		f.Version++
		if sp, ok := f.Spec.(node.UDPSink); ok {
			sp.SRTPResume = resume[track]
			f.Spec = sp
		}
		if _, err := to.n.Apply(ctx, f); err != nil {
			c.log.Error("move reader: sink", "route", r.s.path, "track", track, "to", to.name, "err", err)
			continue
		}
		rf.flow = f
	}
	r.via = to
	if from.isAlive() {
		for _, rf := range r.flows {
			if err := from.n.Delete(ctx, rf.id); err != nil && !errors.Is(err, node.ErrNotFound) {
				c.log.Error("move reader: delete old sink", "node", from.name, "err", err)
			}
		}
	}
	c.releaseRelay(r.s, from)
	c.log.Info("reader moved", "route", r.s.path, "reader", r.remote, "from", from.name, "to", to.name)
}

// expectedLocked lists the flow IDs the control wants on m.
func (c *Control) expectedLocked(m *member) map[string]bool {
	want := map[string]bool{}
	for _, s := range c.streams {
		if s.ingest == m && s.sourceFlow != "" {
			want[s.sourceFlow] = true
		}
		for r := range s.rdrs {
			if r.via == m {
				for _, rf := range r.flows {
					if rf.id != "" {
						want[rf.id] = true
					}
				}
			}
		}
	}
	return want
}

// reconcile brings an attached node and the control's state together.
func (c *Control) reconcile(m *member, flows []node.Flow, sources []cluster.SourceState) {
	ctx := context.Background()
	src := map[string]cluster.SourceState{}
	for _, st := range sources {
		src[st.Stream] = st
	}
	var stale []string
	c.mu.Lock()
	adopting := !c.started
	want := c.expectedLocked(m)
	for _, f := range flows {
		if want[f.ID] || c.relayFlowKnownLocked(m, f.ID) {
			continue
		}
		if adopting && c.adoptLocked(m, f, src) {
			continue
		}
		stale = append(stale, f.ID)
	}
	// Readers that belong on this node (their network is its client network) move back to it.
	var back []*reader
	for _, s := range c.streams {
		for r := range s.rdrs {
			if r.via != nil && r.via != m && !r.via.local && m.servesNetwork(r.remote) >= 0 &&
				c.servingLocked(s, r.remote, nil) == m {
				back = append(back, r)
			}
		}
	}
	c.mu.Unlock()
	for _, id := range stale {
		c.log.Info("deleting a flow the control does not want", "node", m.name, "flow", id)
		if err := m.n.Delete(ctx, id); err != nil && !errors.Is(err, node.ErrNotFound) {
			c.log.Error("delete stale flow", "node", m.name, "flow", id, "err", err)
		}
	}
	for _, r := range back {
		r.mu.Lock()
		from := r.via
		r.mu.Unlock()
		c.moveReader(ctx, r, from, m)
	}
}

func (c *Control) relayFlowKnownLocked(m *member, id string) bool {
	for _, s := range c.streams {
		for _, r := range s.relays {
			if r.to == m && r.source.ID == id {
				return true
			}
			if r.from == m {
				for _, f := range r.sinks {
					if f.ID == id {
						return true
					}
				}
			}
		}
	}
	return false
}

// adoptLocked rebuilds control state from one flow a node reported after the control restarted.
// It returns false for a flow that conflicts with what the control already runs (it is deleted).
func (c *Control) adoptLocked(m *member, f node.Flow, src map[string]cluster.SourceState) bool {
	path := f.Meta[metaRoute]
	route, ok := c.cfg.Match(path)
	if !ok {
		return false
	}
	s := c.streams[path]
	if s == nil {
		s = newStream(f.Stream, path, route)
		c.streams[path] = s
	} else if s.id != f.Stream {
		return false
	}
	switch f.Meta[metaRole] {
	case roleSource:
		if s.sourceFlow != "" && s.sourceFlow != f.ID {
			return false
		}
		s.sourceFlow, s.ingest = f.ID, m
		if st, ok := src[f.Stream]; ok && st.Up && !s.isUp {
			s.sdp, s.tracks, s.isUp = st.SDP, st.Tracks, true
			close(s.ready)
			close(s.sourceUp)
		}
	case roleRelayOut:
		peer := c.memberLocked(f.Meta[metaPeer])
		r := s.relays[peer.name]
		if r == nil {
			r = &relay{to: peer, from: m}
			s.relays[peer.name] = r
		}
		r.from = m
		r.sinks = append(r.sinks, f)
	case roleRelayIn:
		r := s.relays[m.name]
		if r == nil {
			r = &relay{to: m, from: c.memberLocked(f.Meta[metaPeer])}
			s.relays[m.name] = r
		}
		r.source = f
		if st, ok := src[f.Stream]; ok && st.Up && !s.isUp {
			s.sdp, s.tracks, s.isUp = st.SDP, st.Tracks, true
			close(s.ready)
		}
	case roleOutput:
		return c.adoptOutputLocked(m, s, f)
	case roleReader:
		if f.Kind() != node.SinkUDP || f.Meta[metaSession] == "" {
			return false
		}
		var rd *reader
		for r := range s.rdrs {
			if r.id == f.Meta[metaSession] {
				rd = r
			}
		}
		if rd == nil {
			addr, _ := netip.ParseAddr(f.Meta[metaReader])
			rd = &reader{c: c, s: s, id: f.Meta[metaSession], remote: addr, gone: s.gone, via: m,
				flows: map[int]*readerFlow{}, playing: !f.Paused(), adopted: true}
			s.rdrs[rd] = struct{}{}
			s.readers++
		}
		rd.flows[f.Track()] = &readerFlow{id: f.ID, flow: f}
	default:
		return false
	}
	return true
}

// memberLocked returns the member named name, creating a not-yet-attached one.
func (c *Control) memberLocked(name string) *member {
	m := c.members[name]
	if m == nil {
		m = &member{name: name, n: &nodeRef{}}
		c.members[name] = m
	}
	return m
}

// FinishAdoption ends the startup grace: relays left half-built by the restart are rebuilt for
// the readers that need them, streams whose ingest node never came back are started elsewhere,
// and then every always-on source nobody carries is started. Requests held during the grace go
// on once it returns (grace.go).
func (c *Control) FinishAdoption(ctx context.Context) error {
	defer c.endHold()
	c.mu.Lock()
	var streams []*stream
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		s.relayMu.Lock()
		c.mu.Lock()
		users := map[*member]int{}
		for r := range s.rdrs {
			if r.via != nil {
				users[r.via]++
			}
		}
		// Adopted readers or relays whose ingest node did not come back need a new source.
		lost := (s.ingest != nil && !s.ingest.isAlive()) || (s.ingest == nil && (s.readers > 0 || len(s.relays) > 0))
		c.mu.Unlock()
		for name, r := range s.relays {
			r.users = users[r.to]
			whole := r.from != nil && r.from.isAlive() && r.to.isAlive() && r.source.ID != "" && len(r.sinks) > 0 && r.from == s.ingest
			if !whole || r.users == 0 {
				delete(s.relays, name)
				c.dropRelayFlows(r)
			}
		}
		if lost {
			c.reingestLocked(ctx, s, s.ingest)
		}
		s.relayMu.Unlock()
		// Readers whose relay went are given a fresh one.
		for m, n := range users {
			if m == nil || m == s.ingest {
				continue
			}
			s.relayMu.Lock()
			r := s.relays[m.name]
			s.relayMu.Unlock()
			if r != nil {
				continue
			}
			for i := 0; i < n; i++ {
				if err := c.ensureRelay(ctx, s, m); err != nil {
					c.log.Error("rebuild relay", "route", s.path, "to", m.name, "err", err)
					break
				}
			}
		}
	}
	c.mu.Lock()
	adopted := 0
	for _, s := range c.streams {
		for r := range s.rdrs {
			if r.adopted {
				adopted++
			}
		}
	}
	c.mu.Unlock()
	c.log.Info("state rebuilt from nodes", "streams", len(streams), "adopted_readers", adopted)
	c.wg.Add(1)
	go c.reapAdopted()
	return c.Start(ctx)
}

// reapAdopted ends adopted readers once their player has been silent (no RTCP) for the session
// timeout: they have no RTSP session here that a TEARDOWN or a timeout could end.
func (c *Control) reapAdopted() {
	defer c.wg.Done()
	born := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		var adopted []*reader
		for _, s := range c.streams {
			for r := range s.rdrs {
				if r.adopted {
					adopted = append(adopted, r)
				}
			}
		}
		c.mu.Unlock()
		for _, r := range adopted {
			last := r.LastActivity()
			if last.Before(born) {
				last = born
			}
			if time.Since(last) > c.cfg.RTSP.SessionTimeout {
				c.log.Info("adopted reader silent; ending it", "route", r.s.path, "reader", r.remote)
				r.Close()
			}
		}
	}
}
