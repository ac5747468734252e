package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// peerKey names one remote address on one socket of one of the node's pairs.
type peerKey struct {
	addr netip.AddrPort
	rtcp bool
	// second is the live-live pair on the node's second network
	second bool
}

func newPeerKey(addr netip.AddrPort, rtcp, second bool) peerKey {
	// the pair's demux keys unmapped addresses; ours must match them
	return peerKey{addr: netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()), rtcp: rtcp, second: second}
}

// route is where a datagram from a peer goes: a hub, on behalf of a flow (for its counters);
// a relayed track's RTP goes into the head of the track's chain (flow.setRelayChains).
type route struct {
	hub *rtp.Hub
	fl  *flow
	in  rtp.Writer // a relay's: the chain of the track (of the peer's leg), nil for an ingress
}

// peer is the node's one handler for one remote address on one socket of its pair. The pair
// demultiplexes by address only, and flows share addresses: every stream relayed from an upstream
// node comes from that node's one pair, and all the relay sinks towards a node send to its one
// pair, whose RTCP comes back from one address. So the flows of an address join its peer, which
// sorts datagrams by SSRC where it must.
//
// members changes under Local.mu; the read goroutine only loads the published snapshots, so the
// packet path takes no lock and allocates nothing.
type peer struct {
	key     peerKey
	members map[*flow]struct{}

	// routes sends relayed datagrams by SSRC: RTP by its SSRC, RTCP by the sender of its first
	// report. Never nil.
	routes atomic.Pointer[map[uint32]route]
	// ingress is the publisher (IngressUDP) whose packets come from this address, nil if none.
	ingress atomic.Pointer[route]
	// alive are the UDP sinks sending to this address: any RTCP from it proves their reader is
	// there. Never nil.
	alive atomic.Pointer[[]*flow]

	// dropped counts datagrams nobody here expects (unknown SSRC, malformed header).
	dropped atomic.Uint64
}

func newPeer(k peerKey) *peer {
	p := &peer{key: k, members: map[*flow]struct{}{}}
	p.publish()
	return p
}

// publish rebuilds what the read goroutine sees from the members.
func (p *peer) publish() {
	routes := map[uint32]route{}
	alive := []*flow{}
	var in *flow
	for f := range p.members {
		switch sp := f.spec.Spec.(type) {
		case RelaySource:
			hubs, heads := f.stream.hubs, f.in
			if p.key.second && f.in2 != nil {
				heads = f.in2
			}
			for i, ssrc := range sp.SSRCs {
				if i < len(hubs) && i < len(heads) {
					routes[ssrc] = route{hub: hubs[i], fl: f, in: heads[i]}
				}
			}
		case UDPSink:
			alive = append(alive, f)
		case UDPIngress:
			// two publishers claiming one address: the later one wins, as the older one is
			// most likely gone without its teardown yet
			if f.hub != nil && (in == nil || f.seq > in.seq) {
				in = f
			}
		}
	}
	p.routes.Store(&routes)
	p.alive.Store(&alive)
	if in != nil {
		p.ingress.Store(&route{hub: in.hub, fl: in})
	} else {
		p.ingress.Store(nil)
	}
}

// handleRTP takes one RTP datagram from the peer, on the pair's read goroutine.
func (p *peer) handleRTP(b []byte) {
	if in := p.ingress.Load(); in != nil {
		in.fl.last.Store(time.Now().UnixNano())
		if un := in.fl.srtp.Load(); un != nil {
			var err error
			if b, err = un.RTP(b); err != nil {
				in.fl.errs.Add(1) // forged, replayed or damaged: never reaches the hub
				return
			}
		}
		in.fl.pkts.Add(1)
		in.fl.bytes.Add(uint64(len(b)))
		_ = in.hub.WriteRTP(b) // invalid packets are counted by the hub
		return
	}
	if len(b) < 12 {
		p.dropped.Add(1)
		return
	}
	r, ok := (*p.routes.Load())[binary.BigEndian.Uint32(b[8:12])]
	if !ok {
		p.dropped.Add(1)
		return
	}
	r.in.WriteRTP(b)
}

// handleRTCP takes one RTCP datagram from the peer, on the pair's read goroutine.
func (p *peer) handleRTCP(b []byte) {
	now := time.Now().UnixNano()
	alive := *p.alive.Load()
	for _, f := range alive {
		f.last.Store(now)
	}
	if len(alive) > 0 {
		answerNACKs(b, alive) // a far node asking its relay sinks for lost packets
		noteReports(b, alive)
	}
	if in := p.ingress.Load(); in != nil {
		if un := in.fl.srtp.Load(); un != nil {
			var err error
			if b, err = un.RTCP(b); err != nil {
				in.fl.errs.Add(1)
				return
			}
		}
		in.fl.last.Store(now)
		_ = in.hub.WriteRTCP(b)
		return
	}
	if ssrc, ok := rtcpSender(b); ok {
		if r, ok := (*p.routes.Load())[ssrc]; ok {
			if un := r.fl.unprotector(p.key.second); un != nil {
				var err error
				if b, err = un.RTCP(b); err != nil {
					r.fl.errs.Add(1)
					return
				}
			}
			r.fl.last.Store(now)
			// the upstream hub's sender reports give the relay hub its NTP/RTP mapping
			if err := r.hub.WriteRTCP(b); err != nil && !errors.Is(err, rtp.ErrClosed) {
				r.fl.errs.Add(1)
			}
			return
		}
	}
	if len(alive) == 0 {
		p.dropped.Add(1)
	}
}

