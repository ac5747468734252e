// Package config is meshgw's YAML configuration: the schema, its defaults,
// validation that reports every problem as "FILE:LINE: message", and the
// route table that maps a requested RTSP path to a source.
//
// The file layout follows mediamtx (a top-level map of settings and a routes
// map keyed by path name) so that its users feel at home; docs/CONFIG.md
// (the configuration reference) documents every key.
package config

import (
	_ "embed"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"time"
)

// Log levels accepted by log_level. They are the slog level names so that the
// value can be handed to slog without a translation table.
const (
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"
)

// Log formats accepted by log_format: text for humans, json for collectors.
const (
	LogText = "text"
	LogJSON = "json"
)

// Reader transports accepted in rtsp.protocols.
const (
	ProtoUDP       = "udp"
	ProtoMulticast = "multicast"
	ProtoTCP       = "tcp"
)

// Sources that are not URLs.
const (
	// SourcePublisher routes accept a client that ANNOUNCEs and RECORDs.
	SourcePublisher = "publisher"
	// SourceDemo routes play meshgw's built-in test stream.
	SourceDemo = "demo"
)

// Transports accepted in a route's source_transport.
const (
	// TransportAuto tries UDP first and falls back to TCP interleaved when no
	// packet arrives, which is what works behind most NATs and firewalls.
	TransportAuto = "auto"
	TransportUDP  = "udp"
	TransportTCP  = "tcp"
)

// StatusPublisherInUse is the RTSP status a second publisher gets on a route
// that already has one and does not set override_publisher. 409 Conflict names
// the situation exactly; RTSP clients that do not know 409 treat it as a
// generic 4xx client error (RFC 2326 §7.1.1), so nothing breaks. Defined here
// because the config reference documents it and the server must agree.
const StatusPublisherInUse = 409

// Config is one loaded and validated configuration file. Values are final:
// every default has been applied, so consumers never test for zero values.
type Config struct {
	// File is the name the config was parsed under (for messages and reload).
	File string
	// LogLevel is log_level: debug, info, warn or error. Default info.
	LogLevel string
	// LogFormat is log_format: text or json. Default text.
	LogFormat string
	// RTSP is the rtsp: section, the front door readers and publishers use.
	RTSP RTSP
	// RTSPS is the rtsps: section, the TLS front door (off when absent).
	RTSPS RTSPS
	// Control is the control: section (meshgw control).
	Control Control
	// Node is the node: section: this process's node.
	Node Node
	// Identity is the identity: section (SPIFFE mTLS between control and
	// nodes).
	Identity Identity
	// Auth is the auth: section: users, permissions, bans (auth.go).
	Auth Auth
	// API is the api: section: the HTTP operations listener (api.go).
	API API
	// Routes are the routes: entries in file order. File order matters
	// because regex routes are tried in it.
	Routes []Route

	// byName indexes plain (non-regex) routes by Name for Match. It is nil
	// for a Config built by hand, in which case Match scans Routes.
	byName map[string]int
}

// RTSP is the rtsp: section.
type RTSP struct {
	// Listen is rtsp.listen, the TCP host:port of the RTSP server.
	// Default ":8554" (all interfaces), the port mediamtx uses. "" turns
	// plain RTSP off (then rtsps: must be set).
	Listen string
	// RTPPort is rtsp.rtp_port, the even UDP port readers' RTP goes out
	// from. Default 8000; 0 lets the OS pick a free even/odd pair.
	RTPPort int
	// RTCPPort is rtsp.rtcp_port. RTP/AVP pairs RTCP with the next odd
	// port, so it is always RTPPort+1 (0 when RTPPort is 0); the key exists
	// so that mediamtx-style configs naming both ports still load.
	RTCPPort int
	// Multicast is rtsp.multicast, used by readers that ask for multicast.
	Multicast Multicast
	// ReadTimeout is rtsp.read_timeout: how long the server waits for the
	// rest of an RTSP request once it has started. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout is rtsp.write_timeout: how long a write to a client may
	// block before the client is considered gone. Default 10s.
	WriteTimeout time.Duration
	// SessionTimeout is rtsp.session_timeout: a reader that sends no RTSP
	// request and no RTCP receiver report for this long is dropped, which
	// frees UDP senders whose client vanished without TEARDOWN. Default 60s.
	SessionTimeout time.Duration
	// MaxRequestBytes is rtsp.max_request_bytes, the largest RTSP request
	// (headers plus body) accepted, bounding memory per connection.
	// Default 65536.
	MaxRequestBytes int
	// UDPQueue is rtsp.udp_queue, packets buffered per UDP reader before
	// packets are dropped for that reader only. Default 512.
	UDPQueue int
	// TCPQueue is rtsp.tcp_queue, packets buffered per TCP reader before it
	// is dropped (TCP cannot skip packets without corrupting the stream).
	// Default 1024.
	TCPQueue int
	// Protocols is rtsp.protocols, the reader transports offered, in file
	// order. Default [udp, multicast, tcp].
	Protocols []string
	// EgressWorkers is rtsp.egress_workers, the goroutines sending to UDP
	// readers, each owning a share of them. Default 0: one per CPU (at most
	// 8), since one core of sendmmsg tops out near 300k datagrams/s.
	EgressWorkers int
	// SlowReaderTimeout is rtsp.slow_reader_timeout: a TCP reader whose
	// queue stays full (every new packet dropped) for this long is
	// disconnected, so a reader that cannot keep up stops costing memory
	// and a slot. Default 10s.
	SlowReaderTimeout time.Duration
	// Limits are the abuse limits: rtsp.max_sessions, max_sessions_per_route,
	// max_sessions_per_address, max_unauthenticated,
	// max_unauthenticated_per_address and max_request_headers (auth.go).
	Limits Limits
}

