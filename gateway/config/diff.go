package config

import (
	"reflect"
	"slices"
)

// RouteDiff is what a reload changes in the route table, by route key (the name as written in
// the file; a regex route's key starts with "~"). Keys are in the new file's order, removed ones
// in the old file's.
type RouteDiff struct {
	Added     []string
	Removed   []string
	Changed   []string
	Unchanged []string
}

// Empty reports whether the route tables are the same.
func (d RouteDiff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// DiffRoutes compares the routes of two configs by key. A route whose only difference is where
// it sits in the file (its line) is unchanged.
func DiffRoutes(old, cur *Config) RouteDiff {
	var d RouteDiff
	was := map[string]Route{}
	for _, r := range old.Routes {
		was[r.Name] = r
	}
	seen := map[string]bool{}
	for _, r := range cur.Routes {
		seen[r.Name] = true
		o, ok := was[r.Name]
		switch {
		case !ok:
			d.Added = append(d.Added, r.Name)
		case RouteEqual(o, r):
			d.Unchanged = append(d.Unchanged, r.Name)
		default:
			d.Changed = append(d.Changed, r.Name)
		}
	}
	for _, r := range old.Routes {
		if !seen[r.Name] {
			d.Removed = append(d.Removed, r.Name)
		}
	}
	return d
}

// RouteEqual reports whether two routes have the same settings: everything but the lines they
// were read from (and the compiled pattern, which the pattern itself stands for).
func RouteEqual(a, b Route) bool {
	return reflect.DeepEqual(normalized(a), normalized(b))
}

func normalized(r Route) Route {
	r.Line = 0
	r.Regexp = nil
	if r.Outputs != nil {
		r.Outputs = slices.Clone(r.Outputs)
		for i := range r.Outputs {
			r.Outputs[i].Line = 0
		}
	}
	return r
}

// OutputsEqual reports whether two routes have the same outputs.
func OutputsEqual(a, b Route) bool {
	return reflect.DeepEqual(normalized(Route{Outputs: a.Outputs}), normalized(Route{Outputs: b.Outputs}))
}

// SourceEqual reports whether two routes feed their stream the same way: the same source,
// backup, transport, reconnect, TLS trust, plain-RTP ingest, pacing and ingest node. A route
// that differs from its old self only elsewhere (readers' limits, allowed addresses, on-demand
// timing, outputs) keeps its running source.
func SourceEqual(a, b Route) bool {
	pick := func(r Route) Route {
		return Route{Source: r.Source, SourceTransport: r.SourceTransport, Backup: r.Backup,
			BackupStall: r.BackupStall, BackupMode: r.BackupMode, ReconnectMin: r.ReconnectMin,
			ReconnectMax: r.ReconnectMax, SourceTLSCA: r.SourceTLSCA, RTPSource: r.RTPSource,
			Pacing: r.Pacing, Node: r.Node}
	}
	return reflect.DeepEqual(pick(a), pick(b))
}

// RestartKeys lists the keys whose new values a running process cannot take in place: the
// sockets it listens on, its identity, its node's addresses, the RTSP server's timeouts and
// queue sizes. A reload keeps their old values; the caller warns that they need a restart.
// The keys are named as in the file, in file order.
func RestartKeys(old, cur *Config) []string {
	was, now := restartValues(old), restartValues(cur)
	var out []string
	for i, name := range restartNames {
		if !reflect.DeepEqual(was[i], now[i]) {
			out = append(out, name)
		}
	}
	return out
}

// restartNames names the values of restartValues, in the same order.
var restartNames = []string{
	"log_format", "rtsp.listen", "rtsp.rtp_port", "rtsp.multicast", "rtsp.read_timeout",
	"rtsp.write_timeout", "rtsp.session_timeout", "rtsp.max_request_bytes",
	"rtsp.max_request_headers", "rtsp.udp_queue", "rtsp.tcp_queue", "rtsp.protocols",
	"rtsp.egress_workers", "rtsp.slow_reader_timeout", "rtsps.listen", "control.listen",
	"control.node_timeout", "control.startup_grace", "node.name", "node.control",
	"node.data_address", "node.client_networks", "node.live_live_address", "identity",
	"auth.nonce_lifetime", "auth.max_failures", "auth.failure_window", "auth.ban_time",
	"auth.max_concurrent_hashes", "auth.hash_wait",
}

// restartValues are c's values of the keys of restartNames.
func restartValues(c *Config) []any {
	r, a := c.RTSP, c.Auth
	return []any{
		c.LogFormat, r.Listen, r.RTPPort, r.Multicast, r.ReadTimeout,
		r.WriteTimeout, r.SessionTimeout, r.MaxRequestBytes,
		r.Limits.MaxRequestHeaders, r.UDPQueue, r.TCPQueue, r.Protocols,
		r.EgressWorkers, r.SlowReaderTimeout, c.RTSPS.Listen, c.Control.Listen,
		c.Control.NodeTimeout, c.Control.StartupGrace, c.Node.Name, c.Node.Control,
		c.Node.DataAddress, c.Node.ClientNetworks, c.Node.LiveLiveAddress, c.Identity,
		a.NonceLifetime, a.MaxFailures, a.FailureWindow, a.BanTime,
		a.MaxConcurrentHashes, a.HashWait,
	}
}