// unprotector is the relay leg's SRTCP context (the legs' SRTP share one, see setRelayChains).
func (fl *flow) unprotector(second bool) *srtp.Unprotector {
	if second {
		return fl.srtp2.Load()
	}
	return fl.srtp.Load()
}

// noteReports keeps what a reader's receiver reports say about the lines its sinks send (loss,
// jitter, round trip). SRTP readers send SRTCP, whose report blocks are encrypted: their sinks
// keep no reception statistics.
func noteReports(b []byte, alive []*flow) {
	now := rtp.Now()
	r := rtp.NewReportBlocks(b)
	for blk, ok := r.Next(); ok; blk, ok = r.Next() {
		for _, f := range alive {
			if h := f.hub; h != nil && !f.srtpOut && h.SSRC() == blk.SSRC {
				f.rrMu.Lock()
				f.rr.Note(blk, h.Track().ClockRate, now, h.SRSentAt)
				f.rrMu.Unlock()
			}
		}
	}
}

// rtcpSender returns the sender SSRC of the first report of a compound RTCP packet, which RFC 3550
// §6.1 requires to be an SR or an RR: it names the RTP line the packet is about.
func rtcpSender(b []byte) (uint32, bool) {
	if len(b) < 8 || b[0]>>6 != 2 {
		return 0, false
	}
	if b[1] != 200 && b[1] != 201 { // SR, RR
		return 0, false
	}
	return binary.BigEndian.Uint32(b[4:8]), true
}

// joinPeerLocked makes fl a member of the peer of k, registering the peer with the pair when it
// is new.
func (n *Local) joinPeerLocked(k peerKey, fl *flow) {
	p := n.peers[k]
	if p == nil {
		p = newPeer(k)
		n.peers[k] = p
		if k.rtcp {
			n.pair(k.second).HandleRTCP(k.addr, p.handleRTCP)
		} else {
			n.pair(k.second).HandleRTP(k.addr, p.handleRTP)
		}
	}
	p.members[fl] = struct{}{}
	p.publish()
}

// leavePeerLocked removes fl from the peer of k; the last member takes the peer with it.
func (n *Local) leavePeerLocked(k peerKey, fl *flow) {
	p := n.peers[k]
	if p == nil {
		return
	}
	delete(p.members, fl)
	if len(p.members) > 0 {
		p.publish()
		return
	}
	delete(n.peers, k)
	if k.rtcp {
		n.pair(k.second).HandleRTCP(k.addr, nil)
	} else {
		n.pair(k.second).HandleRTP(k.addr, nil)
	}
}

// peerKeys are the addresses a flow receives from: those of its spec if it receives from any
// (a relay source's upstream, a publisher's ingress, a reader's RTCP to its UDP sink).
func peerKeys(f Flow) []peerKey {
	if r, ok := f.Spec.(interface{ peerKeys() []peerKey }); ok {
		return r.peerKeys()
	}
	return nil
}

func (s RelaySource) peerKeys() []peerKey {
	ks := []peerKey{newPeerKey(s.RTP, false, false), newPeerKey(s.RTCP, true, false)}
	if s.RTP2.IsValid() {
		ks = append(ks, newPeerKey(s.RTP2, false, true), newPeerKey(s.RTCP2, true, true))
	}
	return ks
}

func (s UDPIngress) peerKeys() []peerKey {
	return []peerKey{newPeerKey(s.RTP, false, false), newPeerKey(s.RTCP, true, false)}
}

func (s UDPSink) peerKeys() []peerKey { return []peerKey{newPeerKey(s.RTCP, true, s.SecondPair)} }

// peerConflictLocked refuses a flow that would take datagrams meant for another: one upstream hub
// relayed into two streams, or a publisher and a relay on one address (a publisher's packets are
// not sorted by SSRC).
func (n *Local) peerConflictLocked(fl *flow, f Flow) error {
	for _, k := range peerKeys(f) {
		p := n.peers[k]
		if p == nil {
			continue
		}
		for o := range p.members {
			if o == fl {
				continue
			}
			mine, theirs := f.Kind(), o.spec.Kind()
			switch {
			case mine == SourceRelay && theirs == SourceRelay:
				ssrcs := o.spec.Spec.(RelaySource).SSRCs
				for _, ssrc := range f.Spec.(RelaySource).SSRCs {
					if slices.Contains(ssrcs, ssrc) {
						return fmt.Errorf("SSRC %08x from %s is already relayed by flow %s", ssrc, k.addr, o.spec.ID)
					}
				}
			case mine == SourceRelay && theirs == IngressUDP,
				mine == IngressUDP && theirs == SourceRelay:
				return fmt.Errorf("%s is taken by %s flow %s", k.addr, theirs, o.spec.ID)
			}
		}
	}
	return nil
}

// movePeersLocked makes fl, whose spec is now next, a member of next's peers and of no others,
// joining before leaving so that an address kept across the change never loses its handler.
func (n *Local) movePeersLocked(fl *flow, prev, next Flow) {
	keys := peerKeys(next)
	for _, k := range keys {
		n.joinPeerLocked(k, fl)
	}
	for _, k := range peerKeys(prev) {
		if !slices.Contains(keys, k) {
			n.leavePeerLocked(k, fl)
		}
	}
}
