package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/meshgw/meshgw/gateway/node"
)

// Outputs (routes.*.outputs) are readers that never leave: each is a reader of its stream whose
// flows are SinkRTP flows instead of RTSP sessions' sinks. Being readers, they keep the source
// running (on_demand routes start at once and never idle), they take a relay when their node is
// not the ingest node, and a node failure moves them as it moves readers (moveReader: to the
// stream's ingest node, which failover has already re-placed). When the stream's track layout
// changes, new outputs replace the old ones.

const (
	roleOutput = "output"
	metaOutput = "output" // output flows: the output's index in the route's outputs
)

// ensureOutputsLocked makes sure every configured output of s exists for its current layout,
// in the background (flows are applied to nodes, which must not happen under the lock).
func (ss *sessions) ensureOutputsLocked(s *stream) {
	if len(s.route.Outputs) == 0 || ss.closed || ss.detached || !s.isUp {
		return
	}
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		ss.syncOutputs(context.Background(), s)
	}()
}

// syncOutputs creates the outputs s lacks and replaces those of an old track layout; new ones
// are up before old ones go, so the stream never drops to no reader.
func (ss *sessions) syncOutputs(ctx context.Context, s *stream) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	for i := range s.route.Outputs {
		ss.mu.Lock()
		if ss.closed || ss.detached || !ss.streams.currentLocked(s) || !s.isUp {
			ss.mu.Unlock()
			return
		}
		old := s.outputs[i]
		if old != nil && old.gone == s.gone {
			ss.mu.Unlock()
			continue
		}
		rd := &reader{ss: ss, s: s, id: newID("out"), sdp: s.sdp, tracks: s.tracks, gone: s.gone,
			flows: map[int]*readerFlow{}, playing: true, output: &s.route.Outputs[i]}
		s.rdrs[rd] = struct{}{}
		ss.streams.acquireLocked(s)
		s.outputs[i] = rd
		ss.mu.Unlock()
		if err := ss.startOutput(ctx, rd, i); err != nil {
			ss.log.Error("output not started", "route", s.path, "url", rd.output.URL, "err", err)
			ss.mu.Lock()
			if s.outputs[i] == rd {
				delete(s.outputs, i)
			}
			ss.mu.Unlock()
			rd.Close()
		} else {
			ss.log.Info("output started", "route", s.path, "url", rd.output.URL, "node", rd.via.name, "tracks", len(rd.tracks))
		}
		if old != nil {
			old.Close()
		}
	}
}

// startOutput places an output on its node (routes.*.outputs.node when attached, else the
// ingest node) and creates its flows, one per track.
func (ss *sessions) startOutput(ctx context.Context, rd *reader, idx int) error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	o := rd.output
	ss.mu.Lock()
	want := rd.s.ingest
	if o.Node != "" {
		if m := ss.place.attachedLocked(o.Node); m != nil {
			want = m
		} else {
			ss.log.Warn("output's node is not attached; sending from the ingest node", "route", rd.s.path, "node", o.Node)
		}
	}
	ss.mu.Unlock()
	if want == nil {
		return fmt.Errorf("stream %s has no ingest node", rd.s.path)
	}
	m, err := rd.attachLocked(ctx, want, netip.Addr{})
	if err != nil {
		return err
	}
	for track := range rd.tracks {
		f, err := outputFlow(rd, idx, track)
		if o.ST2110 != nil {
			var ok bool
			if f, ok, err = st2110OutputFlow(rd, idx, track); err == nil && !ok {
				continue
			}
		}
		if err != nil {
			return err
		}
		if _, err := m.n.Apply(ctx, f); err != nil {
			return fmt.Errorf("track %d on node %s: %w", track, m.name, err)
		}
		rd.flows[track] = &readerFlow{id: f.ID, flow: f}
	}
	return nil
}

// outputFlow is the SinkRTP flow of one track of an output: track i goes to port + i×stride.
func outputFlow(rd *reader, idx, track int) (node.Flow, error) {
	o := rd.output
	meta := map[string]string{metaRole: roleOutput, metaRoute: rd.s.path, metaSession: rd.id, metaOutput: strconv.Itoa(idx)}
	if o.Memif != nil {
		// a memif consumer interface of the output's node: every track to the one interface
		return node.Flow{ID: newID("out"), Version: 1, Stream: rd.s.id,
			Spec: node.MemifSink{Track: track, Interface: o.Memif.ID}, Meta: meta}, nil
	}
	off := track * o.PortStride()
	for _, ap := range []netip.AddrPort{o.Dest, o.Leg2} {
		if ap.IsValid() && int(ap.Port())+off+o.PortStride()-1 > 65535 {
			return node.Flow{}, fmt.Errorf("track %d of %s would need ports above 65535", track, ap)
		}
	}
	at := func(ap netip.AddrPort, d int) netip.AddrPort {
		if !ap.IsValid() {
			return ap
		}
		return netip.AddrPortFrom(ap.Addr(), uint16(int(ap.Port())+off+d))
	}
	spec := node.OutputSpec{Leg2: at(o.Leg2, 0), TTL: o.TTL}
	if o.FEC != nil {
		cfg := o.FEC.FECConfig()
		spec.FECColumns, spec.FECRows, spec.FECMode = cfg.Columns, cfg.Rows, cfg.Mode
	}
	return node.Flow{ID: newID("out"), Version: 1, Stream: rd.s.id,
		Spec: node.RTPSink{Track: track, RTP: at(o.Dest, 0), RTCP: at(o.Dest, 1), Output: spec}, Meta: meta}, nil
}

// adoptOutputLocked rebuilds an output from one of its flows a node reported after the control
// restarted; false for a flow that matches no configured output (it is deleted).
func (ss *sessions) adoptOutputLocked(m *member, s *stream, f node.Flow) bool {
	idx, err := strconv.Atoi(f.Meta[metaOutput])
	if err != nil || idx < 0 || idx >= len(s.route.Outputs) || (f.Kind() != node.SinkRTP && f.Kind() != node.SinkMemif && f.Kind() != node.SinkST2110) || f.Meta[metaSession] == "" {
		return false
	}
	rd := s.outputs[idx]
	if rd == nil {
		rd = &reader{ss: ss, s: s, id: f.Meta[metaSession], via: m, gone: s.gone,
			flows: map[int]*readerFlow{}, playing: true, output: &s.route.Outputs[idx]}
		s.rdrs[rd] = struct{}{}
		s.readers++
		s.outputs[idx] = rd
	} else if rd.id != f.Meta[metaSession] || rd.via != m {
		return false // the output was already adopted from another node's flows
	}
	rd.flows[f.Track()] = &readerFlow{id: f.ID, flow: f}
	return true
}

// outputReaders is how many of s's readers are outputs, which max_readers does not count.
func outputReaders(s *stream) int { return len(s.outputs) }
