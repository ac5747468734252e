package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/fec"
)

// FEC modes accepted in routes.*.outputs[].fec.mode.
const (
	FECMode2D     = "2d"     // column and row FEC (FFmpeg's prompeg and GStreamer's default)
	FECModeColumn = "column" // the standard's 1D mode: column FEC only
	FECModeRow    = "row"    // row FEC only (not a 2022-1 mode; GStreamer sends and decodes it)
)

// Output is one routes.*.outputs entry: the route's stream sent as plain RTP/UDP.
type Output struct {
	// URL is url as written (rtp://HOST:PORT).
	URL string
	// Dest is its address: an IP literal (unicast or a multicast group) and an even port. Track
	// i of the stream goes to port + i×PortStride().
	Dest netip.AddrPort
	// Leg2 is leg2: a second destination sent the identical packets (SMPTE 2022-7); invalid
	// for none.
	Leg2 netip.AddrPort
	// FEC is fec: SMPTE 2022-1 FEC (column FEC to port+2, row FEC to port+4 of each leg); nil
	// for none.
	FEC *OutputFEC
	// TTL is ttl: the multicast TTL (hop limit), 1-255; 0 means 1. Only valid when a
	// destination is a multicast group.
	TTL int
	// Node is node: the node that sends the output; empty for the node ingesting the stream.
	Node string
	// Line is the line of the entry, for messages found after loading.
	Line int
	// Memif, when set, makes the output a memif consumer interface of node Node (node.memif
	// entries with a route:); Dest, Leg2, FEC and TTL are then unused.
	Memif *MemifOutput
	// ST2110 is st2110: the route's raw video sent as a paced ST 2110-20 flow instead of plain
	// RTP (Dest is then its video destination); nil for a plain RTP output.
	ST2110 *ST2110Output
	// SDPFile is sdp: where the node sending an ST 2110 output writes its SDP.
	SDPFile string
}

// OutputFEC is an output's fec: mapping.
type OutputFEC struct {
	Columns int    // L, columns
	Rows    int    // D, rows (0 in row mode)
	Mode    string // FECMode2D (default), FECModeColumn or FECModeRow
}

// FECConfig is the encoder configuration of f (Columns, Rows, Mode).
func (f OutputFEC) FECConfig() fec.Config {
	c := fec.Config{Columns: f.Columns, Rows: f.Rows}
	switch f.Mode {
	case FECModeColumn:
		c.Mode = fec.ModeColumn
	case FECModeRow:
		c.Mode = fec.ModeRow
	}
	return c
}

// PortStride is how far apart the destination ports of consecutive tracks are: 2 (RTP, RTCP)
// without FEC, 6 (RTP, RTCP, column FEC, -, row FEC, -) with.
func (o Output) PortStride() int {
	if o.FEC != nil {
		return 6
	}
	return 2
}

// outputs reads a route's outputs: list.
func (p *parser) outputs(path string, v *yaml.Node) []Output {
	s := resolve(v)
	if isNull(s) {
		return nil
	}
	if s.Kind != yaml.SequenceNode {
		p.errorf(v, "%s: expected a list of outputs like [{url: rtp://239.1.1.1:5000}], got %s", path, describe(s))
		return nil
	}
	var out []Output
	seen := map[netip.AddrPort]int{}
	for i, item := range s.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		o, ok := p.output(ipath, item)
		if !ok {
			continue
		}
		dup := false
		for _, d := range []netip.AddrPort{o.Dest, o.Leg2} {
			if !d.IsValid() {
				continue
			}
			if line, taken := seen[d]; taken {
				p.errorf(item, "%s: %s is already a destination of the output at line %d", ipath, d, line)
				dup = true
			}
			seen[d] = o.Line
		}
		if !dup {
			out = append(out, o)
		}
	}
	return out
}

