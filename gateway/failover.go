package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/node"
)

// failover keeps the control's state in step with the nodes: a node that attaches is reconciled
// (its flows adopted after a control restart, unwanted ones deleted, readers that belong on it
// moved back), a node that fails has its streams re-ingested elsewhere and its readers moved,
// and FinishAdoption ends the startup grace. It is the top part: it calls sessions, streams,
// relays, placement and the grace, and nothing calls it but Control.
type failover struct {
	*core
	place    *placement
	streams  *streams
	relays   *relays
	sessions *sessions
	gate     *grace
}

// nodeUp is Control.NodeUp.
func (fo *failover) nodeUp(name string, n node.Node, info NodeInfo, flows []node.Flow, sources []cluster.SourceState) {
	fo.mu.Lock()
	if fo.closed {
		fo.mu.Unlock()
		return
	}
	m, restarted := fo.place.upLocked(name, n, info)
	fo.mu.Unlock()
	if m == nil {
		fo.log.Error("a remote node uses the control's local node name; ignoring it", "node", name)
		return
	}
	fo.log.Info("node attached", "node", name, "data", info.Data, "rtp_port", info.RTPPort,
		"client_networks", info.ClientNetworks, "flows", len(flows), "restarted", restarted)
	fo.wg.Add(1)
	go func() {
		defer fo.wg.Done()
		fo.reconcile(m, flows, sources)
	}()
}

// nodeDown is Control.NodeDown.
func (fo *failover) nodeDown(name string, n node.Node, err error) {
	fo.mu.Lock()
	m := fo.place.downLocked(name, n)
	if m == nil {
		fo.mu.Unlock()
		return // an older connection of a node that already re-attached
	}
	streams := fo.streams.allLocked()
	// A control that is going away leaves the nodes' work where it is for the next control.
	closing := fo.closed || fo.detached
	fo.mu.Unlock()
	if closing {
		return
	}
	fo.log.Warn("node down; moving its work", "node", name, "err", err)
	fo.wg.Add(1)
	go func() {
		defer fo.wg.Done()
		start := time.Now()
		ctx := context.Background()
		for _, s := range streams {
			fo.failoverStream(ctx, s, m)
		}
		fo.log.Info("node's work moved", "node", name, "took", time.Since(start))
	}()
}

// failoverStream repairs one stream after node dead failed.
func (fo *failover) failoverStream(ctx context.Context, s *stream, dead *member) {
	s.relayMu.Lock()
	fo.relays.dropToLocked(s, dead)
	fo.mu.Lock()
	lost := s.ingest == dead
	var moving []*reader
	for r := range s.rdrs {
		moving = append(moving, r)
	}
	fo.mu.Unlock()
	if lost {
		fo.reingestLocked(ctx, s, dead)
	}
	s.relayMu.Unlock()
	for _, r := range moving {
		r.mu.Lock()
		on := r.via == dead
		r.mu.Unlock()
		if on {
			fo.sessions.moveReader(ctx, r, dead, nil)
		}
	}
}

// reingestLocked starts s's source on another node and re-points its relays there. The new node's
// hubs continue the line readers already have: a node that held a relay of s keeps its hubs (the
// new source's SSRC starts a new epoch on them), and far nodes' relay hubs do the same. It holds
// s.relayMu.
func (fo *failover) reingestLocked(ctx context.Context, s *stream, dead *member) {
	fo.mu.Lock()
	if fo.closed || !fo.streams.currentLocked(s) {
		fo.mu.Unlock()
		return
	}
	to := fo.streams.ingestLocked(s, dead)
	f, err := sourceFlowFor(s)
	if err != nil {
		fo.mu.Unlock()
		fo.log.Error("re-ingest", "route", s.path, "err", err)
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
	former := s.sourceFlow
	s.sourceFlow, s.ingest = f.ID, to
	s.sourceUp = make(chan struct{})
	up := s.sourceUp
	wait := startTimeout(s.route)
	fo.mu.Unlock()
	// A node declared dead may have re-attached (it was only silent) before its streams were
	// moved: its reconcile then still counted the old source flow as wanted, so nothing else
	// deletes it, and it would refuse this stream's source if the stream ever came back to it.
	if dead != nil && former != "" && dead.isAlive() {
		if err := dead.n.Delete(ctx, former); err != nil && !errors.Is(err, node.ErrNotFound) {
			fo.log.Warn("delete the moved source on its former node", "route", s.path, "node", dead.name, "flow", former, "err", err)
		}
	}
	fo.relays.yieldLocked(ctx, s, to)
	if _, err := to.n.Apply(ctx, f); err != nil {
		fo.log.Error("re-ingest failed", "route", s.path, "node", to.name, "err", err)
		return
	}
	fo.log.Info("stream re-ingested", "route", s.path, "from", dead.name, "to", to.name)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-up:
	case <-t.C:
		fo.log.Error("re-ingested source not ready; relays stay down", "route", s.path, "node", to.name)
		return
	case <-fo.done:
		return
	}
	fo.relays.repointAllLocked(ctx, s, to)
}

