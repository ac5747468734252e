package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parse validates a config file's contents and returns the config with every
// default applied. file is used only in messages. On failure the error is an
// *Errors holding every problem found, each with its line.
//
// The YAML is walked as a yaml.Node tree rather than unmarshalled into structs
// because only the tree knows where each key is, and because unknown keys,
// duplicates and type mistakes must all be reported, not just the first.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file}
	c := p.parse(data)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, &Errors{List: p.errs}
	}
	c.File = file
	return c, nil
}

// parser carries one Parse call's state: the file name for messages and the
// problems found so far.
type parser struct {
	file string
	errs []*Error
}

// errorf records a problem at node n (a nil n means the whole file).
func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// yamlLine pulls the line out of yaml.v3's syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a YAML syntax error, keeping its line when yaml.v3 gives one.
func (p *parser) syntax(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: "YAML syntax error: " + m[2]})
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Msg: "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")})
}

// decode turns data into a document node; nil with ok for an empty file.
func (p *parser) decode(data []byte) (doc *yaml.Node, ok bool) {
	// yaml.v3 is a port of a C library and has panicked on hostile input
	// before; a config checker must report, not crash.
	defer func() {
		if r := recover(); r != nil {
			p.errorf(nil, "YAML parser failed: %v", r)
			doc, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		p.syntax(err)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.errorf(&extra, `a config file holds one YAML document; remove the "---" that starts a second one`)
	case !errors.Is(err, io.EOF):
		p.syntax(err)
	}
	return &n, true
}

func (p *parser) parse(data []byte) *Config {
	c := defaults()
	doc, ok := p.decode(data)
	if !ok {
		return nil
	}
	var top *yaml.Node
	if doc != nil && len(doc.Content) > 0 {
		top = resolve(doc.Content[0])
	}
	if top == nil || isNull(top) {
		p.errorf(nil, "file is empty; it needs at least a routes: section")
		return nil
	}
	if top.Kind != yaml.MappingNode {
		p.errorf(doc.Content[0], "expected a mapping of settings (log_level:, rtsp:, routes:), got %s", describe(top))
		return nil
	}
	var routes, authKey, apiKey *yaml.Node
	p.fields(top, "", []field{
		{"log_level", func(_, v *yaml.Node) {
			p.enum(&c.LogLevel, "log_level", v, LogDebug, LogInfo, LogWarn, LogError)
		}},
		{"log_format", func(_, v *yaml.Node) { p.enum(&c.LogFormat, "log_format", v, LogText, LogJSON) }},
		{"rtsp", func(_, v *yaml.Node) { p.rtsp(&c.RTSP, v) }},
		{"rtsps", func(_, v *yaml.Node) { p.rtsps(&c.RTSPS, v) }},
		{"control", func(_, v *yaml.Node) { p.control(&c.Control, v) }},
		{"node", func(_, v *yaml.Node) { p.node(&c.Node, v) }},
		{"identity", func(_, v *yaml.Node) { p.identity(&c.Identity, v) }},
		{"auth", func(k, v *yaml.Node) { authKey = k; p.auth(&c.Auth, v) }},
		{"api", func(k, v *yaml.Node) { apiKey = k; p.api(c, k, v) }},
		{"routes", func(k, v *yaml.Node) { routes = k; p.routes(c, k, v) }},
	})
	p.checkAPI(c, apiKey)
	if c.RTSP.Listen == "" && !c.RTSPS.Enabled() && !c.Node.IsNodeOnly() {
		p.errorf(nil, "rtsp.listen is empty and there is no rtsps: section; nothing would accept readers")
	}
	switch {
	case c.Node.IsNodeOnly() && routes != nil:
		p.errorf(routes, "routes: belong in the control's file; this file sets node.control, so it configures a node, which takes its routes from the control")
	case c.Node.IsNodeOnly() && authKey != nil:
		p.errorf(authKey, "auth: belongs in the control's file; this file sets node.control, so it configures a node, which serves no RTSP clients")
	case !c.Node.IsNodeOnly() && routes == nil:
		p.errorf(nil, "no routes: section; add one, e.g. routes: {demo: {source: demo}}")
	}
	return c
}

// defaults is the config before the file is applied: every documented default.
func defaults() *Config {
	return &Config{
		LogLevel:  LogInfo,
		LogFormat: LogText,
		RTSP: RTSP{
			Listen:   ":8554",
			RTPPort:  8000,
			RTCPPort: 8001,
			Multicast: Multicast{
				Range: netip.MustParsePrefix("239.255.42.0/24"),
				Port:  50000,
				TTL:   1,
			},
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			SessionTimeout:    60 * time.Second,
			MaxRequestBytes:   65536,
			UDPQueue:          4096,
			SlowReaderTimeout: 10 * time.Second,
			TCPQueue:          4096,
			Protocols:         []string{ProtoUDP, ProtoMulticast, ProtoTCP},
			Limits:            defaultLimits(),
		},
		Auth: defaultAuth(),
		Control: Control{
			Listen:       ":8443",
			NodeTimeout:  2 * time.Second,
			StartupGrace: 3 * time.Second,
			RelayNACK:    true, RelayNACKWait: 200 * time.Millisecond,
		},
		Node: Node{Name: "local"},
	}
}

// defaultRoute is a route before its settings are applied.
func defaultRoute() Route {
	return Route{
		Source:               SourcePublisher,
		SourceTransport:      TransportAuto,
		SRTP:                 SRTPOff,
		OnDemandStartTimeout: 10 * time.Second,
		OnDemandCloseAfter:   10 * time.Second,
		ReconnectMin:         time.Second,
		ReconnectMax:         30 * time.Second,
		BackupStall:          DefaultBackupStall,
		BackupMode:           BackupAuto,
	}
}

func (p *parser) rtsp(r *RTSP, v *yaml.Node) {
	const path = "rtsp"
	m := p.section(path, v)
	if m == nil {
		return
	}
	var rtcp *yaml.Node
	rtcpPort, rtpOK := 0, true
	p.fields(m, path, append([]field{
		{"listen", func(_, v *yaml.Node) { p.listen(&r.Listen, "rtsp.listen", v, `":8554"`, true) }},
		{"rtp_port", func(_, v *yaml.Node) {
			rtpOK = p.port(&r.RTPPort, "rtsp.rtp_port", v, 0)
		}},
		{"rtcp_port", func(_, v *yaml.Node) {
			if p.integer(&rtcpPort, "rtsp.rtcp_port", v, 0, 65535) {
				rtcp = v
			}
		}},
		{"multicast", func(_, v *yaml.Node) { p.multicast(&r.Multicast, v) }},
		{"read_timeout", func(_, v *yaml.Node) { p.duration(&r.ReadTimeout, "rtsp.read_timeout", v, false) }},
		{"write_timeout", func(_, v *yaml.Node) { p.duration(&r.WriteTimeout, "rtsp.write_timeout", v, false) }},
		{"session_timeout", func(_, v *yaml.Node) {
			p.duration(&r.SessionTimeout, "rtsp.session_timeout", v, false)
		}},
		{"max_request_bytes", func(_, v *yaml.Node) {
			p.integer(&r.MaxRequestBytes, "rtsp.max_request_bytes", v, 1024, 16<<20)
		}},
		{"udp_queue", func(_, v *yaml.Node) { p.integer(&r.UDPQueue, "rtsp.udp_queue", v, 1, 1<<20) }},
		{"tcp_queue", func(_, v *yaml.Node) { p.integer(&r.TCPQueue, "rtsp.tcp_queue", v, 1, 1<<20) }},
		{"protocols", func(_, v *yaml.Node) { p.protocols(r, v) }},
		{"egress_workers", func(_, v *yaml.Node) { p.integer(&r.EgressWorkers, "rtsp.egress_workers", v, 0, 64) }},
		{"slow_reader_timeout", func(_, v *yaml.Node) {
			p.duration(&r.SlowReaderTimeout, "rtsp.slow_reader_timeout", v, false)
		}},
	}, p.limitFields(&r.Limits)...))
	// The RTCP port is derived, not chosen: accept it only when it agrees.
	r.RTCPPort = 0
	if r.RTPPort != 0 {
		r.RTCPPort = r.RTPPort + 1
	}
	if rtcp != nil && rtpOK && rtcpPort != r.RTCPPort {
		if r.RTPPort == 0 {
			p.errorf(rtcp, "rtsp.rtcp_port: must be left out (or 0) when rtp_port is 0, because the pair is picked together")
		} else {
			p.errorf(rtcp, "rtsp.rtcp_port: must be rtp_port+1 (%d), got %d", r.RTCPPort, rtcpPort)
		}
	}
}

func (p *parser) multicast(mc *Multicast, v *yaml.Node) {
	const path = "rtsp.multicast"
	m := p.section(path, v)
	if m == nil {
		return
	}
	p.fields(m, path, []field{
		{"range", func(_, v *yaml.Node) {
			var s string
			if !p.str(&s, "rtsp.multicast.range", v) {
				return
			}
			pfx, msg := checkMulticastRange(s)
			if msg != "" {
				p.errorf(v, "rtsp.multicast.range: %s", msg)
				return
			}
			mc.Range = pfx
		}},
		{"port", func(_, v *yaml.Node) { p.port(&mc.Port, "rtsp.multicast.port", v, 2) }},
		{"ttl", func(_, v *yaml.Node) { p.integer(&mc.TTL, "rtsp.multicast.ttl", v, 0, 255) }},
		{"interface", func(_, v *yaml.Node) { p.str(&mc.Interface, "rtsp.multicast.interface", v) }},
	})
}

func (p *parser) protocols(r *RTSP, v *yaml.Node) {
	const path = "rtsp.protocols"
	s := resolve(v)
	if isNull(s) {
		return
	}
	if s.Kind != yaml.SequenceNode {
		p.errorf(v, "%s: expected a list like [udp, multicast, tcp], got %s", path, describe(s))
		return
	}
	if len(s.Content) == 0 {
		p.errorf(v, "%s: must name at least one of udp, multicast, tcp", path)
		return
	}
	var out []string
	seen := map[string]bool{}
	ok := true
	for _, item := range s.Content {
		var name string
		if !p.enum(&name, path, item, ProtoUDP, ProtoMulticast, ProtoTCP) {
			ok = false
			continue
		}
		if seen[name] {
			p.errorf(item, "%s: %q is listed twice", path, name)
			ok = false
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	if ok {
		r.Protocols = out
	}
}

func (p *parser) routes(c *Config, key, v *yaml.Node) {
	const path = "routes"
	m := resolve(v)
	if isNull(m) || (m.Kind == yaml.MappingNode && len(m.Content) == 0) {
		p.errorf(key, "routes: is empty; add at least one route, e.g. demo: {source: demo}")
		return
	}
	if m.Kind != yaml.MappingNode {
		p.errorf(v, "routes: expected a mapping of route name to settings, got %s", describe(m))
		return
	}
	entries := p.entries(m, path)
	if len(entries) == 0 {
		// Only merge keys that brought nothing in, e.g. routes: {<<: {}}.
		p.errorf(key, "routes: is empty; add at least one route, e.g. demo: {source: demo}")
		return
	}
	c.byName = map[string]int{}
	for _, e := range entries {
		r, ok := p.route(e.key, e.val)
		if !ok {
			continue
		}
		if r.Regexp == nil {
			c.byName[r.Name] = len(c.Routes)
		}
		c.Routes = append(c.Routes, r)
	}
}

func (p *parser) route(key, v *yaml.Node) (Route, bool) {
	r := defaultRoute()
	r.Name, r.Line = key.Value, key.Line
	path := "routes." + key.Value
	nerr := len(p.errs)

	if strings.HasPrefix(r.Name, "~") {
		r.Pattern = r.Name
		if r.Name == "~" {
			p.errorf(key, "%s: a regex route needs a pattern after the \"~\"", path)
		} else if re, err := regexp.Compile(r.Name[1:]); err != nil {
			p.errorf(key, "%s: invalid regular expression: %v", path, err)
		} else {
			r.Regexp = re
		}
	} else if msg := checkName(r.Name); msg != "" {
		p.errorf(key, "%s: %s", path, msg)
	}

	m := resolve(v)
	if isNull(m) {
		// A bare "name:" is a publisher route, as in mediamtx.
		return r, len(p.errs) == nerr
	}
	if m.Kind != yaml.MappingNode {
		p.errorf(v, "%s: expected a mapping of route settings (source:, on_demand:, ...), got %s", path, describe(m))
		return r, false
	}
	var srcNode, transportNode, onDemandNode, overrideNode, minNode, maxNode, tlsCANode *yaml.Node
	var bk backupKeys
	var rtpKeys rtpRouteKeys
	p.fields(m, path, append(append(p.backupFields(&r, path, &bk), rtpKeys.fields()...), []field{
		{"source", func(_, v *yaml.Node) {
			if p.str(&r.Source, path+".source", v) {
				srcNode = v
			}
		}},
		{"source_transport", func(_, v *yaml.Node) {
			if p.enum(&r.SourceTransport, path+".source_transport", v, TransportAuto, TransportUDP, TransportTCP) {
				transportNode = v
			}
		}},
		{"on_demand", func(_, v *yaml.Node) {
			if p.boolean(&r.OnDemand, path+".on_demand", v) {
				onDemandNode = v
			}
		}},
		{"on_demand_start_timeout", func(_, v *yaml.Node) {
			p.duration(&r.OnDemandStartTimeout, path+".on_demand_start_timeout", v, false)
		}},
		{"on_demand_close_after", func(_, v *yaml.Node) {
			p.duration(&r.OnDemandCloseAfter, path+".on_demand_close_after", v, true)
		}},
		{"override_publisher", func(_, v *yaml.Node) {
			if p.boolean(&r.OverridePublisher, path+".override_publisher", v) {
				overrideNode = v
			}
		}},
		{"max_readers", func(_, v *yaml.Node) { p.integer(&r.MaxReaders, path+".max_readers", v, 0, 1<<20) }},
		{"pacing", func(_, v *yaml.Node) { p.number(&r.Pacing, path+".pacing", v, 1, 20) }},
		{"node", func(_, v *yaml.Node) { p.nodeName(&r.Node, path+".node", v) }},
		{"allow_ips", func(_, v *yaml.Node) { r.AllowIPs = p.prefixes(path+".allow_ips", v) }},
		{"srtp", func(_, v *yaml.Node) { p.routeSRTP(&r, path, v) }},
		{"source_tls_ca", func(_, v *yaml.Node) {
			if p.str(&r.SourceTLSCA, path+".source_tls_ca", v) {
				tlsCANode = v
			}
		}},
		{"reconnect_min", func(_, v *yaml.Node) {
			if p.duration(&r.ReconnectMin, path+".reconnect_min", v, false) {
				minNode = v
			}
		}},
		{"reconnect_max", func(_, v *yaml.Node) {
			if p.duration(&r.ReconnectMax, path+".reconnect_max", v, false) {
				maxNode = v
			}
		}},
		{"outputs", func(k, v *yaml.Node) {
			if r.Outputs = p.outputs(path+".outputs", v); r.Regexp != nil && len(r.Outputs) > 0 {
				p.errorf(k, "%s: outputs need one stream; a regex route has one per matched path", path)
			}
		}},
	}...))
	p.checkBackup(r, path, bk)

	if srcNode != nil {
		if msg := p.checkRouteSource(r); msg != "" {
			p.errorf(srcNode, "%s: %s", path, msg)
		}
	}
	p.rtpRoute(&r, path, &rtpKeys, srcNode)
	if r.OnDemand && r.Source == SourcePublisher && onDemandNode != nil {
		p.errorf(onDemandNode, "%s: on_demand needs a source to pull; a publisher route has nothing to start (remove on_demand or set source)", path)
	}
	if r.OverridePublisher && r.Source != SourcePublisher && overrideNode != nil {
		p.errorf(overrideNode, "%s: override_publisher applies only to source: publisher", path)
	}
	if r.SourceTransport != TransportAuto && !r.IsPull() && !backupIsPull(r) && transportNode != nil {
		p.errorf(transportNode, "%s: source_transport applies only to rtsp:// and rtsps:// sources", path)
	}
	if tlsCANode != nil && !strings.HasPrefix(r.Source, "rtsps://") {
		p.errorf(tlsCANode, "%s: source_tls_ca applies only to rtsps:// sources", path)
	}
	if r.ReconnectMax < r.ReconnectMin && (minNode != nil || maxNode != nil) {
		at := maxNode
		if at == nil {
			at = minNode
		}
		p.errorf(at, "%s: reconnect_max (%s) must not be less than reconnect_min (%s)", path, r.ReconnectMax, r.ReconnectMin)
	}
	return r, len(p.errs) == nerr
}

// checkRouteSource validates r.Source. For a regex route the $ references
// must name groups of the pattern, and the source must be valid once they are
// filled in, which is checked with every capture set to "1" (a value that is
// legal in a host, a port and a path alike).
func (p *parser) checkRouteSource(r Route) string {
	return checkTemplate(r, "source", r.Source)
}

// checkTemplate validates a source-like value s of route r (key names it in
// messages) as checkRouteSource describes.
func checkTemplate(r Route, key, s string) string {
	if r.Regexp == nil {
		return checkSource(s)
	}
	names := r.Regexp.SubexpNames()
	for _, ref := range templateRefs(s) {
		if n, err := strconv.Atoi(ref); err == nil {
			if n > r.Regexp.NumSubexp() {
				return fmt.Sprintf("%s refers to $%s but the pattern has %d capture group(s)", key, ref, r.Regexp.NumSubexp())
			}
			continue
		}
		found := false
		for _, name := range names {
			if name != "" && name == ref {
				found = true
			}
		}
		if !found {
			msg := fmt.Sprintf("%s refers to ${%s} but the pattern has no group named %q", key, ref, ref)
			if d := leadingDigits(ref); d != "" {
				msg += fmt.Sprintf("; to follow group %s with text write ${%s}", d, d)
			}
			return msg
		}
	}
	match := make([]int, 2*(r.Regexp.NumSubexp()+1))
	for i := 1; i < len(match); i += 2 {
		match[i] = 1
	}
	return checkSource(string(r.Regexp.ExpandString(nil, s, "1", match)))
}
