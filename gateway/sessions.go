package gateway

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp/srtp"
	"github.com/meshgw/meshgw/rtsp"
)

// sessions turns the front door's sessions into flows: readers (reader.go) with their UDP,
// interleaved and multicast tracks, publishers (publish.go), and route outputs, which are readers
// that never leave (output.go). It asks streams for a stream and its source, placement for the
// node that serves a reader, relays for the stream on that node, and the grace to let requests
// through; failover asks it to move and adopt readers.
type sessions struct {
	*core
	node    LocalNode
	place   *placement
	streams *streams
	relays  *relays
	gate    *grace
}

// openRead takes a reader's DESCRIBE (Control.OpenRead): it starts the stream's source when
// needed and waits until it has a description.
func (ss *sessions) openRead(ctx context.Context, ci rtsp.ConnInfo, path string) (rtsp.ReadStream, error) {
	r, ok := ss.cfg.Match(path)
	if !ok {
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no route matches %q", path)
	}
	s, err := ss.lockStream(ctx, r, path)
	if err != nil {
		return nil, err
	}
	if r.Source == config.SourcePublisher && (s.publisher == nil || !s.isUp) {
		if s.readers == 0 && s.publisher == nil {
			ss.streams.forgetLocked(s)
		}
		ss.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no one is publishing to %q", path)
	}
	if r.MaxReaders > 0 && s.readers-outputReaders(s) >= r.MaxReaders {
		ss.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusNotEnoughBandwidth, "route %q already has its %d readers", path, r.MaxReaders)
	}
	ss.streams.acquireLocked(s)
	if r.Source != config.SourcePublisher {
		err = ss.streams.startSourceLocked(ctx, s)
	}
	ready := s.ready
	ss.mu.Unlock()
	if err != nil {
		ss.streams.releaseReader(s)
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "source could not start", Err: err}
	}
	wait := startTimeout(r)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
		ss.streams.releaseReader(s)
		return nil, rtsp.Errorf(rtsp.StatusServiceUnavailable, "source of %q not ready after %s", path, wait)
	case <-ctx.Done():
		ss.streams.releaseReader(s)
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "gave up waiting for the source", Err: ctx.Err()}
	}
	ss.mu.Lock()
	rs := &reader{ss: ss, s: s, id: newID("rs"), remote: ci.Remote.Addr().Unmap(), conn: ci, started: time.Now(), sdp: s.sdp, tracks: s.tracks, gone: s.gone, flows: map[int]*readerFlow{}}
	s.rdrs[rs] = struct{}{}
	ss.mu.Unlock()
	return rs, nil
}

// lockStream lets a request for path (route r) through the startup grace and returns the path's
// stream with the control's lock held; with an error the lock is not held.
func (ss *sessions) lockStream(ctx context.Context, r config.Route, path string) (*stream, error) {
	if err := ss.gate.await(ctx, r); err != nil {
		return nil, err
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusServiceUnavailable, "shutting down")
	}
	return ss.streams.streamLocked(path, r), nil
}

// adoptReaderLocked rebuilds a UDP reader of s from one of its sink flows that m reported after
// the control restarted; false for a flow that is not one (it is deleted).
func (ss *sessions) adoptReaderLocked(m *member, s *stream, f node.Flow) bool {
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
		rd = &reader{ss: ss, s: s, id: f.Meta[metaSession], remote: addr, gone: s.gone, via: m,
			flows: map[int]*readerFlow{}, playing: !f.Paused(), adopted: true}
		s.rdrs[rd] = struct{}{}
		s.readers++
	}
	rd.flows[f.Track()] = &readerFlow{id: f.ID, flow: f}
	return true
}

// moveReader moves a UDP reader's flows from node from to another node: to, or the best live
// node other than from. The new node's flows are made before the old ones go, so a planned move
// loses nothing (the player's jitter buffer drops the few duplicates).
func (ss *sessions) moveReader(ctx context.Context, r *reader, from, to *member) {
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
				ss.log.Warn("SRTP reader not moved: its sender state is unknown", "route", r.s.path, "reader", r.remote, "from", from.name)
				return
			}
			resume[track] = st.SRTP
		}
	}
	if to == nil {
		ss.mu.Lock()
		to = ss.place.servingLocked(r.s, r.remote, from)
		ss.mu.Unlock()
	}
	if to == from {
		return
	}
	if err := ss.relays.ensure(ctx, r.s, to); err != nil {
		ss.log.Error("move reader: relay", "route", r.s.path, "to", to.name, "err", err)
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
			ss.log.Error("move reader: sink", "route", r.s.path, "track", track, "to", to.name, "err", err)
			continue
		}
		rf.flow = f
	}
	r.via = to
	if from.isAlive() {
		for _, rf := range r.flows {
			if err := from.n.Delete(ctx, rf.id); err != nil && !errors.Is(err, node.ErrNotFound) {
				ss.log.Error("move reader: delete old sink", "node", from.name, "err", err)
			}
		}
	}
	ss.relays.release(r.s, from)
	ss.log.Info("reader moved", "route", r.s.path, "reader", r.remote, "from", from.name, "to", to.name)
}
