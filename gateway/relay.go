package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// relay carries one stream from its ingest node to one other node over RTP/UDP: a UDP sink per
// track on the ingest node aimed at the far node's socket pair, and a relay source on the far node
// that feeds its own hubs. However many readers the far node serves, the stream crosses once.
//
// The far node's hubs are transparent (they keep the ingest hub's SSRC, sequence numbers and
// timestamps), so a reader moved between nodes sees one continuous line.
//
// With control.relay_live_live on and a second network on both nodes, the link runs twice, once
// over each network (SMPTE 2022-7): a second sink per track sends the same packets from the
// ingest node's second pair, and the far node merges the legs before loss repair.
type relay struct {
	to     *member
	from   *member
	sinks  []node.Flow // on from: one per track, then the second leg's when it has one
	source node.Flow   // on to
	users  int
}

// relays builds, shares, re-points and takes down the relays of streams between nodes. A
// stream's relays are under its relayMu; the stream fields it reads (ingest, tracks) under the
// control's lock. It calls only the nodes.
type relays struct{ *core }

// ensure makes stream s available on node to and counts one more user of it there. Readers
// call it before they take flows on to, and release when they leave.
func (rl *relays) ensure(ctx context.Context, s *stream, to *member) error {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	rl.mu.Lock()
	from := s.ingest
	tracks := s.tracks
	rl.mu.Unlock()
	if from == nil || from == to {
		return nil
	}
	if r := s.relays[to.name]; r != nil && r.to == to && r.from == from {
		r.users++
		return nil
	}
	r, err := rl.build(ctx, s, from, to, len(tracks))
	if err != nil {
		return err
	}
	r.users = 1
	s.relays[to.name] = r
	return nil
}

// build creates the flows of a relay from → to. It holds s.relayMu.
func (rl *relays) build(ctx context.Context, s *stream, from, to *member, ntracks int) (*relay, error) {
	rl.mu.Lock()
	tracks := s.tracks
	rl.mu.Unlock()
	if len(tracks) != ntracks || ntracks == 0 {
		return nil, fmt.Errorf("stream %s has no tracks yet", s.path)
	}
	r := &relay{to: to, from: from}
	r.source = node.Flow{Version: 1, Stream: s.id, Spec: node.RelaySource{Tracks: tracks, Pacing: s.route.Pacing},
		Meta: map[string]string{metaRole: roleRelayIn, metaRoute: s.path, metaPeer: from.name}}
	if err := rl.makeSinks(ctx, s, r, tracks); err != nil {
		rl.drop(r)
		return nil, err
	}
	r.source = rl.nack(r.source)
	r.source.ID = newID("ri")
	if _, err := to.n.Apply(ctx, r.source); err != nil {
		r.source = node.Flow{}
		rl.drop(r)
		return nil, fmt.Errorf("relay %s→%s: %w", from.name, to.name, err)
	}
	legs := 1
	if rs, _ := r.source.Spec.(node.RelaySource); rs.RTP2.IsValid() {
		legs = 2
	}
	rl.log.Info("relay up", "route", s.path, "from", from.name, "to", to.name, "tracks", len(tracks), "legs", legs)
	return r, nil
}