// Allows reports whether readers may use proto (ProtoUDP, ProtoMulticast or
// ProtoTCP), so the server need not search the list itself.
func (r RTSP) Allows(proto string) bool {
	for _, p := range r.Protocols {
		if p == proto {
			return true
		}
	}
	return false
}

// Multicast is the rtsp.multicast section.
type Multicast struct {
	// Range is rtsp.multicast.range, the block groups are allocated from,
	// one per route. Default 239.255.42.0/24 (organisation-local scope, so
	// it does not leave the site by default).
	Range netip.Prefix
	// Port is rtsp.multicast.port, the even RTP port used for every group;
	// RTCP uses Port+1. Default 50000.
	Port int
	// TTL is rtsp.multicast.ttl. Default 1 keeps packets on the local
	// subnet until someone decides otherwise.
	TTL int
	// Interface is rtsp.multicast.interface, the network interface to send
	// on. Empty lets the OS route by destination.
	Interface string
}

// Route is one routes: entry.
type Route struct {
	// Name is the path readers and publishers use, without a leading
	// slash. For a regex route in Config.Routes it is the key as written
	// (starting with "~"); in a Route returned by Match it is the requested
	// path.
	Name string
	// Pattern is the key as written for regex routes, empty for plain
	// routes, so a matched route can still be traced to its config entry.
	Pattern string
	// Regexp is the compiled pattern of a regex route (the key without its
	// leading "~"); nil for plain routes.
	Regexp *regexp.Regexp
	// Source is where media comes from: SourcePublisher, SourceDemo, or an
	// rtsp:// or rtsps:// URL to pull. In a regex route it may hold $1 or
	// ${name} references, which Match substitutes. Default publisher, as in
	// mediamtx.
	Source string
	// SourceTransport is how an rtsp(s):// source is pulled: TransportAuto
	// (default), TransportUDP or TransportTCP.
	SourceTransport string
	// OnDemand pulls the source only while at least one reader is playing,
	// sparing upstream cameras and bandwidth. Default false.
	OnDemand bool
	// OnDemandStartTimeout is how long a reader of an on-demand route waits
	// for the source before getting 503 Service Unavailable. Default 10s.
	OnDemandStartTimeout time.Duration
	// OnDemandCloseAfter is how long an on-demand pull keeps running after
	// the last reader leaves, so quick reconnects do not restart it.
	// Default 10s; 0 stops at once.
	OnDemandCloseAfter time.Duration
	// OverridePublisher lets a new publisher replace the current one. When
	// false (default) a second publisher gets StatusPublisherInUse (409).
	OverridePublisher bool
	// MaxReaders caps concurrent readers; 0 (default) is unlimited.
	MaxReaders int
	// Pacing spaces the stream sent to UDP and multicast readers at no more
	// than this multiple of its own average bitrate, so keyframe bursts
	// arrive spread over a few frame intervals and readers with small
	// socket buffers lose nothing. 0 (default) sends at once; 1-20 is
	// allowed (3 suits most streams: a keyframe of 8 P frames then leaves in
	// about three frame intervals).
	Pacing float64
	// Node is routes.*.node: the node that ingests the stream (pulls the
	// camera, plays the demo). Empty lets the control pick the least
	// loaded node. Publishers always land on the control's local node.
	Node string
	// ReconnectMin is the first wait before re-pulling a source that
	// failed; the wait grows with each consecutive failure. Default 1s.
	ReconnectMin time.Duration
	// ReconnectMax caps that growing wait, so a camera that comes back is
	// picked up within this long. Default 30s; never below ReconnectMin.
	ReconnectMax time.Duration
	// AllowIPs is routes.*.allow_ips: when not empty, clients of this route
	// must come from these networks (on top of auth.allow_ips).
	AllowIPs []netip.Prefix
	// Backup is routes.*.backup: a second source (demo, rtsp:// or
	// rtsps://; in a regex route it may hold $ references like Source) that
	// the node ingests alongside Source and falls back on; empty for none.
	// Not allowed with source: publisher.
	Backup string
	// BackupStall is how long Source may deliver nothing before the stream
	// switches to Backup (BackupSwitch mode). Default DefaultBackupStall.
	BackupStall time.Duration
	// BackupMode is BackupAuto (default), BackupMerge or BackupSwitch.
	BackupMode string
	// SRTP is routes.*.srtp: SRTPOff (default), SRTPOptional or
	// SRTPRequired, the route's policy for readers and publishers.
	SRTP string
	// SourceTLSCA is routes.*.source_tls_ca, a PEM file of the CA (or
	// self-signed certificate) an rtsps:// source is verified against
	// instead of the system roots.
	SourceTLSCA string
	// Line is the line of the route's key in the config file, for messages
	// about the route found after loading (e.g. "upstream refused").
	Line int
	// Outputs are routes.*.outputs: plain RTP/UDP destinations the stream is
	// always sent to (outputs.go). A route with outputs runs its source from
	// startup, on_demand or not: each output is a reader that never leaves.
	Outputs []Output
	// RTPSource is the plain RTP/UDP ingest of a source: rtp:// route
	// (source_interface, sdp, fec, live_live); nil for other sources.
	RTPSource *RTPSource
}