// expectedLocked lists the flow IDs the control wants on m.
func (fo *failover) expectedLocked(m *member) map[string]bool {
	want := map[string]bool{}
	for _, s := range fo.streams.allLocked() {
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
func (fo *failover) reconcile(m *member, flows []node.Flow, sources []cluster.SourceState) {
	ctx := context.Background()
	src := map[string]cluster.SourceState{}
	for _, st := range sources {
		src[st.Stream] = st
	}
	var stale []string
	fo.mu.Lock()
	adopting := !fo.started
	want := fo.expectedLocked(m)
	for _, f := range flows {
		if want[f.ID] || fo.relayFlowKnownLocked(m, f.ID) {
			continue
		}
		if adopting && fo.adoptLocked(m, f, src) {
			continue
		}
		stale = append(stale, f.ID)
	}
	// Readers that belong on this node (their network is its client network) move back to it.
	var back []*reader
	for _, s := range fo.streams.allLocked() {
		for r := range s.rdrs {
			if r.via != nil && r.via != m && !r.via.local && m.servesNetwork(r.remote) >= 0 &&
				fo.place.servingLocked(s, r.remote, nil) == m {
				back = append(back, r)
			}
		}
	}
	fo.mu.Unlock()
	for _, id := range stale {
		fo.log.Info("deleting a flow the control does not want", "node", m.name, "flow", id)
		if err := m.n.Delete(ctx, id); err != nil && !errors.Is(err, node.ErrNotFound) {
			fo.log.Error("delete stale flow", "node", m.name, "flow", id, "err", err)
		}
	}
	for _, r := range back {
		r.mu.Lock()
		from := r.via
		r.mu.Unlock()
		fo.sessions.moveReader(ctx, r, from, m)
	}
}

// relayFlowKnownLocked reports whether flow id on m belongs to a relay the control knows.
func (fo *failover) relayFlowKnownLocked(m *member, id string) bool {
	for _, s := range fo.streams.allLocked() {
		if fo.relays.knownLocked(s, m, id) {
			return true
		}
	}
	return false
}

// adoptLocked rebuilds control state from one flow a node reported after the control restarted.
// It returns false for a flow that conflicts with what the control already runs (it is deleted).
func (fo *failover) adoptLocked(m *member, f node.Flow, src map[string]cluster.SourceState) bool {
	path := f.Meta[metaRoute]
	route, ok := fo.conf().Match(path)
	if !ok {
		return false
	}
	s := fo.streams.adoptLocked(f.Stream, path, route)
	if s == nil {
		return false
	}
	switch f.Meta[metaRole] {
	case roleSource:
		st, ok := src[f.Stream]
		return fo.streams.adoptSourceLocked(s, m, f.ID, ok && st.Up, st)
	case roleRelayOut:
		fo.relays.adoptSinkLocked(s, m, fo.place.memberLocked(f.Meta[metaPeer]), f)
	case roleRelayIn:
		var from *member // known already when the relay's sinks were adopted first
		if s.relays[m.name] == nil {
			from = fo.place.memberLocked(f.Meta[metaPeer])
		}
		fo.relays.adoptSourceLocked(s, m, from, f)
		if st, ok := src[f.Stream]; ok && st.Up {
			fo.streams.adoptUpLocked(s, st)
		}
	case roleOutput:
		return fo.sessions.adoptOutputLocked(m, s, f)
	case roleReader:
		return fo.sessions.adoptReaderLocked(m, s, f)
	default:
		return false
	}
	return true
}

// finishAdoption is Control.FinishAdoption.
func (fo *failover) finishAdoption(ctx context.Context) error {
	defer fo.gate.end()
	fo.mu.Lock()
	streams := fo.streams.allLocked()
	fo.mu.Unlock()
	for _, s := range streams {
		s.relayMu.Lock()
		fo.mu.Lock()
		users := map[*member]int{}
		for r := range s.rdrs {
			if r.via != nil {
				users[r.via]++
			}
		}
		// Adopted readers or relays whose ingest node did not come back need a new source.
		lost := (s.ingest != nil && !s.ingest.isAlive()) || (s.ingest == nil && (s.readers > 0 || len(s.relays) > 0))
		fo.mu.Unlock()
		fo.relays.settleLocked(s, s.ingest, users)
		if lost {
			fo.reingestLocked(ctx, s, s.ingest)
		}
		s.relayMu.Unlock()
		// Readers whose relay went are given a fresh one.
		for m, n := range users {
			if m == nil || m == s.ingest {
				continue
			}
			if fo.relays.has(s, m) {
				continue
			}
			for i := 0; i < n; i++ {
				if err := fo.relays.ensure(ctx, s, m); err != nil {
					fo.log.Error("rebuild relay", "route", s.path, "to", m.name, "err", err)
					break
				}
			}
		}
	}
	fo.mu.Lock()
	adopted := 0
	for _, s := range fo.streams.allLocked() {
		for r := range s.rdrs {
			if r.adopted {
				adopted++
			}
		}
	}
	fo.mu.Unlock()
	fo.log.Info("state rebuilt from nodes", "streams", len(streams), "adopted_readers", adopted)
	fo.wg.Add(1)
	go fo.reapAdopted()
	return fo.streams.startAll(ctx)
}

// reapAdopted ends adopted readers once their player has been silent (no RTCP) for the session
// timeout: they have no RTSP session here that a TEARDOWN or a timeout could end.
func (fo *failover) reapAdopted() {
	defer fo.wg.Done()
	born := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-fo.done:
			return
		case <-t.C:
		}
		fo.mu.Lock()
		var adopted []*reader
		for _, s := range fo.streams.allLocked() {
			for r := range s.rdrs {
				if r.adopted {
					adopted = append(adopted, r)
				}
			}
		}
		fo.mu.Unlock()
		for _, r := range adopted {
			last := r.LastActivity()
			if last.Before(born) {
				last = born
			}
			if time.Since(last) > fo.cfg.RTSP.SessionTimeout {
				fo.log.Info("adopted reader silent; ending it", "route", r.s.path, "reader", r.remote)
				r.Close()
			}
		}
	}
}