// makeSinks draws a new key and creates the sinks of relay r on r.from, one per track and leg,
// and points r.source (not yet applied) at them: upstream addresses, SSRCs, key and the second
// leg when both nodes have a second network and control.relay_live_live is on.
func (rl *relays) makeSinks(ctx context.Context, s *stream, r *relay, tracks []rtp.Track) error {
	dstRTP, dstRTCP, ok := r.to.rtpAddrs()
	if !ok {
		return fmt.Errorf("node %s has no data address to relay to; set node.data_address in its config", r.to.name)
	}
	srcRTP, srcRTCP, ok := r.from.rtpAddrs()
	if !ok {
		return fmt.Errorf("node %s has no data address to relay from; set node.data_address in its config", r.from.name)
	}
	// a new key each time: new sinks start their SRTP index afresh, which must never repeat an
	// index under an old key
	key, err := relayKey()
	if err != nil {
		return err
	}
	type leg struct {
		dstRTP, dstRTCP netip.AddrPort
		second          bool
	}
	legs := []leg{{dstRTP, dstRTCP, false}}
	var srcRTP2, srcRTCP2 netip.AddrPort
	if rl.conf().Control.RelayLiveLive > 0 {
		d2, d2c, ok1 := r.to.liveLiveAddrs()
		s2, s2c, ok2 := r.from.liveLiveAddrs()
		if ok1 && ok2 {
			legs = append(legs, leg{d2, d2c, true})
			srcRTP2, srcRTCP2 = s2, s2c
		}
	}
	ssrcs := make([]uint32, len(tracks))
	for _, l := range legs {
		for i := range tracks {
			f := rl.nack(node.Flow{ID: newID("rl"), Version: 1, Stream: s.id,
				Spec: node.UDPSink{Track: i, RTP: l.dstRTP, RTCP: l.dstRTCP, SecondPair: l.second, SRTPKey: key},
				Meta: map[string]string{metaRole: roleRelayOut, metaRoute: s.path, metaPeer: r.to.name}})
			st, err := r.from.n.Apply(ctx, f)
			if err != nil {
				return fmt.Errorf("relay %s→%s track %d: %w", r.from.name, r.to.name, i, err)
			}
			r.sinks = append(r.sinks, f)
			if !l.second {
				ssrcs[i] = st.SSRC
			} else if st.SSRC != ssrcs[i] {
				// both legs are sinks of one hub: they cannot differ
				return fmt.Errorf("relay %s→%s track %d: the legs' SSRCs differ (%08x, %08x)", r.from.name, r.to.name, i, ssrcs[i], st.SSRC)
			}
		}
	}
	rs, _ := r.source.Spec.(node.RelaySource) // an adopted one is a relay source by its role
	rs.SSRCs = ssrcs
	rs.SRTPKey = key
	rs.RTP, rs.RTCP = srcRTP, srcRTCP
	rs.RTP2, rs.RTCP2 = srcRTP2, srcRTCP2
	rs.Skew = 0
	if srcRTP2.IsValid() {
		rs.Skew = rl.conf().Control.RelayLiveLive
	}
	r.source.Spec = rs
	return nil
}

// relayKey draws the SRTP key of one relay link. Node-to-node links are always encrypted and
// authenticated: they may cross networks the control does not own, and a forged datagram from
// an upstream's address must not reach readers. The key reaches both nodes only inside their
// flows, over the control's mTLS channel.
func relayKey() ([]byte, error) {
	k, err := srtp.NewKey()
	if err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	return k[:], nil
}

// drop deletes what exists of a relay on nodes still alive.
func (rl *relays) drop(r *relay) {
	ctx := context.Background()
	if r.from.isAlive() {
		for _, f := range r.sinks {
			if err := r.from.n.Delete(ctx, f.ID); err != nil && !errors.Is(err, node.ErrNotFound) {
				rl.log.Error("delete relay sink", "node", r.from.name, "flow", f.ID, "err", err)
			}
		}
	}
	if r.source.ID != "" && r.to.isAlive() {
		if err := r.to.n.Delete(ctx, r.source.ID); err != nil && !errors.Is(err, node.ErrNotFound) {
			rl.log.Error("delete relay source", "node", r.to.name, "flow", r.source.ID, "err", err)
		}
	}
}

// release drops one user of stream s on node to; the last user takes the relay down.
func (rl *relays) release(s *stream, to *member) {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	r := s.relays[to.name]
	if r == nil || r.to != to {
		return
	}
	r.users--
	if r.users > 0 {
		return
	}
	delete(s.relays, to.name)
	rl.drop(r)
	rl.log.Info("relay down", "route", s.path, "from", r.from.name, "to", to.name)
}

// repointAllLocked moves every relay of s to a new ingest node (the old one died): new sinks on the
// new ingest, and each far node's relay source updated in place (same hubs, so its readers keep
// their line: the SSRC change starts a new epoch that continues it). A far node that is the new
// ingest itself needs no relay any more; its readers now read the source's hubs directly. It holds
// s.relayMu.
func (rl *relays) repointAllLocked(ctx context.Context, s *stream, to *member) {
	for name, r := range s.relays {
		if r.to == to {
			delete(s.relays, name)
			continue
		}
		old := r.from
		r.from = to
		oldSinks := r.sinks
		r.sinks = nil
		if old.isAlive() {
			for _, f := range oldSinks {
				_ = old.n.Delete(ctx, f.ID)
			}
		}
		if err := rl.repoint(ctx, s, r); err != nil {
			rl.log.Error("re-point relay", "route", s.path, "to", r.to.name, "err", err)
		}
	}
}

