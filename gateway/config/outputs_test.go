package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOutputs(t *testing.T) {
	c := mustParse(t, `control: {relay_nack: off, relay_nack_wait: 50ms}
routes:
  tv:
    source: demo
    outputs:
      - url: rtp://127.0.0.1:5000
      - url: rtp://239.1.1.1:6000
        leg2: rtp://[ff15::1]:6000
        fec: {columns: 5, rows: 4}
        ttl: 16
        node: edge-a
      - {url: rtp://10.0.0.9:7000, fec: {columns: 10, rows: 5, mode: column}}
      - {url: rtp://10.0.0.9:8000, fec: {columns: 8, mode: row}}
`)
	if c.Control.RelayNACK || c.Control.RelayNACKWait != 50*time.Millisecond {
		t.Errorf("control: %+v", c.Control)
	}
	want := []Output{
		{URL: "rtp://127.0.0.1:5000", Dest: netip.MustParseAddrPort("127.0.0.1:5000"), Line: 6},
		{URL: "rtp://239.1.1.1:6000", Dest: netip.MustParseAddrPort("239.1.1.1:6000"), Leg2: netip.MustParseAddrPort("[ff15::1]:6000"),
			FEC: &OutputFEC{Columns: 5, Rows: 4, Mode: FECMode2D}, TTL: 16, Node: "edge-a", Line: 7},
		{URL: "rtp://10.0.0.9:7000", Dest: netip.MustParseAddrPort("10.0.0.9:7000"), FEC: &OutputFEC{Columns: 10, Rows: 5, Mode: FECModeColumn}, Line: 12},
		{URL: "rtp://10.0.0.9:8000", Dest: netip.MustParseAddrPort("10.0.0.9:8000"), FEC: &OutputFEC{Columns: 8, Mode: FECModeRow}, Line: 13},
	}
	if got := c.Routes[0].Outputs; !reflect.DeepEqual(got, want) {
		t.Errorf("outputs\n got %+v\nwant %+v", got, want)
	}
	if s := want[0].PortStride(); s != 2 {
		t.Errorf("stride without FEC %d", s)
	}
	if s := want[1].PortStride(); s != 6 {
		t.Errorf("stride with FEC %d", s)
	}
	if d := mustParse(t, "routes: {demo: {source: demo}}\n"); !d.Control.RelayNACK || d.Control.RelayNACKWait != 200*time.Millisecond {
		t.Errorf("relay NACK defaults: %+v", d.Control)
	}
}

func TestOutputErrors(t *testing.T) {
	const head = "routes:\n  tv:\n    source: demo\n    outputs:\n"
	for _, tc := range []struct {
		yaml, want string
	}{
		{"      - url: udp://1.2.3.4:5000\n", `t.yaml:5: routes.tv.outputs[0].url: "udp://1.2.3.4:5000" is not rtp://HOST:PORT`},
		{"      - url: rtp://cam.example:5000\n", `t.yaml:5: routes.tv.outputs[0].url: host "cam.example" is not an IP address`},
		{"      - url: rtp://1.2.3.4:5001\n", `t.yaml:5: routes.tv.outputs[0].url: port 5001 is odd`},
		{"      - url: rtp://1.2.3.4\n", `t.yaml:5: routes.tv.outputs[0].url: "rtp://1.2.3.4" needs a port 2-65534`},
		{"      - url: rtp://0.0.0.0:5000\n", `t.yaml:5: routes.tv.outputs[0].url: 0.0.0.0 cannot be sent to`},
		{"      - {leg2: rtp://1.2.3.4:5000}\n", `t.yaml:5: routes.tv.outputs[0]: url is required`},
		{"      - {url: rtp://1.2.3.4:5000, leg2: rtp://1.2.3.4:5000}\n", `t.yaml:5: routes.tv.outputs[0]: leg2 must differ from url`},
		{"      - {url: rtp://1.2.3.4:5000, ttl: 4}\n", `t.yaml:5: routes.tv.outputs[0].ttl: applies only to multicast destinations`},
		{"      - {url: rtp://1.2.3.4:5000, fec: {columns: 20, rows: 20}}\n", `t.yaml:5: routes.tv.outputs[0].fec: L×D=20×20=400 exceeds 100`},
		{"      - {url: rtp://1.2.3.4:5000, fec: {columns: 3, rows: 5}}\n", `t.yaml:5: routes.tv.outputs[0].fec: L=3 out of range 4..20 (2D)`},
		{"      - {url: rtp://1.2.3.4:5000, fec: {columns: 5}}\n", `t.yaml:5: routes.tv.outputs[0].fec: rows (D) is required for 2d FEC`},
		{"      - {url: rtp://1.2.3.4:5000, fec: {rows: 5}}\n", `t.yaml:5: routes.tv.outputs[0].fec: columns (L) is required`},
		{"      - {url: rtp://1.2.3.4:5000, fec: {columns: 5, rows: 5, mode: 3d}}\n", `t.yaml:5: routes.tv.outputs[0].fec.mode: "3d" is not one of 2d, column, row`},
		{"      - {url: rtp://1.2.3.4:65532, fec: {columns: 5, rows: 5}}\n", `t.yaml:5: routes.tv.outputs[0]: port 65532 leaves no room for the FEC ports`},
		{"      - {url: rtp://1.2.3.4:5000, node: \"no way\"}\n", `t.yaml:5: routes.tv.outputs[0].node:`},
		{"      - {url: rtp://1.2.3.4:5000, colour: red}\n", `t.yaml:5: routes.tv.outputs[0]: unknown key "colour"`},
		{"      - {url: rtp://1.2.3.4:5000}\n      - {url: rtp://1.2.3.4:5000}\n", `t.yaml:6: routes.tv.outputs[1]: 1.2.3.4:5000 is already a destination of the output at line 5`},
		{"      url: rtp://1.2.3.4:5000\n", `t.yaml:5: routes.tv.outputs: expected a list of outputs`},
	} {
		_, err := Parse("t.yaml", []byte(head+tc.yaml))
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) != 1 || !strings.HasPrefix(errs.List[0].Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tc.yaml, err, tc.want)
		}
	}
	_, err := Parse("t.yaml", []byte("routes:\n  \"~^a/(\\\\d+)$\":\n    source: demo\n    outputs: [{url: rtp://1.2.3.4:5000}]\n"))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4: routes.~^a/(\\d+)$: outputs need one stream") {
		t.Errorf("regex route with outputs: %v", err)
	}
	_, err = Parse("t.yaml", []byte("control: {relay_nack: maybe}\nroutes: {demo: {source: demo}}\n"))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:1: control.relay_nack: expected true or false") {
		t.Errorf("relay_nack: %v", err)
	}
}
