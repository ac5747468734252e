package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemif(t *testing.T) {
	c := mustParse(t, `node:
  name: n1
  memif:
    socket: /run/meshgw/memif.sock
    mode: "0600"
    interfaces:
      - {id: 1, secret: s3cret, route: tv}
      - {id: 2, route: /tv, form: packets}
      - {id: 3}
routes:
  tv: {source: demo}
`)
	mc := c.Node.Memif
	if mc == nil || mc.Socket != "/run/meshgw/memif.sock" || mc.Mode != 0o600 || len(mc.Interfaces) != 3 {
		t.Fatalf("memif %+v", mc)
	}
	if it := mc.Interfaces[0]; it.ID != 1 || it.Secret != "s3cret" || it.Route != "tv" || it.Form != MemifPackets || it.Line != 7 {
		t.Errorf("interface %+v", it)
	}
	outs := c.Routes[0].Outputs
	if len(outs) != 2 || outs[0].Memif == nil || outs[0].Memif.ID != 1 || outs[0].Node != "n1" || outs[0].URL != "memif://1" || outs[1].Memif.ID != 2 {
		t.Errorf("outputs %+v", outs)
	}
	if _, ok := c.Node.MemifInterfaceByID(3); !ok {
		t.Error("interface 3 not found")
	}
	d := mustParse(t, "node: {memif: {socket: \"@meshgw\", interfaces: [{id: 0, route: tv}]}}\nroutes: {tv: {source: demo}}\n")
	if d.Node.Memif.Mode != 0o660 || d.Node.Memif.Socket != "@meshgw" {
		t.Errorf("defaults %+v", d.Node.Memif)
	}
}

func TestMemifErrors(t *testing.T) {
	const tail = "routes: {tv: {source: demo}}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"node: {memif: {interfaces: [{id: 1}]}}\n", "t.yaml:1: node.memif: socket is required"},
		{"node: {memif: {socket: /s}}\n", "t.yaml:1: node.memif: interfaces is empty"},
		{"node: {memif: {socket: /s, mode: \"999\", interfaces: [{id: 1}]}}\n", `t.yaml:1: node.memif.mode: "999" is not an octal file mode`},
		{"node: {memif: {socket: /s, interfaces: [{id: -1}]}}\n", "t.yaml:1: node.memif.interfaces[0].id:"},
		{"node: {memif: {socket: /s, interfaces: [{route: tv}]}}\n", "t.yaml:1: node.memif.interfaces[0]: id is required"},
		{"node: {memif: {socket: /s, interfaces: [{id: 1}, {id: 1}]}}\n", "t.yaml:1: node.memif.interfaces[1]: id 1 is already used"},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, secret: \"0123456789012345678901234\"}]}}\n", "t.yaml:1: node.memif.interfaces[0].secret: 25 bytes"},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, route: nope}]}}\n", `t.yaml:1: node.memif.interfaces: id 1: route "nope" is not a plain route`},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, form: frames}]}}\nroutes: {in: {source: \"memif://1\"}, tv: {source: demo}}\n#", `t.yaml:2: routes.in: memif://1: interface 1 has form: frames; give the raw video's ST 2110 description in sdp:`},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, form: pixels}]}}\n", `t.yaml:1: node.memif.interfaces[0].form: "pixels" is not one of packets, frames`},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, route: tv, form: frames}]}}\n", `t.yaml:1: node.memif.interfaces: id 1: form: frames needs a route whose source is st2110://`},
		{"node: {memif: {socket: /s, interfaces: [{id: 1, colour: red}]}}\n", `t.yaml:1: node.memif.interfaces[0]: unknown key "colour"`},
		{"node: {memif: {socket: \"/" + strings.Repeat("x", 120) + "\", interfaces: [{id: 1}]}}\n", "t.yaml:1: node.memif.socket: 121 bytes"},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml+tail))
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) != 1 || !strings.HasPrefix(errs.List[0].Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tc.yaml, err, tc.want)
		}
	}
}

func TestMemifSource(t *testing.T) {
	dir := t.TempDir()
	sdpFile := filepath.Join(dir, "s.sdp")
	if err := os.WriteFile(sdpFile, []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 L16/48000/2\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, `node:
  name: n1
  memif: {socket: "@m", interfaces: [{id: 9}]}
routes:
  fed: {source: memif://9, sdp: `+sdpFile+`}
`)
	r := c.Routes[0]
	if r.MemifSource == nil || r.MemifSource.ID != 9 || len(r.MemifSource.SDP) == 0 || r.Node != "n1" || r.IsPull() || !r.IsMemif() {
		t.Fatalf("route %+v", r)
	}
	const head = "node: {name: n1, memif: {socket: /s, interfaces: [{id: 9}, {id: 3, route: tv}]}}\nroutes:\n  tv: {source: demo}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"  fed: {source: memif://x}\n", `t.yaml:4: routes.fed: "memif://x" is not memif://ID`},
		{"  fed: {source: memif://7}\n", "t.yaml:4: routes.fed: memif://7: node.memif has no interface 7"},
		{"  fed: {source: memif://3}\n", `t.yaml:4: routes.fed: memif://3: interface 3 is a consumer of route "tv"`},
		{"  fed: {source: memif://9, node: other}\n", `t.yaml:4: routes.fed: a memif:// source is ingested by the node with the interface (n1)`},
		{"  fed: {source: memif://9, backup: demo}\n", "t.yaml:4: routes.fed: backup: is not supported with a memif:// source"},
		{"  fed: {source: memif://9, fec: {columns: 5, rows: 5}}\n", "t.yaml:4: routes.fed.fec: applies only to rtp:// sources"},
		{"  fed: {source: memif://9, sdp: /nonexistent.sdp}\n", "t.yaml:4: routes.fed.sdp: stat /nonexistent.sdp"},
	} {
		_, err := Parse("t.yaml", []byte(head+tc.yaml))
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) != 1 || !strings.HasPrefix(errs.List[0].Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tc.yaml, err, tc.want)
		}
	}
}
