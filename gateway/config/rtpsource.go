package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// RTPSource is what a route with source: rtp://HOST:PORT receives: plain
// RTP over UDP, optionally protected by SMPTE 2022-1 FEC and sent twice
// (SMPTE 2022-7 live-live).
type RTPSource struct {
	// Addr is HOST: the local address to bind, or a multicast group to
	// join.
	Addr netip.Addr
	// Port is PORT, the first track's media port. RTCP comes to port+1,
	// column FEC to port+2 and row FEC to port+4.
	Port int
	// Interface is source_interface, the interface a multicast group is
	// joined on; empty lets the kernel choose.
	Interface string
	// SDPFile is sdp: as written; SDP is its contents, nil for an MPEG-TS
	// source (payload type 33), which needs no file.
	SDPFile string
	SDP     []byte
	// Ports is each track's media port: the URL's for the first, the m=
	// line's for the others.
	Ports []int
	// FEC is fec: (nil: no 2022-1 decoding).
	FEC *FEC
	// LiveLive is live_live: (nil: one leg).
	LiveLive *LiveLive
}

// FEC is a route's fec: the sender's SMPTE 2022-1 matrix. The decoder
// learns L and D from the FEC packets; these values are checked against the
// standard's limits and size the wait for late rebuilds.
type FEC struct {
	// Columns is L. Rows is D; 0 means column FEC only with a D the
	// decoder learns.
	Columns, Rows int
}

// LiveLive is a route's live_live: the second leg of a 2022-7 pair.
type LiveLive struct {
	// Leg2 is the second leg's rtp://HOST2:PORT2 as written; Addr and Port
	// are its parts. Track i of leg 2 arrives on Port + (Ports[i] - the
	// first leg's Port).
	Leg2 string
	Addr netip.Addr
	Port int
	// Skew is how long the merge waits for the other leg: A (10ms),
	// B (50ms, default), C (450ms) or a duration.
	Skew time.Duration
}

// maxSDPFile bounds an sdp: file.
const maxSDPFile = 64 << 10

// SchemeRTP is the scheme of plain RTP/UDP sources.
const SchemeRTP = "rtp"

// IsRTP reports whether the route's source is plain RTP/UDP (rtp://).
func (r Route) IsRTP() bool { return strings.HasPrefix(strings.ToLower(r.Source), SchemeRTP+"://") }

// Leg2Ports returns the media port of each track on the second leg.
func (s *RTPSource) Leg2Ports() []int {
	if s.LiveLive == nil {
		return nil
	}
	out := make([]int, len(s.Ports))
	for i, p := range s.Ports {
		out[i] = s.LiveLive.Port + p - s.Port
	}
	return out
}

// parseRTPURL splits rtp://HOST:PORT, HOST an IP address (to bind or a
// group to join), PORT even and low enough for port+4.
func parseRTPURL(s string) (netip.Addr, int, string) {
	rest, ok := strings.CutPrefix(strings.ToLower(s), SchemeRTP+"://")
	if !ok {
		return netip.Addr{}, 0, fmt.Sprintf("%q is not rtp://HOST:PORT", s)
	}
	if strings.ContainsAny(rest, "/?#@") {
		return netip.Addr{}, 0, fmt.Sprintf("%q: an rtp:// source is just rtp://HOST:PORT (no path, query or user)", s)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		if i := strings.LastIndexByte(rest, ':'); i > 0 {
			if _, perr := netip.ParseAddr(strings.Trim(rest[:i], "[]")); perr != nil {
				return netip.Addr{}, 0, fmt.Sprintf("%q: HOST must be an IP address to bind or a multicast group to join", s)
			}
		}
		return netip.Addr{}, 0, fmt.Sprintf("%q is not rtp://HOST:PORT with a numeric port", s)
	}
	port := int(ap.Port())
	if port < 2 || port > 65530 || port%2 != 0 {
		return netip.Addr{}, 0, fmt.Sprintf("%q: port %d, want an even port 2-65530 (RTCP takes port+1, FEC port+2 and port+4)", s, port)
	}
	return ap.Addr().Unmap(), port, ""
}

// rtpRouteKeys are the value nodes of the rtp:// keys of one route, read
// before it is known whether the source is rtp://.
type rtpRouteKeys struct {
	iface, sdp, fec, liveLive *yaml.Node
	dupSkew                   *yaml.Node // ST 2110 sources (st2110.go)
}

