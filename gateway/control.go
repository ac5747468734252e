// Package gateway is meshgw's control: it turns the route table into live streams, decides which
// node carries what, and steers nodes through flows. The RTSP front door (package rtsp) asks it for
// streams; nodes (package gateway/node) report back what their sources do.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// LocalNode is the node embedded in the control's process: a Node that also lends hubs to the
// control's interleaved (TCP) sessions.
type LocalNode interface {
	node.Node
	Hub(stream string, track int) (*rtp.Hub, error)
}

// Control owns routes and streams and steers the nodes: its embedded local node and the remote
// nodes that attach to it. It is a facade: it holds no state of its own and hands each call to
// one of its parts, each of which owns one kind of state and calls only the parts below it:
//
//	failover  node ups and downs, adoption after a restart (failover.go)
//	   ↓      calls sessions, streams, relays, placement, grace
//	sessions  readers, publishers, multicast, outputs (sessions.go, reader.go, publish.go, output.go)
//	   ↓      calls streams, relays, placement, grace
//	streams   the stream table, sources, on-demand idling (streams.go); calls placement
//	relays    relays between nodes (relay.go); calls only the nodes
//	placement the node registry, which node ingests and which serves (members.go)
//	grace     the startup grace's gate (grace.go)
//
// The one notice that goes up, a stream that may lack its outputs, is a callback streams is
// given at construction (streams.ensureOutputs).
type Control struct {
	*core
	node     LocalNode
	place    *placement
	streams  *streams
	relays   *relays
	sessions *sessions
	failover *failover
	gate     *grace
}

// core is what every part of the control shares: the config, the log, the one lock and the
// control's life cycle. All parts hold the same *core; a method named *Locked runs under mu.
type core struct {
	cfg *config.Config
	log *slog.Logger

	// mu is the control's one lock. It guards the stream table (streams), every stream's fields
	// except its relays (stream.relayMu) and outputs (stream.outMu), the node registry (placement:
	// members and their info), multicast players, and the flags below. A reader's own fields are
	// under reader.mu. Lock order, when several are held: stream.outMu, reader.mu,
	// stream.relayMu, mu.
	mu     sync.Mutex
	closed bool
	// detached: the control is shutting down but its remote nodes keep every flow, so readers
	// fed by them keep playing and a new control can adopt them.
	detached bool
	// started: always-on sources have been started (after the startup grace, in the cluster).
	started bool
	done    chan struct{}
	wg      sync.WaitGroup
	// tally keeps the counters of sessions and sources that ended, per route (opsview.go).
	tally tally
}

// New builds the control over a local node. Start sources with Start.
func New(cfg *config.Config, n LocalNode, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	co := &core{cfg: cfg, log: log, done: make(chan struct{})}
	place := newPlacement(co, n)
	gate := &grace{core: co}
	rel := &relays{core: co}
	st := &streams{core: co, place: place, table: map[string]*stream{}, mcast: newGroupAllocator(cfg.RTSP.Multicast.Range)}
	ss := &sessions{core: co, node: n, place: place, streams: st, relays: rel, gate: gate}
	st.ensureOutputs = ss.ensureOutputsLocked
	fo := &failover{core: co, place: place, streams: st, relays: rel, sessions: ss, gate: gate}
	return &Control{core: co, node: n, place: place, streams: st, relays: rel, sessions: ss, failover: fo, gate: gate}
}

// SetLocalPorts tells the control where its local node's socket pair is, so relays to and from
// it know where to send. addr may be invalid when node.data_address is not set.
func (c *Control) SetLocalPorts(addr netip.Addr, rtpPort, rtcpPort int) {
	c.place.setLocalPorts(addr, rtpPort, rtcpPort)
}

// SetLocalLiveLive tells the control where its local node's second socket pair is
// (node.live_live_address), so live-live relays to and from it know where their second leg goes.
func (c *Control) SetLocalLiveLive(addr netip.Addr, rtpPort, rtcpPort int) {
	c.place.setLocalLiveLive(addr, rtpPort, rtcpPort)
}

