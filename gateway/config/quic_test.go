package config

import (
	"strings"
	"testing"
)

func TestQUICKeys(t *testing.T) {
	c := mustParse(t, "quic:\n  cert: c.pem\n  key: k.pem\nroutes:\n  d:\n    source: demo\n")
	if !c.QUIC.Enabled() || c.QUIC.Listen != ":4443" || c.QUIC.Cert != "c.pem" || c.QUIC.Key != "k.pem" || c.QUIC.Queue != 512 {
		t.Errorf("quic defaults: %+v", c.QUIC)
	}
	c = mustParse(t, "quic:\n  listen: 127.0.0.1:5443\n  cert: c.pem\n  key: k.pem\n  queue: 64\nroutes:\n  d:\n    source: demo\n")
	if c.QUIC.Listen != "127.0.0.1:5443" || c.QUIC.Queue != 64 {
		t.Errorf("quic: %+v", c.QUIC)
	}
	if c := mustParse(t, "routes:\n  d:\n    source: demo\n"); c.QUIC.Enabled() {
		t.Errorf("quic on without the section: %+v", c.QUIC)
	}
}

func TestQUICErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"quic:\n  listen: :4443\nroutes:\n  d:\n    source: demo\n", "t.yaml:2: quic: cert and key are required"},
		{"quic:\n  cert: c\n  key: k\n  queue: 2\nroutes:\n  d:\n    source: demo\n", "t.yaml:4: quic.queue"},
		{"quic:\n  cert: c\n  key: k\n  bogus: 1\nroutes:\n  d:\n    source: demo\n", "t.yaml:4:"},
		{"node:\n  control: c:8443\nquic:\n  cert: c\n  key: k\n", "t.yaml:3: quic: belongs in the control's file"},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestRoQSource(t *testing.T) {
	c := mustParse(t, "routes:\n  far:\n    source: roq://10.0.0.9:4443/demo\n    source_tls_ca: ca.pem\n")
	r, _ := c.Match("far")
	if !r.IsRoQ() || !r.IsPull() || r.SourceTLSCA != "ca.pem" {
		t.Errorf("roq source: %+v", r)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"routes:\n  far:\n    source: roq://10.0.0.9:4443/demo\n    source_transport: tcp\n", "t.yaml:4: routes.far: source_transport does not apply to roq:// sources"},
		{"routes:\n  far:\n    source: roq:///demo\n", "has no host"},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
