package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestClusterSections(t *testing.T) {
	c := mustParse(t, `control: {listen: "127.0.0.1:9443", node_timeout: 1500ms, startup_grace: 0s}
node: {name: ctl.site-1}
identity: {trust_domain: meshgw.example, cert: a.pem, key: a.key, bundle: b.pem}
routes:
  cam: {source: "rtsp://10.0.0.5/s", node: edge-a}
`)
	if c.Control != (Control{Listen: "127.0.0.1:9443", NodeTimeout: 1500 * time.Millisecond, StartupGrace: 0, RelayNACK: true, RelayNACKWait: 200 * time.Millisecond}) {
		t.Errorf("control: %+v", c.Control)
	}
	if c.Node.Name != "ctl.site-1" || c.Node.IsNodeOnly() {
		t.Errorf("node: %+v", c.Node)
	}
	if c.Identity != (Identity{TrustDomain: "meshgw.example", Cert: "a.pem", Key: "a.key", Bundle: "b.pem"}) {
		t.Errorf("identity: %+v", c.Identity)
	}
	if c.Routes[0].Node != "edge-a" {
		t.Errorf("route node: %q", c.Routes[0].Node)
	}

	d := mustParse(t, "routes: {demo: {source: demo}}\n")
	if d.Control != (Control{Listen: ":8443", NodeTimeout: 2 * time.Second, StartupGrace: 3 * time.Second, RelayNACK: true, RelayNACKWait: 200 * time.Millisecond}) || d.Node.Name != "local" {
		t.Errorf("defaults: %+v %+v", d.Control, d.Node)
	}

	n := mustParse(t, `node:
  name: edge-a
  control: "ctl.example:8443"
  data_address: 10.1.0.2
  client_networks: [10.1.0.0/16, "fd00::/64"]
rtsp: {rtp_port: 9000}
`)
	want := Node{Name: "edge-a", Control: "ctl.example:8443", DataAddress: netip.MustParseAddr("10.1.0.2"),
		ClientNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/64")}}
	if !reflect.DeepEqual(n.Node, want) || !n.Node.IsNodeOnly() || len(n.Routes) != 0 || n.RTSP.RTPPort != 9000 {
		t.Errorf("node file: %+v", n.Node)
	}
}

func TestRelayLiveLiveKeys(t *testing.T) {
	for in, want := range map[string]time.Duration{"off": 0, "false": 0, "A": 10 * time.Millisecond, "b": 50 * time.Millisecond,
		"C": 450 * time.Millisecond, "120ms": 120 * time.Millisecond, "on": 50 * time.Millisecond} {
		c := mustParse(t, "control: {relay_live_live: "+in+"}\nnode: {live_live_address: 10.98.0.1}\nroutes: {a: {source: demo}}\n")
		if c.Control.RelayLiveLive != want {
			t.Errorf("relay_live_live %s = %v, want %v", in, c.Control.RelayLiveLive, want)
		}
		if c.Node.LiveLiveAddress != netip.MustParseAddr("10.98.0.1") {
			t.Errorf("live_live_address = %v", c.Node.LiveLiveAddress)
		}
	}
}

func TestClusterErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"node: {control: \"c:1\"}\nroutes: {a: {source: demo}}\n", "t.yaml:2: routes: belong in the control's file"},
		{"node: {name: Edge}\n" + "routes: {a: {source: demo}}\n", "t.yaml:1: node.name: node name \"Edge\": character 'E'"},
		{"node: {control: \":8443\"}\n", "t.yaml:1: node.control: \":8443\" needs a host name or address to dial"},
		{"node: {control: \"c:1\", data_address: 0.0.0.0}\n", "t.yaml:1: node.data_address: 0.0.0.0 cannot be reached by readers"},
		{"node: {control: \"c:1\", data_address: nope}\n", `t.yaml:1: node.data_address: "nope" is not an IP address`},
		{"node: {control: \"c:1\", client_networks: [10.1.2.3/16]}\n", "t.yaml:1: node.client_networks: 10.1.2.3/16 has host bits set; did you mean 10.1.0.0/16?"},
		{"node: {control: \"c:1\", client_networks: 10.0.0.0/8}\n", "t.yaml:1: node.client_networks: expected a list of networks"},
		{"identity: {trust_domain: \"Bad Domain\"}\nroutes: {a: {source: demo}}\n", `t.yaml:1: identity.trust_domain: "Bad Domain" is not a SPIFFE trust domain`},
		{"identity: {cert: a.pem}\nroutes: {a: {source: demo}}\n", "t.yaml:1: identity: cert, key and bundle go together"},
		{"control: {listen: nope}\nroutes: {a: {source: demo}}\n", `t.yaml:1: control.listen: "nope" is not host:port`},
		{"control: {node_timeout: 0s}\nroutes: {a: {source: demo}}\n", "t.yaml:1: control.node_timeout:"},
		{"routes: {a: {source: demo, node: \"a..b\"}}\n", "t.yaml:1: routes.a.node: node name \"a..b\" has an empty label"},
		{"control: {listn: \":1\"}\nroutes: {a: {source: demo}}\n", "t.yaml:1: control: unknown key \"listn\""},
		{"control: {relay_live_live: D}\nroutes: {a: {source: demo}}\n", `t.yaml:1: control.relay_live_live: "D", want off, A (10ms), B (50ms), C (450ms) or a duration`},
		{"control: {relay_live_live: 11s}\nroutes: {a: {source: demo}}\n", `t.yaml:1: control.relay_live_live: "11s", want off, A`},
		{"node: {control: \"c:1\", live_live_address: 224.0.0.1}\n", "t.yaml:1: node.live_live_address: 224.0.0.1 cannot be reached"},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
