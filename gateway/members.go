package gateway

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
)

// Meta labels the control puts on every flow it creates. Nodes keep them and report them back
// when they re-attach, which is how a restarted control rebuilds its state from the nodes.
const (
	metaRole    = "role"    // one of the role* values
	metaRoute   = "route"   // the stream's path (route name, or the matched path of a regex route)
	metaSession = "session" // reader flows: the RTSP session ID
	metaPeer    = "peer"    // relay flows: the node at the other end
	metaReader  = "reader"  // reader flows: the reader's address, for placement after a restart

	roleSource   = "source"
	roleRelayOut = "relay-out"
	roleRelayIn  = "relay-in"
	roleReader   = "reader"
)

// NodeInfo is what a node says about itself when it attaches.
type NodeInfo struct {
	// Data is the address readers and other nodes reach the node's RTP ports at.
	Data     netip.Addr
	RTPPort  int
	RTCPPort int
	// ClientNetworks: UDP readers inside these are served by the node.
	ClientNetworks []netip.Prefix
	// LiveLive is the node's address on its second network and LiveLiveRTPPort/RTCPPort its
	// second pair there (node.live_live_address); invalid and 0 without.
	LiveLive                          netip.Addr
	LiveLiveRTPPort, LiveLiveRTCPPort int
	// Boot changes every time the node process starts, so a restarted node (no flows) is told
	// apart from one that re-attached after a control restart (flows kept).
	Boot string
}

// member is a node as the control steers it: the embedded local node or a remote one. A remote
// node that re-attaches keeps its member (relays and readers point at it); only the connection
// behind n changes.
type member struct {
	name  string
	n     *nodeRef
	local bool
	// info and alive are guarded by the control's lock; alive is also read without it.
	info  NodeInfo
	alive atomic.Bool
}

func (m *member) isAlive() bool { return m.alive.Load() }

// nodeRef is the current connection to a node, swapped when it re-attaches.
type nodeRef struct {
	mu  sync.Mutex
	cur node.Node
}

func (r *nodeRef) get() node.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *nodeRef) set(n node.Node) {
	r.mu.Lock()
	r.cur = n
	r.mu.Unlock()
}

func (r *nodeRef) Name() string {
	if n := r.get(); n != nil {
		return n.Name()
	}
	return ""
}

func (r *nodeRef) Apply(ctx context.Context, f node.Flow) (node.FlowStatus, error) {
	n := r.get()
	if n == nil {
		return node.FlowStatus{}, errNodeGone
	}
	return n.Apply(ctx, f)
}

func (r *nodeRef) Delete(ctx context.Context, id string) error {
	n := r.get()
	if n == nil {
		return errNodeGone
	}
	return n.Delete(ctx, id)
}

func (r *nodeRef) Stats(id string) (node.FlowStats, error) {
	n := r.get()
	if n == nil {
		return node.FlowStats{}, errNodeGone
	}
	return n.Stats(id)
}

// errNodeGone: the node has never attached, or its connection is gone.
var errNodeGone = errors.New("node is not attached")

