package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/gateway/identity"
)

// Control is the control: section, read by `meshgw control`: where nodes
// attach and how quickly the control gives up on them.
type Control struct {
	// Listen is control.listen, the TCP host:port of the gRPC (mTLS)
	// endpoint nodes dial. Default ":8443".
	Listen string
	// NodeTimeout is control.node_timeout: a node silent this long is
	// dead and its readers move to another node. Default 2s.
	NodeTimeout time.Duration
	// StartupGrace is control.startup_grace: after a (re)start the control
	// waits this long for nodes to re-attach and re-report their flows
	// before it starts always-on sources itself, so a control restart never
	// duplicates a stream that a node still carries. Default 3s.
	StartupGrace time.Duration
	// RelayNACK is control.relay_nack: relay links between nodes repair loss
	// with RTCP NACK and retransmission (the far node holds packets behind a
	// gap for up to RelayNACKWait). Default true.
	RelayNACK bool
	// RelayNACKWait is control.relay_nack_wait, the most a relayed packet is
	// held waiting for a missing one. Default 200ms.
	RelayNACKWait time.Duration
	// RelayLiveLive is control.relay_live_live: off (0, the default), or the
	// SMPTE 2022-7 skew a relay's two legs are merged within (A 10ms, B
	// 50ms, C 450ms, or a duration; on means B). When on, a relay between two nodes
	// that both have a node.live_live_address runs over both networks.
	RelayLiveLive time.Duration
}

// Node is the node: section: this process's node. In a control's file it
// names the embedded local node; a file that sets node.control configures a
// standalone node (`meshgw node`).
type Node struct {
	// Name is node.name, the node's name in routes.*.node and in its SPIFFE
	// ID (spiffe://<td>/meshgw/node/<name>). Default "local".
	Name string
	// Control is node.control, the control's gRPC host:port a node dials.
	// Set only in a node's file.
	Control string
	// DataAddress is node.data_address, the address readers and other
	// nodes reach this node's RTP ports at; it is what SETUP answers carry
	// in source=. Unset means the address the reader reached the control
	// at (all-in-one) or the node's address as the control sees it.
	DataAddress netip.Addr
	// ClientNetworks is node.client_networks: UDP readers whose address is
	// inside one of these are served by this node.
	ClientNetworks []netip.Prefix
	// LiveLiveAddress is node.live_live_address, the node's address on a
	// second, independent network. The node opens a second RTP/RTCP pair
	// there (same port numbers as its first) and relays to and from other
	// such nodes run over both networks when control.relay_live_live is on.
	LiveLiveAddress netip.Addr
	// Memif is node.memif: the node's memif master (memif.go); nil for none.
	Memif *Memif
}

// IsNodeOnly reports whether the file configures a standalone node.
func (n Node) IsNodeOnly() bool { return n.Control != "" }

// Identity is the identity: section, the SPIFFE identity control and nodes
// authenticate each other with. With SPIFFE_ENDPOINT_SOCKET set the Workload
// API supplies it and the file keys are ignored.
type Identity struct {
	// TrustDomain is identity.trust_domain, e.g. "meshgw.example".
	TrustDomain string
	// Cert, Key and Bundle are identity.cert, .key and .bundle: static PEM
	// files (X509-SVID chain, its PKCS#8 key, the trust bundle), as minted
	// by `meshgw certs`.
	Cert, Key, Bundle string
}

func (p *parser) control(c *Control, v *yaml.Node) {
	const path = "control"
	m := p.section(path, v)
	if m == nil {
		return
	}
	p.fields(m, path, []field{
		{"listen", func(_, v *yaml.Node) { p.listen(&c.Listen, "control.listen", v, `":8443"`, false) }},
		{"node_timeout", func(_, v *yaml.Node) { p.duration(&c.NodeTimeout, "control.node_timeout", v, false) }},
		{"startup_grace", func(_, v *yaml.Node) { p.duration(&c.StartupGrace, "control.startup_grace", v, true) }},
		{"relay_nack", func(_, v *yaml.Node) { p.boolean(&c.RelayNACK, "control.relay_nack", v) }},
		{"relay_nack_wait", func(_, v *yaml.Node) { p.duration(&c.RelayNACKWait, "control.relay_nack_wait", v, false) }},
		{"relay_live_live", func(_, v *yaml.Node) {
			s := p.scalar("control.relay_live_live", v, "off or a skew class", "!!bool", "!!str")
			if s == nil {
				return
			}
			switch strings.ToLower(s.Value) {
			case "off", "false", "no":
				c.RelayLiveLive = 0
			case "on", "true", "yes":
				c.RelayLiveLive = 50 * time.Millisecond // class B, the usual receiver
			default:
				p.skew(&c.RelayLiveLive, "control.relay_live_live", s.Value, v, `off, `)
			}
		}},
	})
}

