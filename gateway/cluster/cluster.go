// Package cluster connects the control to its nodes over the control↔node API (package api,
// docs/ARCHITECTURE.md, "Control ↔ node protocol"): Server is the control's end, where every
// attached node becomes a *Remote that implements node.Node; Agent is the node's end, which dials
// the control, registers, applies the control's commands to the local data plane and reports back.
//
// The nodes dial, over mutual TLS with SPIFFE IDs (package identity), and a node keeps all its
// flows running while it is detached: a control that restarts rebuilds its state from the flows
// the nodes re-report in their Hello.
package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
)

// Hello is a node's registration: who it is, where its data plane listens and, as reported on
// each attach, what it currently holds.
type Hello struct {
	// Name is the node's name; the control checks it against the node's SPIFFE ID.
	Name string
	// DataAddr is the IP address the node sends and receives media on; invalid when it listens
	// on every address.
	DataAddr          netip.Addr
	RTPPort, RTCPPort int
	// LiveLiveAddr is the node's address on its second network and LiveLiveRTPPort/RTCPPort its
	// second socket pair there (node.live_live_address); invalid and 0 when it has none.
	LiveLiveAddr                      netip.Addr
	LiveLiveRTPPort, LiveLiveRTCPPort int
	// ClientNetworks are the players' networks this node should serve.
	ClientNetworks []netip.Prefix
	Capabilities   []string
	// BootID is random per node process start: a new BootID is a node that restarted and lost
	// its flows, the same one a node that re-attached with its flows intact.
	BootID string
	// Flows is every flow the node runs (filled by the agent).
	Flows []node.Flow
	// Sources is the last state of each stream the node ingests (filled by the agent).
	Sources []SourceState
}

// SourceState is the last reported state of a stream a node ingests.
type SourceState struct {
	Stream string
	SDP    []byte
	Tracks []rtp.Track
	Up     bool
	// Err says why the source is down.
	Err string
}

// Handler receives what the server learns about nodes. The calls for one *Remote come from one
// goroutine, in order (NodeUp, source events, NodeDown); the handler may call the Remote's
// methods from them (acks are received elsewhere). Calls must return: while one runs, that
// node's later events wait, and Server.Close waits for it.
type Handler interface {
	// NodeUp: a node registered; hello carries the flows and source states it reported.
	NodeUp(n *Remote, hello Hello)
	// NodeDown: the node's stream ended, it fell silent, or a newer attach of the same name
	// replaced it (then NodeDown for the old Remote comes before NodeUp for the new one).
	NodeDown(n *Remote, err error)
	// SourceReady: see node.Events.
	SourceReady(n *Remote, stream string, sdp []byte, tracks []rtp.Track, replaced bool)
	// SourceDown: see node.Events.
	SourceDown(n *Remote, stream string, err error)
}

// Target is the local data plane an agent steers: a node.Node that can list its flows, so they
// can be reported to a control that (re)attaches.
type Target interface {
	node.Node
	Flows() []node.Flow
}

// nopHandler is the Handler of a server configured without one.
type nopHandler struct{}

func (nopHandler) NodeUp(*Remote, Hello)                                  {}
func (nopHandler) NodeDown(*Remote, error)                                {}
func (nopHandler) SourceReady(*Remote, string, []byte, []rtp.Track, bool) {}
func (nopHandler) SourceDown(*Remote, string, error)                      {}

// newBootID returns a random ID for this process start.
func newBootID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