// rtpAddrs are the member's data addresses, where relays and players send to it and where its
// packets come from. ok is false when the node never said where it can be reached.
func (m *member) rtpAddrs() (rtpAP, rtcpAP netip.AddrPort, ok bool) {
	if !m.info.Data.IsValid() || m.info.RTPPort == 0 {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(m.info.Data, uint16(m.info.RTPPort)), netip.AddrPortFrom(m.info.Data, uint16(m.info.RTCPPort)), true
}

// liveLiveAddrs are the member's second-network addresses, where the second leg of a live-live
// relay goes to and comes from; ok is false when it has no second network.
func (m *member) liveLiveAddrs() (rtpAP, rtcpAP netip.AddrPort, ok bool) {
	if !m.info.LiveLive.IsValid() || m.info.LiveLiveRTPPort == 0 {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(m.info.LiveLive, uint16(m.info.LiveLiveRTPPort)), netip.AddrPortFrom(m.info.LiveLive, uint16(m.info.LiveLiveRTCPPort)), true
}

// servesNetwork is the length of the longest client network of m containing a, or -1.
func (m *member) servesNetwork(a netip.Addr) int {
	best := -1
	a = a.Unmap()
	for _, p := range m.info.ClientNetworks {
		if p.Contains(a) && p.Bits() > best {
			best = p.Bits()
		}
	}
	return best
}

// placement is the node registry and the choice of nodes: which node ingests a stream, which
// serves a UDP reader, which are alive. It holds every member, the local node included, and calls
// no other part of the control. Its state is under the control's lock.
type placement struct {
	*core
	members map[string]*member // by node name, the local node included
	local   *member
}

func newPlacement(co *core, n node.Node) *placement {
	local := &member{name: co.cfg.Node.Name, n: &nodeRef{cur: n}, local: true}
	local.alive.Store(true)
	if a := co.cfg.Node.DataAddress; a.IsValid() {
		local.info.Data = a
	}
	return &placement{core: co, members: map[string]*member{local.name: local}, local: local}
}

// setLocalPorts records where the local node's socket pair is (Control.SetLocalPorts).
func (p *placement) setLocalPorts(addr netip.Addr, rtpPort, rtcpPort int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr.IsValid() && !addr.IsUnspecified() && !p.local.info.Data.IsValid() {
		p.local.info.Data = addr.Unmap()
	}
	p.local.info.RTPPort, p.local.info.RTCPPort = rtpPort, rtcpPort
}

// setLocalLiveLive records where the local node's second pair is (Control.SetLocalLiveLive).
func (p *placement) setLocalLiveLive(addr netip.Addr, rtpPort, rtcpPort int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.local.info.LiveLive = addr.Unmap()
	p.local.info.LiveLiveRTPPort, p.local.info.LiveLiveRTCPPort = rtpPort, rtcpPort
}

// upLocked records that the remote node name attached over n, saying info about itself. It
// returns its member and whether the node restarted since it was last seen; nil when the name is
// the local node's.
func (p *placement) upLocked(name string, n node.Node, info NodeInfo) (m *member, restarted bool) {
	m = p.members[name]
	if m != nil && m.local {
		return nil, false
	}
	if m == nil {
		m = &member{name: name, n: &nodeRef{}}
		p.members[name] = m
	}
	restarted = m.info.Boot != "" && m.info.Boot != info.Boot
	m.info = info
	m.n.set(n)
	m.alive.Store(true)
	return m, restarted
}

// downLocked marks the remote node name dead when n is its current connection and returns its
// member; nil for an older connection of a node that already re-attached, or one already down.
func (p *placement) downLocked(name string, n node.Node) *member {
	m := p.members[name]
	if m == nil || m.local || m.n.get() != n || !m.isAlive() {
		return nil
	}
	m.alive.Store(false)
	return m
}

// lookupLocked is the member named name, nil when none.
func (p *placement) lookupLocked(name string) *member { return p.members[name] }

// attachedLocked is the member named name when it is alive, else nil.
func (p *placement) attachedLocked(name string) *member {
	if m := p.members[name]; m != nil && m.isAlive() {
		return m
	}
	return nil
}

// memberLocked returns the member named name, creating a not-yet-attached one.
func (p *placement) memberLocked(name string) *member {
	m := p.members[name]
	if m == nil {
		m = &member{name: name, n: &nodeRef{}}
		p.members[name] = m
	}
	return m
}

// aliveMembersLocked lists live members in name order, so placement is deterministic.
func (p *placement) aliveMembersLocked() []*member {
	out := make([]*member, 0, len(p.members))
	for _, m := range p.members {
		if m.isAlive() {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// ingestLocked picks the node that ingests a stream of route r: the route's node when it is
// attached, else the live remote node carrying the fewest sources (load: sources per node) (so a
// control restart does not take the stream down with the local node), else the local node.
// Publishers are always local: their RTSP connection ends at the control.
func (p *placement) ingestLocked(s *stream, exclude *member, load map[*member]int) *member {
	if s.publisher != nil || s.route.Source == config.SourcePublisher {
		return p.local
	}
	if want := s.route.Node; want != "" {
		if m := p.members[want]; m != nil && m.isAlive() && m != exclude {
			return m
		}
		p.log.Warn("route's node is not attached; placing its source elsewhere", "route", s.path, "node", want)
	}
	var best *member
	for _, m := range p.aliveMembersLocked() {
		if m.local || m == exclude {
			continue
		}
		if _, _, ok := m.rtpAddrs(); !ok {
			continue
		}
		if best == nil || load[m] < load[best] {
			best = m
		}
	}
	if best == nil {
		return p.local
	}
	return best
}

// servingLocked picks the node that sends to a UDP reader at addr: the node whose client
// networks contain it (longest prefix wins), else the stream's ingest node, else the local node.
func (p *placement) servingLocked(s *stream, addr netip.Addr, exclude *member) *member {
	var best *member
	bestBits := -1
	for _, m := range p.aliveMembersLocked() {
		if m == exclude {
			continue
		}
		if b := m.servesNetwork(addr); b > bestBits {
			best, bestBits = m, b
		}
	}
	if best != nil {
		return best
	}
	if s.ingest != nil && s.ingest.isAlive() && s.ingest != exclude {
		return s.ingest
	}
	return p.local
}