func (k *rtpRouteKeys) fields() []field {
	return []field{
		{"source_interface", func(_, v *yaml.Node) { k.iface = v }},
		{"sdp", func(_, v *yaml.Node) { k.sdp = v }},
		{"fec", func(_, v *yaml.Node) { k.fec = v }},
		{"live_live", func(_, v *yaml.Node) { k.liveLive = v }},
		{"dup_skew", func(_, v *yaml.Node) { k.dupSkew = v }},
	}
}

// rtpRoute checks and applies the rtp:// settings of r.
func (p *parser) rtpRoute(r *Route, path string, k *rtpRouteKeys, srcNode *yaml.Node) {
	if r.IsMemif() {
		p.memifRoute(r, path, k, srcNode)
		return
	}
	if r.IsST2110() {
		p.st2110Route(r, path, k, srcNode)
		return
	}
	if k.dupSkew != nil && !isNull(resolve(k.dupSkew)) {
		p.errorf(k.dupSkew, "%s.dup_skew: applies only to st2110 sources", path)
	}
	if !r.IsRTP() {
		for _, kv := range []struct {
			name string
			n    *yaml.Node
		}{{"source_interface", k.iface}, {"sdp", k.sdp}, {"fec", k.fec}, {"live_live", k.liveLive}} {
			if kv.n != nil && !isNull(resolve(kv.n)) {
				p.errorf(kv.n, "%s.%s: applies only to rtp:// sources", path, kv.name)
			}
		}
		return
	}
	if srcNode == nil || checkSource(r.Source) != "" {
		return // checkRouteSource reported it
	}
	if r.Regexp != nil {
		p.errorf(srcNode, "%s: an rtp:// source binds fixed ports, so it cannot serve a regex route", path)
		return
	}
	addr, port, _ := parseRTPURL(r.Source)
	src := &RTPSource{Addr: addr, Port: port}
	if k.iface != nil && p.str(&src.Interface, path+".source_interface", k.iface) && !addr.IsMulticast() {
		p.errorf(k.iface, "%s.source_interface: applies to a multicast group; %s is unicast", path, addr)
	}
	src.Ports = []int{port}
	if k.sdp != nil && p.str(&src.SDPFile, path+".sdp", k.sdp) {
		p.rtpSDP(src, path, k.sdp)
	}
	if k.fec != nil {
		src.FEC = p.rtpFEC(path+".fec", k.fec)
	}
	if k.liveLive != nil {
		src.LiveLive = p.rtpLiveLive(path+".live_live", k.liveLive)
	}
	p.rtpPorts(src, path, srcNode)
	r.RTPSource = src
}

// readSDP reads an SDP file named in the config (relative to the config file's directory) and
// returns it with the path it was read from.
func (p *parser) readSDP(name string) ([]byte, string, error) {
	if !filepath.IsAbs(name) && p.file != "" {
		name = filepath.Join(filepath.Dir(p.file), name)
	}
	// A description is a few hundred bytes: anything but a small regular
	// file (a FIFO, /dev/zero) is a mistake that must not hang the load.
	fi, err := os.Stat(name)
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() > maxSDPFile) {
		err = fmt.Errorf("%s is not a regular file of at most %d bytes", name, maxSDPFile)
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(name)
	}
	return b, name, err
}

// rtpSDP reads the sdp: file (relative to the config file's directory).
func (p *parser) rtpSDP(src *RTPSource, path string, v *yaml.Node) {
	b, name := p.readRTPSDP(src.SDPFile, path, v)
	if b == nil {
		return
	}
	tracks, ports, _ := sdp.ParseSource(b) // readSDP parsed it
	if ports[0] != 0 && ports[0] != src.Port {
		p.errorf(v, "%s.sdp: %s: the first m= line names port %d but the source URL port %d; make them agree (or write 0 in the m= line)", path, name, ports[0], src.Port)
		return
	}
	src.Ports = []int{src.Port}
	for i := 1; i < len(tracks); i++ {
		if ports[i] == 0 {
			p.errorf(v, "%s.sdp: %s: media %d (%s) has port 0; every media after the first needs its own port in its m= line", path, name, i+1, tracks[i].Media)
			return
		}
		src.Ports = append(src.Ports, ports[i])
	}
	src.SDP = b
}

