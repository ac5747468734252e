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
	type key struct {
		name string
		get  func(*Config) any
	}
	keys := []key{
		{"log_format", func(c *Config) any { return c.LogFormat }},
		{"rtsp.listen", func(c *Config) any { return c.RTSP.Listen }},
		{"rtsp.rtp_port", func(c *Config) any { return c.RTSP.RTPPort }},
		{"rtsp.multicast", func(c *Config) any { return c.RTSP.Multicast }},
		{"rtsp.read_timeout", func(c *Config) any { return c.RTSP.ReadTimeout }},
		{"rtsp.write_timeout", func(c *Config) any { return c.RTSP.WriteTimeout }},
		{"rtsp.session_timeout", func(c *Config) any { return c.RTSP.SessionTimeout }},
		{"rtsp.max_request_bytes", func(c *Config) any { return c.RTSP.MaxRequestBytes }},
		{"rtsp.max_request_headers", func(c *Config) any { return c.RTSP.Limits.MaxRequestHeaders }},
		{"rtsp.udp_queue", func(c *Config) any { return c.RTSP.UDPQueue }},
		{"rtsp.tcp_queue", func(c *Config) any { return c.RTSP.TCPQueue }},
		{"rtsp.protocols", func(c *Config) any { return c.RTSP.Protocols }},
		{"rtsp.egress_workers", func(c *Config) any { return c.RTSP.EgressWorkers }},
		{"rtsp.slow_reader_timeout", func(c *Config) any { return c.RTSP.SlowReaderTimeout }},
		{"rtsps.listen", func(c *Config) any { return c.RTSPS.Listen }},
		{"control.listen", func(c *Config) any { return c.Control.Listen }},
		{"control.node_timeout", func(c *Config) any { return c.Control.NodeTimeout }},
		{"control.startup_grace", func(c *Config) any { return c.Control.StartupGrace }},
		{"node.name", func(c *Config) any { return c.Node.Name }},
		{"node.control", func(c *Config) any { return c.Node.Control }},
		{"node.data_address", func(c *Config) any { return c.Node.DataAddress }},
		{"node.client_networks", func(c *Config) any { return c.Node.ClientNetworks }},
		{"node.live_live_address", func(c *Config) any { return c.Node.LiveLiveAddress }},
		{"identity", func(c *Config) any { return c.Identity }},
		{"auth.nonce_lifetime", func(c *Config) any { return c.Auth.NonceLifetime }},
		{"auth.max_failures", func(c *Config) any { return c.Auth.MaxFailures }},
		{"auth.failure_window", func(c *Config) any { return c.Auth.FailureWindow }},
		{"auth.ban_time", func(c *Config) any { return c.Auth.BanTime }},
		{"auth.max_concurrent_hashes", func(c *Config) any { return c.Auth.MaxConcurrentHashes }},
		{"auth.hash_wait", func(c *Config) any { return c.Auth.HashWait }},
	}
	var out []string
	for _, k := range keys {
		if !reflect.DeepEqual(k.get(old), k.get(cur)) {
			out = append(out, k.name)
		}
	}
	return out
}
