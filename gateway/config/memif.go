package config

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/rtp/st2110"
)

// Memif forms accepted in node.memif.interfaces[].form.
const (
	// MemifPackets: each buffer is one RTP packet of the route's tracks behind an 8-byte header
	// (rtp/memifrtp).
	MemifPackets = "packets"
	// MemifFrames: each buffer chain is one whole raw video frame of an st2110:// route, as its
	// reassembler finished it, behind a 32-byte header (rtp/memifrtp FrameOut).
	MemifFrames = "frames"
)

// Memif is node.memif: the node's memif master, where local applications take a route's packets
// (or, for source: memif://ID routes, put them in) over shared memory.
type Memif struct {
	// Socket is node.memif.socket: the control socket's file path, or @name for a Linux abstract
	// socket. A stale socket file is removed at start.
	Socket string
	// Mode is node.memif.mode: a path socket's file mode, an octal string like "0660" (the
	// default). Abstract sockets have no permissions; use a path to restrict who connects.
	Mode fs.FileMode
	// Interfaces are node.memif.interfaces: one entry per memif interface id.
	Interfaces []MemifInterface
	// Line is the line of the memif: key.
	Line int
}

// MemifInterface is one node.memif.interfaces entry.
type MemifInterface struct {
	// ID is id: the memif interface id (0-4294967295) a peer names in its INIT.
	ID uint32
	// Secret is secret: the shared secret the peer must send (at most 24 bytes); empty for none.
	Secret string
	// Route is route: the route whose packets a consumer on this interface gets. Empty for an
	// interface that a route's source: memif://ID reads from (a producer).
	Route string
	// Form is form: MemifPackets (default) or MemifFrames (consumers of st2110:// routes only).
	Form string
	// Line is the entry's line.
	Line int

	routeNode *yaml.Node // for messages about the route
}

// memif reads node.memif.
func (p *parser) memif(v *yaml.Node) *Memif {
	const path = "node.memif"
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	mc := &Memif{Mode: 0o660, Line: v.Line}
	nerr := len(p.errs)
	p.fields(m, path, []field{
		{"socket", func(_, v *yaml.Node) {
			var s string
			if !p.strWant(&s, path+".socket", v, `a socket path like "/run/meshgw/memif.sock" or "@meshgw"`) {
				return
			}
			switch {
			case s == "" || s == "@":
				p.errorf(v, "%s.socket: empty", path)
			case len(s) > 107:
				p.errorf(v, "%s.socket: %d bytes; a Unix socket name holds at most 107", path, len(s))
			default:
				mc.Socket = s
			}
		}},
		{"mode", func(_, v *yaml.Node) {
			var s string
			if !p.strWant(&s, path+".mode", v, `an octal file mode in quotes like "0660"`) {
				return
			}
			n, err := strconv.ParseUint(s, 8, 32)
			if err != nil || n > 0o777 || n == 0 {
				p.errorf(v, "%s.mode: %q is not an octal file mode like \"0660\"", path, s)
				return
			}
			mc.Mode = fs.FileMode(n)
		}},
		{"interfaces", func(_, v *yaml.Node) { mc.Interfaces = p.memifInterfaces(path+".interfaces", v) }},
	})
	if len(p.errs) > nerr {
		return mc // said already
	}
	if mc.Socket == "" {
		p.errorf(v, "%s: socket is required (a path or @name)", path)
	}
	if len(mc.Interfaces) == 0 {
		p.errorf(v, "%s: interfaces is empty; add one like {id: 1, secret: s3cret, route: cam}", path)
	}
	return mc
}