func (p *parser) output(path string, v *yaml.Node) (Output, bool) {
	nerr := len(p.errs)
	o := Output{Line: v.Line}
	m := resolve(v)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(v, "%s: expected a mapping like {url: rtp://239.1.1.1:5000}, got %s", path, describe(m))
		return o, false
	}
	var urlNode, ttlNode, stNode, sdpNode *yaml.Node
	p.fields(m, path, []field{
		{"st2110", func(_, v *yaml.Node) {
			if o.ST2110 = p.st2110Output(path+".st2110", v); o.ST2110 != nil {
				stNode = v
				o.Dest, o.Leg2 = o.ST2110.Video, o.ST2110.Leg2
			}
		}},
		{"sdp", func(_, v *yaml.Node) {
			if p.str(&o.SDPFile, path+".sdp", v) {
				sdpNode = v
			}
		}},
		{"url", func(_, v *yaml.Node) {
			if p.str(&o.URL, path+".url", v) {
				urlNode = v
				o.Dest = p.rtpURL(path+".url", v, o.URL)
			}
		}},
		{"leg2", func(_, v *yaml.Node) {
			var s string
			if p.str(&s, path+".leg2", v) {
				o.Leg2 = p.rtpURL(path+".leg2", v, s)
			}
		}},
		{"fec", func(_, v *yaml.Node) { o.FEC = p.outputFEC(path+".fec", v) }},
		{"ttl", func(_, v *yaml.Node) {
			if p.integer(&o.TTL, path+".ttl", v, 1, 255) {
				ttlNode = v
			}
		}},
		{"node", func(_, v *yaml.Node) { p.nodeName(&o.Node, path+".node", v) }},
	})
	switch {
	case stNode != nil && urlNode != nil:
		p.errorf(urlNode, "%s: an output is either url: (plain RTP) or st2110:, not both", path)
	case stNode != nil && o.FEC != nil:
		p.errorf(stNode, "%s: fec: applies to plain RTP outputs, not st2110:", path)
	case sdpNode != nil && stNode == nil:
		p.errorf(sdpNode, "%s.sdp: applies to st2110: outputs", path)
	case urlNode == nil && stNode == nil && len(p.errs) == nerr:
		p.errorf(v, "%s: url is required (rtp://HOST:PORT), or st2110: {video: HOST:PORT}", path)
	}
	if o.Dest.IsValid() && o.Leg2 == o.Dest {
		p.errorf(v, "%s: leg2 must differ from url", path)
	}
	if ttlNode != nil && !o.Dest.Addr().IsMulticast() && !o.Leg2.Addr().IsMulticast() {
		p.errorf(ttlNode, "%s.ttl: applies only to multicast destinations; %s is unicast", path, o.Dest.Addr())
	}
	if o.FEC != nil {
		for _, d := range []netip.AddrPort{o.Dest, o.Leg2} {
			if d.IsValid() && d.Port() > 65535-5 {
				p.errorf(v, "%s: port %d leaves no room for the FEC ports +2 and +4", path, d.Port())
			}
		}
	}
	return o, len(p.errs) == nerr
}

// rtpURL parses rtp://HOST:PORT with an IP literal host and an even port.
func (p *parser) rtpURL(path string, v *yaml.Node, s string) netip.AddrPort {
	const want = "rtp://HOST:PORT with an IP address and an even port, e.g. rtp://239.1.1.1:5000"
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "rtp") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		p.errorf(v, "%s: %q is not %s", path, s, want)
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		p.errorf(v, "%s: host %q is not an IP address (names are not resolved); want %s", path, u.Hostname(), want)
		return netip.AddrPort{}
	}
	if a.IsUnspecified() {
		p.errorf(v, "%s: %s cannot be sent to", path, a)
		return netip.AddrPort{}
	}
	n, err := strconv.Atoi(u.Port())
	if err != nil || n < 2 || n > 65534 {
		p.errorf(v, "%s: %q needs a port 2-65534", path, s)
		return netip.AddrPort{}
	}
	if n%2 != 0 {
		p.errorf(v, "%s: port %d is odd; RTP needs an even port (RTCP takes the next odd one)", path, n)
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(n))
}

func (p *parser) outputFEC(path string, v *yaml.Node) *OutputFEC {
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	f := &OutputFEC{Mode: FECMode2D}
	var cols, rows *yaml.Node
	p.fields(m, path, []field{
		{"columns", func(_, v *yaml.Node) {
			if p.integer(&f.Columns, path+".columns", v, 1, fec.MaxColumns) {
				cols = v
			}
		}},
		{"rows", func(_, v *yaml.Node) {
			if p.integer(&f.Rows, path+".rows", v, 0, fec.MaxRows) {
				rows = v
			}
		}},
		{"mode", func(_, v *yaml.Node) { p.enum(&f.Mode, path+".mode", v, FECMode2D, FECModeColumn, FECModeRow) }},
	})
	switch {
	case cols == nil:
		p.errorf(v, "%s: columns (L) is required", path)
		return nil
	case rows == nil && f.Mode != FECModeRow:
		p.errorf(v, "%s: rows (D) is required for %s FEC", path, f.Mode)
		return nil
	}
	if _, err := fec.NewEncoder(f.FECConfig()); err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "encoder config: "); i >= 0 {
			msg = msg[i+len("encoder config: "):]
		}
		p.errorf(v, "%s: %s (SMPTE 2022-1: 1D 1≤L≤20, 2D 4≤L≤20; 4≤D≤20; L×D≤100)", path, msg)
		return nil
	}
	return f
}