func (rl *relays) repoint(ctx context.Context, s *stream, r *relay) error {
	rl.mu.Lock()
	tracks := s.tracks
	rl.mu.Unlock()
	if err := rl.makeSinks(ctx, s, r, tracks); err != nil {
		return err
	}
	r.source.Version++
	r.source.Meta[metaPeer] = r.from.name
	if _, err := r.to.n.Apply(ctx, r.source); err != nil {
		return fmt.Errorf("update relay source on %s: %w", r.to.name, err)
	}
	rl.log.Info("relay re-pointed", "route", s.path, "from", r.from.name, "to", r.to.name)
	return nil
}

// nack sets a relay flow's loss repair from control.relay_nack.
func (rl *relays) nack(f node.Flow) node.Flow {
	ctl := rl.conf().Control
	nack := ctl.RelayNACK
	switch sp := f.Spec.(type) {
	case node.UDPSink:
		sp.NACK = nack
		f.Spec = sp
	case node.RelaySource:
		sp.NACK = nack
		if nack {
			sp.NACKWait = ctl.RelayNACKWait
		}
		f.Spec = sp
	}
	return f
}

// dropToLocked takes down the relay of s toward dead, a node that died: the sinks on the ingest
// node still point at it. It holds s.relayMu.
func (rl *relays) dropToLocked(s *stream, dead *member) {
	if r := s.relays[dead.name]; r != nil && r.to == dead {
		delete(s.relays, dead.name)
		rl.drop(r)
	}
}

// yieldLocked removes the relay of s into node to, which becomes the stream's ingest node: its
// relay source goes, the hubs stay for the readers there and take the new source. It holds
// s.relayMu.
func (rl *relays) yieldLocked(ctx context.Context, s *stream, to *member) {
	r := s.relays[to.name]
	if r == nil {
		return
	}
	if err := to.n.Delete(ctx, r.source.ID); err != nil && !errors.Is(err, node.ErrNotFound) {
		rl.log.Error("delete relay source before re-ingest", "node", to.name, "err", err)
	}
	delete(s.relays, to.name)
}

// has reports whether s has a relay into node to.
func (rl *relays) has(s *stream, to *member) bool {
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	return s.relays[to.name] != nil
}

// knownLocked reports whether flow id on m belongs to a relay of s. It holds the control's lock.
func (rl *relays) knownLocked(s *stream, m *member, id string) bool {
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
	return false
}

// adoptSinkLocked rebuilds the relay of s from m to peer from one of its sinks on m, which m
// reported after the control restarted.
func (rl *relays) adoptSinkLocked(s *stream, m, peer *member, f node.Flow) {
	r := adoptedLocked(s, peer, m)
	r.from = m
	r.sinks = append(r.sinks, f)
}

// adoptSourceLocked rebuilds the relay of s from peer to m from its source on m, which m
// reported after the control restarted; peer is used only when the relay is new.
func (rl *relays) adoptSourceLocked(s *stream, m, peer *member, f node.Flow) {
	adoptedLocked(s, m, peer).source = f
}

// adoptedLocked is the relay of s into node to being rebuilt from the nodes' reports, made from
// node from when there is none yet.
func adoptedLocked(s *stream, to, from *member) *relay {
	r := s.relays[to.name]
	if r == nil {
		r = &relay{to: to, from: from}
		s.relays[to.name] = r
	}
	return r
}

// settleLocked, at the end of a restart's adoption, counts the users of each adopted relay of s
// (users: readers per node) and takes down those that are not whole (a node missing, a part
// not reported, not from the stream's ingest node) or that nobody uses. It holds s.relayMu.
func (rl *relays) settleLocked(s *stream, ingest *member, users map[*member]int) {
	for name, r := range s.relays {
		r.users = users[r.to]
		whole := r.from != nil && r.from.isAlive() && r.to.isAlive() && r.source.ID != "" && len(r.sinks) > 0 && r.from == ingest
		if !whole || r.users == 0 {
			delete(s.relays, name)
			rl.drop(r)
		}
	}
}
