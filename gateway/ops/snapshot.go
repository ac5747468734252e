package ops

import (
	"net/netip"
	"time"
)

// Source is the running gateway as the ops server sees it. Its methods are called from HTTP
// handlers and scrapes, concurrently.
type Source interface {
	// Snapshot is the current state, built fresh on every call.
	Snapshot() Snapshot
	// Ready is nil when the process is ready for traffic: config loaded, listeners bound and,
	// for a node, attached to its control.
	Ready() error
}

// Snapshot is the gateway's state at one moment, plain data that the caller owns.
type Snapshot struct {
	// Node is the name of the node answering (the local node of a control).
	Node string
	// Role is "run", "control" or "node".
	Role string
	// Started is when the process started serving.
	Started time.Time
	Routes  []Route
	Streams []Stream
	// Sessions are the front door's readers and publishers (none on a node).
	Sessions []Session
	// Nodes are the nodes the control knows, the local node included.
	Nodes []Node
	// Relays are the hops between nodes.
	Relays []Relay
	// Flows are the flow counters of the answering node's own data plane, by kind.
	Flows []FlowKind
	// Auth is the front door's authentication counters (zero on a node).
	Auth AuthStats
}

// Route is one routes: entry of the config.
type Route struct {
	Name   string
	Source string
	// Regex: the name is a pattern ("~...") and streams carry the matched paths.
	Regex    bool
	OnDemand bool
}

// Stream is a live (or starting) instance of a route.
type Stream struct {
	// Name is the path readers use; Route the config entry it came from.
	Name, Route string
	// Source is the route's source as configured (publisher, demo, a URL).
	Source string
	// IngestNode carries the source ("" before placement).
	IngestNode string
	// State is "starting", "live" or "down".
	State string
	// Restarts counts the times the source came back after going down.
	Restarts uint64
	Tracks   []Track
	// Readers by transport ("udp", "srtp", "tcp", "multicast"), Publishers 0 or 1.
	Readers    map[string]int
	Publishers int
	// In are the packets taken into the stream's hubs on its ingest node, Out the packets its
	// reader and output sinks sent, both summed over tracks.
	In, Out Counters
}

// Track is one media of a stream.
type Track struct {
	Index int
	// Media is "video", "audio" or "application"; Codec the SDP encoding name ("H264").
	Media, Codec           string
	PayloadType, ClockRate int
}

// Counters are packet and byte counts since a flow started, plus what it dropped and refused.
type Counters struct {
	Packets, Bytes, Dropped, Errors uint64
}

// Session is one RTSP session of the front door.
type Session struct {
	ID string
	// Kind is "reader" or "publisher".
	Kind      string
	Route     string
	Transport string
	Node      string
	Remote    netip.AddrPort
	User      string
	Started   time.Time
	Counters  Counters
	Reception *Reception
}

// Reception is what a reader's RTCP receiver reports said, or what a relay's far end measured.
type Reception struct {
	// FractionLost is the last report's fraction lost, 0..1.
	FractionLost float64
	// CumulativeLost is the report's cumulative number of packets lost.
	CumulativeLost int64
	// Jitter is the interarrival jitter in seconds.
	Jitter float64
	// RTT is the round trip computed from LSR/DLSR; zero when unknown.
	RTT time.Duration
	// Reports counts the receiver reports seen.
	Reports uint64
}

// Node is one node of the cluster as the control knows it.
type Node struct {
	Name string
	// Local: the node inside the control's process.
	Local        bool
	Data         netip.Addr
	RTPPort      int
	LiveLive     netip.Addr
	Networks     []netip.Prefix
	Capabilities []string
	Flows        int
	// Up: attached (remote) or running (local).
	Up         bool
	AttachedAt time.Time
	// LastReport is when the node last sent its stats (remote nodes).
	LastReport time.Time
}

// Relay is one hop of a stream between two nodes, on one leg.
type Relay struct {
	Stream string
	From   string
	To     string
	// Leg is "a" for a one-leg relay or the first leg of a 2022-7 relay, "b" for its second.
	Leg string
	// Packets are the RTP packets the far end took in on this leg (into its hubs for one leg).
	Packets uint64
	// Repair: the NACK figures below are known (the far end is the answering node). A remote
	// node's reports to the control do not carry them; the node's own /metrics does.
	Repair bool
	// LostBefore: packets missing at the far end before NACK repair (summed over legs, after
	// the 2022-7 merge); LostAfter: those still missing after it, which readers miss.
	LostBefore, LostAfter uint64
	// NACKs are the NACK packets the far end sent; Retransmissions the packets the near end
	// resent (known when the near end is the answering node).
	NACKs, Retransmissions uint64
	// Legs are this leg's 2022-7 merge counters, nil for a one-leg relay.
	Legs *LegCounters
	// Reception is what the far end measured of the link (jitter, RTT), nil when unknown.
	Reception *Reception
}

// LegCounters are one leg's counters in a 2022-7 merge (merge.LegStats).
type LegCounters struct {
	// Received: packets that came on the leg; First: those that were the first copy of their
	// sequence number; Duplicates: copies the other leg already brought; Late: copies beyond the
	// skew; Lost: sequence numbers this leg never delivered while the other did.
	Received, First, Duplicates, Late, Lost uint64
}

// FlowKind sums the answering node's flows of one kind.
type FlowKind struct {
	// Kind is the flow spec kind ("sink.udp", "source.relay", ...).
	Kind  string
	Flows int
	Counters
	// FECRecovered and FECUnrecoverable come from rtp:// sources with FEC.
	FECRecovered, FECUnrecoverable uint64
}

// AuthStats are the front door's login outcomes.
type AuthStats struct {
	Failures uint64
	Bans     uint64
	// Banned is the number of addresses banned now.
	Banned int
}