// IsPull reports whether the route pulls from a URL (rtsp:// or rtsps://)
// rather than waiting for a publisher, generating the demo stream or
// receiving plain RTP (IsRTP).
func (r Route) IsPull() bool {
	return r.Source != SourcePublisher && r.Source != SourceDemo && !r.IsRTP()
}

// SlogLevel returns LogLevel as a slog.Level, the form the logger needs.
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case LogDebug:
		return slog.LevelDebug
	case LogWarn:
		return slog.LevelWarn
	case LogError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default config, the one meshgw runs with
// when started without -c. It returns a copy so callers cannot alter it.
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}

// Default parses the embedded default config. It panics if that file is
// invalid, which is a build defect caught by TestDefault, never a user error.
func Default() *Config {
	c, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads the file at path and parses it; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// Match finds the route for a requested path (without the leading slash; one
// is trimmed if present). Plain routes are looked up by exact name first, so
// a specific entry always beats a pattern; then regex routes are tried in file
// order. For a regex route the result is a copy whose Name is the requested
// path and whose Source has the captures substituted.
//
// A path that is not a valid route name never matches a regex route, and
// neither does a match whose substituted source is not a valid source: both
// keep request text from being spliced into upstream URLs unchecked.
func (c *Config) Match(path string) (Route, bool) {
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	if c.byName != nil {
		if i, ok := c.byName[path]; ok {
			return c.Routes[i], true
		}
	} else {
		for _, r := range c.Routes {
			if r.Regexp == nil && r.Name == path {
				return r, true
			}
		}
	}
	if checkName(path) != "" {
		return Route{}, false
	}
	for _, r := range c.Routes {
		if r.Regexp == nil {
			continue
		}
		m := r.Regexp.FindStringSubmatchIndex(path)
		if m == nil {
			continue
		}
		src := string(r.Regexp.ExpandString(nil, r.Source, path, m))
		if checkSource(src) != "" {
			continue
		}
		if r.Backup != "" {
			if r.Backup = string(r.Regexp.ExpandString(nil, r.Backup, path, m)); checkSource(r.Backup) != "" {
				continue
			}
		}
		r.Name = path
		r.Source = src
		return r, true
	}
	return Route{}, false
}
