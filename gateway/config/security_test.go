package config

import (
	"strings"
	"testing"
)

func TestSecurityKeys(t *testing.T) {
	c := mustParse(t, `
rtsp:
  listen: ""
rtsps:
  listen: 127.0.0.1:9322
  cert: /etc/meshgw/tls.crt
  key: /etc/meshgw/tls.key
routes:
  cam:
    source: rtsps://10.0.0.5:322/live
    source_tls_ca: /etc/meshgw/camera-ca.pem
    srtp: required
  pub: {srtp: optional}
  plain: {source: demo}
  legacy: {source: demo, srtp: false}
`)
	if c.RTSP.Listen != "" || !c.RTSPS.Enabled() || c.RTSPS != (RTSPS{Listen: "127.0.0.1:9322", Cert: "/etc/meshgw/tls.crt", Key: "/etc/meshgw/tls.key"}) {
		t.Errorf("rtsp %+v rtsps %+v", c.RTSP, c.RTSPS)
	}
	want := map[string]string{"cam": SRTPRequired, "pub": SRTPOptional, "plain": SRTPOff, "legacy": SRTPOff}
	for _, r := range c.Routes {
		if r.SRTP != want[r.Name] {
			t.Errorf("route %s: srtp %q, want %q", r.Name, r.SRTP, want[r.Name])
		}
	}
	if c.Routes[0].SourceTLSCA != "/etc/meshgw/camera-ca.pem" {
		t.Errorf("source_tls_ca %q", c.Routes[0].SourceTLSCA)
	}
	// defaults: no rtsps, plain RTSP on :8554
	d := mustParse(t, "rtsps:\n  cert: a\n  key: b\nroutes:\n  x:\n")
	if d.RTSPS.Listen != ":8322" || d.RTSP.Listen != ":8554" {
		t.Errorf("defaults: rtsps %+v rtsp %q", d.RTSPS, d.RTSP.Listen)
	}
	if m := mustParse(t, "routes:\n  x:\n"); m.RTSPS.Enabled() {
		t.Errorf("rtsps enabled without the section: %+v", m.RTSPS)
	}
}

func TestSecurityErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"rtsps:\n  listen: :8322\nroutes:\n  x:\n":                      "t.yaml:2: rtsps: cert and key are required",
		"rtsps:\n  listen: 8322\n  cert: a\n  key: b\nroutes:\n  x:\n":  "t.yaml:2: rtsps.listen: expected host:port",
		"rtsps:\n  listen: nope\n  cert: a\n  key: b\nroutes:\n  x:\n":  `t.yaml:2: rtsps.listen: "nope" is not host:port`,
		"rtsp:\n  listen: \"\"\nroutes:\n  x:\n":                        "t.yaml: rtsp.listen is empty and there is no rtsps: section",
		"routes:\n  x:\n    srtp: always\n":                             `t.yaml:3: routes.x.srtp: "always" is not one of off, optional, required`,
		"routes:\n  x:\n    source: rtsp://h/a\n    source_tls_ca: c\n": "t.yaml:4: routes.x: source_tls_ca applies only to rtsps:// sources",
		"rtsps:\n  cert: a\n  key: b\n  port: 1\nroutes:\n  x:\n":       `t.yaml:4: rtsps: unknown key "port"`,
	} {
		_, err := Parse("t.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", yaml, err, want)
		}
	}
}