func (p *parser) rtpFEC(path string, v *yaml.Node) *FEC {
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	f := &FEC{}
	var cols *yaml.Node
	p.fields(m, path, []field{
		{"columns", func(_, v *yaml.Node) {
			if p.integer(&f.Columns, path+".columns", v, 1, fec.MaxColumns) {
				cols = v
			}
		}},
		{"rows", func(_, v *yaml.Node) { p.integer(&f.Rows, path+".rows", v, 0, fec.MaxRows) }},
	})
	if cols == nil {
		p.errorf(v, "%s: columns (L) is required, e.g. {columns: 10, rows: 10}", path)
		return nil
	}
	if f.Rows == 0 {
		return f // column FEC only, D learnt from the FEC headers
	}
	// 2D needs L ≥ 4, column-only L ≥ 1: accept what one of them allows.
	mode := fec.Mode2D
	if f.Columns < fec.MinColumns2D {
		mode = fec.ModeColumn
	}
	if _, err := fec.NewEncoder(fec.Config{Columns: f.Columns, Rows: f.Rows, Mode: mode}); err != nil {
		p.errorf(v, "%s: %s", path, strings.TrimPrefix(err.Error(), "fec: encoder config: "))
		return nil
	}
	return f
}

// maxSkew bounds a 2022-7 merge window: beyond it a "live" stream waits longer than a viewer
// accepts.
const maxSkew = 10 * time.Second

// skew reads an SMPTE 2022-7 merge window: a receiver class (A 10ms, B 50ms, C 450ms) or a
// duration up to max. also names other accepted words for the error message.
func (p *parser) skew(dst *time.Duration, path, s string, v *yaml.Node, also string) {
	switch strings.ToUpper(s) {
	case "A":
		*dst = 10 * time.Millisecond
	case "B":
		*dst = 50 * time.Millisecond
	case "C":
		*dst = 450 * time.Millisecond
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxSkew {
			p.errorf(v, "%s: %q, want %sA (10ms), B (50ms), C (450ms) or a duration up to %v like \"100ms\"", path, s, also, maxSkew)
			return
		}
		*dst = d
	}
}

func (p *parser) rtpLiveLive(path string, v *yaml.Node) *LiveLive {
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	ll := &LiveLive{Skew: 50 * time.Millisecond}
	seen, ok := false, false
	p.fields(m, path, []field{
		{"leg2", func(_, v *yaml.Node) {
			seen = true
			if !p.str(&ll.Leg2, path+".leg2", v) {
				return
			}
			var msg string
			if ll.Addr, ll.Port, msg = parseRTPURL(ll.Leg2); msg != "" {
				p.errorf(v, "%s.leg2: %s", path, msg)
				return
			}
			ok = true
		}},
		{"skew", func(_, v *yaml.Node) {
			var s string
			if p.str(&s, path+".skew", v) {
				p.skew(&ll.Skew, path+".skew", s, v, "")
			}
		}},
	})
	if !seen {
		p.errorf(v, "%s: leg2 (rtp://HOST2:PORT2) is required", path)
	}
	if !ok {
		return nil
	}
	return ll
}

// rtpPorts checks that no two sockets of the source share a port.
func (p *parser) rtpPorts(src *RTPSource, path string, at *yaml.Node) {
	offs := []int{0, 1}
	if src.FEC != nil {
		offs = append(offs, 2, 4)
	}
	type sock struct {
		addr netip.Addr
		port int
	}
	used := map[sock]string{}
	check := func(addr netip.Addr, ports []int, leg string) {
		for i, base := range ports {
			for _, o := range offs {
				port := base + o
				what := fmt.Sprintf("%s track %d port %d", leg, i+1, port)
				if port > 65535 {
					p.errorf(at, "%s: %s is beyond 65535", path, what)
					return
				}
				for s, other := range used {
					if s.port == port && (s.addr == addr || s.addr.IsUnspecified() || addr.IsUnspecified()) {
						p.errorf(at, "%s: %s collides with %s (RTCP takes port+1, FEC port+2 and port+4)", path, what, other)
						return
					}
				}
				used[sock{addr, port}] = what
			}
		}
	}
	check(src.Addr, src.Ports, "leg 1")
	if src.LiveLive != nil {
		check(src.LiveLive.Addr, src.Leg2Ports(), "leg 2")
	}
}

// checkRTPSource returns what is wrong with an rtp:// source URL, or "".
func checkRTPSource(s string) string {
	_, _, msg := parseRTPURL(s)
	return msg
}

// readRTPSDP reads an sdp: file with readSDP and checks that it parses as an RTP source
// description; on failure it reports at v and returns nil.
func (p *parser) readRTPSDP(file, path string, v *yaml.Node) (b []byte, name string) {
	b, name, err := p.readSDP(file)
	if err != nil {
		p.errorf(v, "%s.sdp: %v", path, err)
		return nil, name
	}
	if _, _, err = sdp.ParseSource(b); err != nil {
		p.errorf(v, "%s.sdp: %s: %v", path, name, err)
		return nil, name
	}
	return b, name
}