func (p *parser) memifInterfaces(path string, v *yaml.Node) []MemifInterface {
	s := resolve(v)
	if s == nil || s.Kind != yaml.SequenceNode {
		p.errorf(v, "%s: expected a list like [{id: 1, secret: s3cret, route: cam}], got %s", path, describe(s))
		return nil
	}
	var out []MemifInterface
	seen := map[uint32]int{}
	for i, e := range s.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		m := resolve(e)
		if m == nil || m.Kind != yaml.MappingNode {
			p.errorf(e, "%s: expected a mapping like {id: 1, route: cam}, got %s", ipath, describe(m))
			continue
		}
		it := MemifInterface{Form: MemifPackets, Line: e.Line}
		var idSet bool
		nerr := len(p.errs)
		p.fields(m, ipath, []field{
			{"id", func(_, v *yaml.Node) {
				var n int
				if p.integer(&n, ipath+".id", v, 0, 1<<32-1) {
					it.ID, idSet = uint32(n), true
				}
			}},
			{"secret", func(_, v *yaml.Node) {
				if p.str(&it.Secret, ipath+".secret", v) && len(it.Secret) > 24 {
					p.errorf(v, "%s.secret: %d bytes; memif carries at most 24", ipath, len(it.Secret))
				}
			}},
			{"route", func(_, v *yaml.Node) {
				if p.str(&it.Route, ipath+".route", v) {
					it.routeNode = v
				}
			}},
			{"form", func(_, v *yaml.Node) { p.enum(&it.Form, ipath+".form", v, MemifPackets, MemifFrames) }},
		})
		if !idSet {
			if len(p.errs) == nerr {
				p.errorf(e, "%s: id is required", ipath)
			}
			continue
		}
		if line, dup := seen[it.ID]; dup {
			p.errorf(e, "%s: id %d is already used at line %d", ipath, it.ID, line)
			continue
		}
		seen[it.ID] = e.Line
		out = append(out, it)
	}
	return out
}

// memifOutputs checks node.memif against the routes. Each consumer interface becomes an output
// of its route, served by this file's node: the control then keeps the route running and hands
// the node a memif sink flow per track (gateway/output.go). Each memif:// source must name a
// producer interface of this file's node, which then ingests the route.
func (p *parser) memifOutputs(c *Config) {
	mc := c.Node.Memif
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.MemifSource == nil {
			continue
		}
		it, ok := c.Node.MemifInterfaceByID(r.MemifSource.ID)
		switch {
		case !ok:
			p.errorf(r.MemifSource.node, "routes.%s: %s: node.memif has no interface %d", r.Name, r.Source, r.MemifSource.ID)
		case it.Route != "":
			p.errorf(r.MemifSource.node, "routes.%s: %s: interface %d is a consumer of route %q (it has route:), not a producer", r.Name, r.Source, it.ID, it.Route)
		case r.Backup != "":
			p.errorf(r.MemifSource.node, "routes.%s: backup: is not supported with a memif:// source", r.Name)
		case it.Form == MemifFrames && r.MemifSource.SDP == nil:
			p.errorf(r.MemifSource.node, "routes.%s: %s: interface %d has form: frames; give the raw video's ST 2110 description in sdp:", r.Name, r.Source, it.ID)
		case it.Form == MemifFrames && st2110SDPErr(r.MemifSource.SDP) != nil:
			p.errorf(r.MemifSource.node, "routes.%s: sdp: %s: %v (interface %d has form: frames, which needs an ST 2110 description)", r.Name, r.MemifSource.SDPFile, st2110SDPErr(r.MemifSource.SDP), it.ID)
		case r.Node != "" && r.Node != c.Node.Name:
			p.errorf(r.MemifSource.node, "routes.%s: a memif:// source is ingested by the node with the interface (%s), not node %q", r.Name, c.Node.Name, r.Node)
		default:
			r.Node = c.Node.Name
		}
	}
	if mc == nil {
		return
	}
	for _, it := range mc.Interfaces {
		if it.Route == "" {
			continue
		}
		if c.Node.IsNodeOnly() {
			p.errorf(it.routeNode, "node.memif.interfaces: id %d: route: is served only from the control's file (meshgw run or meshgw control); a standalone node's memif consumers are not wired yet", it.ID)
			continue
		}
		i := routeIndex(c, it.Route)
		if i < 0 {
			p.errorf(it.routeNode, "node.memif.interfaces: id %d: route %q is not a plain route of this file", it.ID, it.Route)
			continue
		}
		if it.Form == MemifFrames && !c.Routes[i].IsST2110() {
			p.errorf(it.routeNode, "node.memif.interfaces: id %d: form: frames needs a route whose source is st2110:// (the frames come from its RFC 4175 reassembler); route %q has source %q", it.ID, it.Route, c.Routes[i].Source)
			continue
		}
		c.Routes[i].Outputs = append(c.Routes[i].Outputs, Output{URL: "memif://" + strconv.FormatUint(uint64(it.ID), 10),
			Memif: &MemifOutput{ID: it.ID, Form: it.Form}, Node: c.Node.Name, Line: it.Line})
	}
}

