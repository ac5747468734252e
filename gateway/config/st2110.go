package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/rtp/st2110"
)

// SchemeST2110 is the scheme of ST 2110 sources: source: st2110://FILE.sdp, or source: st2110
// with the file in sdp:.
const SchemeST2110 = "st2110"

// ST2110Source is what a route with an ST 2110 source receives: the flows its SDP file
// describes (RFC 4175 video, L24/L16 audio, ANC, JPEG XS passed through), on one leg or two
// (a=group:DUP, SMPTE 2022-7).
type ST2110Source struct {
	// SDPFile is the file as written (the URL's path or sdp:); SDP is its contents and
	// Session what they say.
	SDPFile string
	SDP     []byte
	Session *st2110.Session
	// Interface is source_interface, where multicast groups are joined; empty lets the
	// kernel choose.
	Interface string
	// Skew is dup_skew: how long the 2022-7 merge of a=group:DUP legs waits for the slower
	// leg (default 50 ms, class B).
	Skew time.Duration
}

// IsST2110 reports whether the route's source is ST 2110 (st2110://FILE or st2110).
func (r Route) IsST2110() bool {
	s := strings.ToLower(r.Source)
	return s == SchemeST2110 || strings.HasPrefix(s, SchemeST2110+"://")
}

// checkST2110Source returns what is wrong with an st2110:// source, or "".
func checkST2110Source(s string) string {
	if rest := s[len(SchemeST2110+"://"):]; rest == "" {
		return fmt.Sprintf("source %q names no SDP file; write st2110://FILE.sdp (or source: st2110 and sdp: FILE.sdp)", s)
	}
	return ""
}

// st2110Route checks and applies the settings of an ST 2110 source route.
func (p *parser) st2110Route(r *Route, path string, k *rtpRouteKeys, srcNode *yaml.Node) {
	for _, kv := range []struct {
		name string
		n    *yaml.Node
	}{{"fec", k.fec}, {"live_live", k.liveLive}} {
		if kv.n != nil && !isNull(resolve(kv.n)) {
			p.errorf(kv.n, "%s.%s: applies only to rtp:// sources (an ST 2110 source takes its 2022-7 legs from a=group:DUP in its SDP)", path, kv.name)
		}
	}
	if srcNode == nil || checkSource(r.Source) != "" {
		return
	}
	if r.Regexp != nil {
		p.errorf(srcNode, "%s: an ST 2110 source binds fixed ports, so it cannot serve a regex route", path)
		return
	}
	if r.Backup != "" {
		p.errorf(srcNode, "%s: an ST 2110 source cannot have a backup: (its 2022-7 legs are its protection)", path)
		return
	}
	src := &ST2110Source{Skew: 50 * time.Millisecond}
	if k.dupSkew != nil {
		var sk string
		if p.str(&sk, path+".dup_skew", k.dupSkew) {
			p.skew(&src.Skew, path+".dup_skew", sk, k.dupSkew, "")
		}
	}
	at := srcNode
	if strings.EqualFold(r.Source, SchemeST2110) {
		if k.sdp == nil {
			p.errorf(srcNode, "%s: source: st2110 needs sdp: FILE.sdp (or write source: st2110://FILE.sdp)", path)
			return
		}
		if !p.str(&src.SDPFile, path+".sdp", k.sdp) {
			return
		}
		at = k.sdp
	} else {
		if k.sdp != nil {
			p.errorf(k.sdp, "%s.sdp: the SDP file is already named by source: %s", path, r.Source)
			return
		}
		src.SDPFile = r.Source[len(SchemeST2110+"://"):]
	}
	if k.iface != nil && !p.str(&src.Interface, path+".source_interface", k.iface) {
		return
	}
	b, name, err := p.readSDP(src.SDPFile)
	if err != nil {
		p.errorf(at, "%s: %v", path, err)
		return
	}
	if src.Session, err = st2110.ParseSDP(b); err != nil {
		p.errorf(at, "%s: %s: %v", path, name, err)
		return
	}
	if msg := st2110Ports(src.Session); msg != "" {
		p.errorf(at, "%s: %s: %s", path, name, msg)
		return
	}
	if k.dupSkew != nil && len(src.Session.Essences[0].Legs) < 2 {
		p.errorf(k.dupSkew, "%s.dup_skew: %s has no a=group:DUP legs to merge", path, name)
		return
	}
	src.SDP = b
	r.ST2110Source = src
}

// st2110Ports checks that the flows can be received together: every essence on as many legs,
// and no two flows on one socket.
func st2110Ports(s *st2110.Session) string {
	legs := len(s.Essences[0].Legs)
	type sock struct {
		addr netip.Addr
		port int
	}
	used := map[sock]int{}
	for i, e := range s.Essences {
		if len(e.Legs) != legs {
			return fmt.Sprintf("essence %d (%s) has %d leg(s) and essence 1 %d: meshgw merges 2022-7 for all essences of a session or none", i+1, e.Kind, len(e.Legs), legs)
		}
		for _, l := range e.Legs {
			for sk, j := range used {
				if sk.port == l.Port && (sk.addr == l.Dest || sk.addr.IsUnspecified() || l.Dest.IsUnspecified()) {
					return fmt.Sprintf("essences %d and %d both arrive on %s port %d", j+1, i+1, l.Dest, l.Port)
				}
			}
			used[sock{l.Dest, l.Port}] = i
		}
	}
	return ""
}

// ST2110Output is an output's st2110: mapping: where the route's raw video goes as ST 2110-20.
type ST2110Output struct {
	// Video is video: HOST:PORT (unicast or a multicast group, IPv4); Leg2 is video_leg2: a
	// second destination for SMPTE 2022-7 (invalid for none).
	Video, Leg2 netip.AddrPort
	// TP is tp: the ST 2110-21 sender type, 2110TPNL (default), 2110TPN or 2110TPW.
	TP string
}

// st2110Output reads an output's st2110: mapping.
func (p *parser) st2110Output(path string, v *yaml.Node) *ST2110Output {
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	o := &ST2110Output{TP: st2110.TPNL}
	addr := func(dst *netip.AddrPort, key string, v *yaml.Node) {
		var s string
		if !p.str(&s, path+"."+key, v) {
			return
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() || ap.Addr().IsUnspecified() || ap.Port() == 0 {
			p.errorf(v, "%s.%s: %q is not IPv4 HOST:PORT (e.g. 239.10.0.1:5004)", path, key, s)
			return
		}
		*dst = ap
	}
	var video *yaml.Node
	p.fields(m, path, []field{
		{"video", func(_, v *yaml.Node) { video = v; addr(&o.Video, "video", v) }},
		{"video_leg2", func(_, v *yaml.Node) { addr(&o.Leg2, "video_leg2", v) }},
		{"tp", func(_, v *yaml.Node) { p.enum(&o.TP, path+".tp", v, st2110.TPNL, st2110.TPN, st2110.TPW) }},
		{"audio", func(_, v *yaml.Node) {
			p.errorf(v, "%s.audio: ST 2110-30 output is not implemented yet; only video", path)
		}},
		{"anc", func(_, v *yaml.Node) {
			p.errorf(v, "%s.anc: ST 2110-40 output is not implemented yet; only video", path)
		}},
	})
	if video == nil {
		p.errorf(v, "%s: video: HOST:PORT is required", path)
		return nil
	}
	if !o.Video.IsValid() {
		return nil
	}
	if o.Leg2 == o.Video {
		p.errorf(v, "%s: video_leg2 must differ from video", path)
		return nil
	}
	return o
}