func (p *parser) node(n *Node, v *yaml.Node) {
	const path = "node"
	m := p.section(path, v)
	if m == nil {
		return
	}
	p.fields(m, path, []field{
		{"name", func(_, v *yaml.Node) { p.nodeName(&n.Name, "node.name", v) }},
		{"control", func(_, v *yaml.Node) {
			var s string
			if p.strWant(&s, "node.control", v, `host:port like "control.example:8443"`) {
				if msg := checkDial(s); msg != "" {
					p.errorf(v, "node.control: %s", msg)
				} else {
					n.Control = s
				}
			}
		}},
		{"data_address", func(_, v *yaml.Node) { p.nodeAddr(&n.DataAddress, "node.data_address", v) }},
		{"live_live_address", func(_, v *yaml.Node) { p.nodeAddr(&n.LiveLiveAddress, "node.live_live_address", v) }},
		{"client_networks", func(_, v *yaml.Node) { n.ClientNetworks = p.prefixes("node.client_networks", v) }},
		{"memif", func(_, v *yaml.Node) { n.Memif = p.memif(v) }},
	})
}

// nodeAddr reads one of the node's own unicast addresses.
func (p *parser) nodeAddr(dst *netip.Addr, path string, v *yaml.Node) {
	var s string
	if !p.strWant(&s, path, v, "an IP address") {
		return
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		p.errorf(v, "%s: %q is not an IP address", path, s)
	case a.IsUnspecified() || a.IsMulticast():
		p.errorf(v, "%s: %s cannot be reached by readers or other nodes; give the node's own address", path, a)
	default:
		*dst = a.Unmap()
	}
}

// prefixes reads a list of CIDR prefixes.
func (p *parser) prefixes(path string, v *yaml.Node) []netip.Prefix {
	s := resolve(v)
	if isNull(s) {
		return nil
	}
	if s.Kind != yaml.SequenceNode {
		p.errorf(v, "%s: expected a list of networks like [10.1.0.0/16], got %s", path, describe(s))
		return nil
	}
	var out []netip.Prefix
	for _, item := range s.Content {
		var str string
		if !p.strWant(&str, path, item, "a network like 10.1.0.0/16") {
			continue
		}
		pfx, err := netip.ParsePrefix(str)
		if err != nil {
			p.errorf(item, "%s: %q is not a network like 10.1.0.0/16", path, str)
			continue
		}
		if pfx.Masked() != pfx {
			p.errorf(item, "%s: %s has host bits set; did you mean %s?", path, pfx, pfx.Masked())
			continue
		}
		out = append(out, pfx)
	}
	return out
}

func (p *parser) identity(id *Identity, v *yaml.Node) {
	const path = "identity"
	m := p.section(path, v)
	if m == nil {
		return
	}
	p.fields(m, path, []field{
		{"trust_domain", func(_, v *yaml.Node) {
			var s string
			if p.strWant(&s, "identity.trust_domain", v, `a trust domain like "meshgw.example"`) {
				if _, err := spiffeid.TrustDomainFromString(s); err != nil {
					p.errorf(v, "identity.trust_domain: %q is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')", s)
				} else {
					id.TrustDomain = s
				}
			}
		}},
		{"cert", func(_, v *yaml.Node) { p.str(&id.Cert, "identity.cert", v) }},
		{"key", func(_, v *yaml.Node) { p.str(&id.Key, "identity.key", v) }},
		{"bundle", func(_, v *yaml.Node) { p.str(&id.Bundle, "identity.bundle", v) }},
	})
	set := 0
	for _, f := range []string{id.Cert, id.Key, id.Bundle} {
		if f != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		p.errorf(v, "identity: cert, key and bundle go together; set all three (or none, with SPIFFE_ENDPOINT_SOCKET)")
	}
}

// nodeName reads a node name (a DNS subdomain, as Kubernetes names nodes) into dst.
func (p *parser) nodeName(dst *string, key string, v *yaml.Node) {
	var s string
	if p.str(&s, key, v) {
		if err := identity.ValidateNodeName(s); err != nil {
			p.errorf(v, "%s: %s", key, strings.TrimPrefix(err.Error(), "identity: "))
		} else {
			*dst = s
		}
	}
}

// listen reads a listen address (host:port like example) into dst; offOK lets "" through, which
// switches the listener off.
func (p *parser) listen(dst *string, key string, v *yaml.Node, example string, offOK bool) {
	var s string
	if !p.strWant(&s, key, v, "host:port like "+example) {
		return
	}
	if s == "" && offOK {
		*dst = ""
	} else if msg := checkListen(s); msg != "" {
		p.errorf(v, "%s: %s", key, msg)
	} else {
		*dst = s
	}
}