// st2110SDPErr is why b is not an ST 2110 description, nil if it is one.
func st2110SDPErr(b []byte) error {
	_, err := st2110.ParseSDP(b)
	return err
}

// routeIndex is the index of the plain route named name, -1 if none.
func routeIndex(c *Config, name string) int {
	name = strings.TrimPrefix(name, "/")
	for i, r := range c.Routes {
		if r.Regexp == nil && r.Name == name {
			return i
		}
	}
	return -1
}

// MemifOutput marks an output that is a memif consumer interface of the node.
type MemifOutput struct {
	ID   uint32
	Form string
}

// MemifInterfaceByID is the node's memif interface id, if it has one.
func (n Node) MemifInterfaceByID(id uint32) (MemifInterface, bool) {
	if n.Memif != nil {
		for _, it := range n.Memif.Interfaces {
			if it.ID == id {
				return it, true
			}
		}
	}
	return MemifInterface{}, false
}

// SchemeMemif is the scheme of memif sources (memif://ID).
const SchemeMemif = "memif"

// IsMemif reports whether the route's source is a memif producer interface (memif://ID).
func (r Route) IsMemif() bool { return strings.HasPrefix(strings.ToLower(r.Source), SchemeMemif+"://") }

// MemifSource is what a route with source: memif://ID takes: the RTP packets a local producer
// writes into memif interface ID of the node (the packets form), described by sdp:.
type MemifSource struct {
	// ID is the interface id.
	ID uint32
	// SDPFile is sdp: as written; SDP is its contents (nil: one MPEG-TS track, PT 33).
	SDPFile string
	SDP     []byte

	node *yaml.Node // the source: value, for messages
}

// parseMemifURL reads memif://ID.
func parseMemifURL(s string) (uint32, string) {
	rest, ok := strings.CutPrefix(strings.ToLower(s), SchemeMemif+"://")
	n, err := strconv.ParseUint(rest, 10, 32)
	if !ok || err != nil {
		return 0, fmt.Sprintf("%q is not memif://ID with ID a node.memif interface id (0-4294967295)", s)
	}
	return uint32(n), ""
}

// memifRoute applies a memif:// source's settings: sdp: like an rtp:// source's (its m= ports
// are not used); the rtp:// transport keys do not apply.
func (p *parser) memifRoute(r *Route, path string, k *rtpRouteKeys, srcNode *yaml.Node) {
	for _, kv := range []struct {
		name string
		n    *yaml.Node
	}{{"source_interface", k.iface}, {"fec", k.fec}, {"live_live", k.liveLive}} {
		if kv.n != nil && !isNull(resolve(kv.n)) {
			p.errorf(kv.n, "%s.%s: applies only to rtp:// sources", path, kv.name)
		}
	}
	if srcNode == nil || checkSource(r.Source) != "" {
		return // checkRouteSource reported it
	}
	if r.Regexp != nil {
		p.errorf(srcNode, "%s: a memif:// source is one interface, so it cannot serve a regex route", path)
		return
	}
	id, _ := parseMemifURL(r.Source)
	src := &MemifSource{ID: id, node: srcNode}
	if k.sdp != nil && p.str(&src.SDPFile, path+".sdp", k.sdp) {
		src.SDP, _ = p.readRTPSDP(src.SDPFile, path, k.sdp)
	}
	r.MemifSource = src
}