// Start brings up every always-on source (non-regex routes with a demo or pull source and no
// on_demand) that no node already carries.
func (c *Control) Start(ctx context.Context) error { return c.streams.startAll(ctx) }

// Detach marks the control as going away while its remote nodes stay: reader sessions that end
// because the control stops leave their flows on remote nodes running, for the next control to
// adopt. Call it before closing the front door.
func (c *Control) Detach() {
	c.mu.Lock()
	c.detached = true
	c.mu.Unlock()
}

// Close deletes every flow the control created on its local node; flows on remote nodes keep
// running (DESIGN §1: established flows survive the control).
func (c *Control) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	local := c.streams.stopLocked()
	c.mu.Unlock()
	ctx := context.Background()
	for _, id := range local {
		_ = c.node.Delete(ctx, id)
	}
	c.wg.Wait()
}

// OpenRead implements rtsp.Handler.
func (c *Control) OpenRead(ctx context.Context, ci rtsp.ConnInfo, path string) (rtsp.ReadStream, error) {
	return c.sessions.openRead(ctx, ci, path)
}

// OpenPublish implements rtsp.Handler.
func (c *Control) OpenPublish(ctx context.Context, ci rtsp.ConnInfo, path string, sdp []byte, tracks []rtp.Track) (rtsp.PublishStream, error) {
	return c.sessions.openPublish(ctx, ci, path, sdp, tracks)
}

// SourceReady implements node.Events for the local node.
func (c *Control) SourceReady(streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	c.streams.ready(c.place.local, streamID, sdp, tracks, replaced)
}

// remoteSourceReady is SourceReady from a remote node.
func (c *Control) remoteSourceReady(name, streamID string, sdp []byte, tracks []rtp.Track, replaced bool) {
	c.mu.Lock()
	m := c.place.lookupLocked(name)
	c.mu.Unlock()
	if m != nil {
		c.streams.ready(m, streamID, sdp, tracks, replaced)
	}
}

// SourceDown implements node.Events.
func (c *Control) SourceDown(streamID string, err error) {
	c.mu.Lock()
	s := c.streams.byIDLocked(streamID)
	if s != nil {
		s.sourceDown = true
	}
	c.mu.Unlock()
	if s != nil {
		c.tally.sourceDown(routeName(s))
		c.log.Warn("source down; retrying", "route", s.path, "err", err)
	}
}

// NodeUp registers a remote node that attached (first time, after its own restart, or after the
// control restarted). flows and sources are what the node carries right now: the control adopts
// what it does not know (it restarted), deletes what it no longer wants (readers moved away while
// the node was gone), and moves back readers that belong on the node.
func (c *Control) NodeUp(name string, n node.Node, info NodeInfo, flows []node.Flow, sources []cluster.SourceState) {
	c.failover.nodeUp(name, n, info, flows, sources)
}

// NodeDown marks a remote node dead and moves its work: streams it ingested are started on
// another node, its readers move to another node with their SSRC/seq/timestamp line intact (the
// hubs behind relays are transparent), and relays toward it are taken down.
func (c *Control) NodeDown(name string, n node.Node, err error) { c.failover.nodeDown(name, n, err) }

// FinishAdoption ends the startup grace: relays left half-built by the restart are rebuilt for
// the readers that need them, streams whose ingest node never came back are started elsewhere,
// and then every always-on source nobody carries is started. Requests held during the grace go
// on once it returns (grace.go).
func (c *Control) FinishAdoption(ctx context.Context) error { return c.failover.finishAdoption(ctx) }

// holdRequests makes OpenRead and OpenPublish wait for FinishAdoption (grace.go). Call it once,
// before the front door and the node endpoint open.
func (c *Control) holdRequests(grace time.Duration) { c.gate.hold(grace) }

func newID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// errStatus turns a node error into a front-door error with a status.
func errStatus(what string, err error) error {
	if errors.Is(err, node.ErrNotFound) {
		return &rtsp.Error{Status: rtsp.StatusNotFound, Msg: what, Err: err}
	}
	return &rtsp.Error{Status: rtsp.StatusInternal, Msg: what, Err: err}
}
