package config

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimalYAML is the example the README opens with; it must load as written.
const minimalYAML = `rtsp:
  listen: 127.0.0.1:8554
routes:
  cam:
    source: rtsp://10.0.0.5:554/stream1   # pull from an upstream camera or server
    on_demand: true                        # pull only while someone reads
  pub:
    source: publisher                      # accept ANNOUNCE/RECORD
  demo:
    source: demo
`

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse("t.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestMinimal(t *testing.T) {
	c := mustParse(t, minimalYAML)
	want := defaults()
	want.File = "t.yaml"
	want.RTSP.Listen = "127.0.0.1:8554"
	base := defaultRoute()
	cam, pub, demo := base, base, base
	cam.Name, cam.Source, cam.OnDemand, cam.Line = "cam", "rtsp://10.0.0.5:554/stream1", true, 4
	pub.Name, pub.Line = "pub", 7
	demo.Name, demo.Source, demo.Line = "demo", SourceDemo, 9
	want.Routes = []Route{cam, pub, demo}
	want.byName = map[string]int{"cam": 0, "pub": 1, "demo": 2}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	// Spot-check the defaults against the documented values, so a change to
	// defaults() that forgets the docs fails here.
	r := c.RTSP
	if r.RTPPort != 8000 || r.RTCPPort != 8001 || r.Multicast.Range != netip.MustParsePrefix("239.255.42.0/24") ||
		r.Multicast.Port != 50000 || r.Multicast.TTL != 1 || r.Multicast.Interface != "" ||
		r.ReadTimeout != 10*time.Second || r.WriteTimeout != 10*time.Second || r.SessionTimeout != time.Minute ||
		r.MaxRequestBytes != 65536 || r.UDPQueue != 4096 || r.TCPQueue != 4096 ||
		!reflect.DeepEqual(r.Protocols, []string{"udp", "multicast", "tcp"}) {
		t.Errorf("rtsp defaults: %+v", r)
	}
	if c.LogLevel != "info" || c.LogFormat != "text" {
		t.Errorf("log defaults: %q %q", c.LogLevel, c.LogFormat)
	}
	if cam.SourceTransport != "auto" || cam.OnDemandStartTimeout != 10*time.Second || cam.OnDemandCloseAfter != 10*time.Second ||
		cam.OverridePublisher || cam.MaxReaders != 0 || cam.ReconnectMin != time.Second || cam.ReconnectMax != 30*time.Second {
		t.Errorf("route defaults: %+v", cam)
	}
}

func TestMinimalFileMatchesREADME(t *testing.T) {
	data, err := os.ReadFile("../../configs/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != minimalYAML {
		t.Fatalf("configs/minimal.yaml drifted from the documented example:\n%s", data)
	}
}

func TestEveryKeySet(t *testing.T) {
	c := mustParse(t, `
log_level: debug
log_format: json
rtsp:
  listen: "[::1]:554"
  rtp_port: 0
  multicast: {range: "ff15::/64", port: 6000, ttl: 8, interface: eth1}
  read_timeout: 1s
  write_timeout: 2s
  session_timeout: 3m
  max_request_bytes: 4096
  udp_queue: 5
  tcp_queue: 6
  protocols: [tcp, udp]
  egress_workers: 3
  slow_reader_timeout: 4s
routes:
  cam:
    source: RTSPS://h.example:8322/a/b?x=1
    source_transport: tcp
    on_demand: yes
    on_demand_start_timeout: 7s
    on_demand_close_after: 0s
    max_readers: 9
    pacing: 2.5
    reconnect_min: 2s
    reconnect_max: 2s
  pub: {source: publisher, override_publisher: on}
`)
	r := c.RTSP
	if c.LogLevel != LogDebug || c.LogFormat != LogJSON || c.SlogLevel().String() != "DEBUG" || r.Listen != "[::1]:554" ||
		r.RTPPort != 0 || r.RTCPPort != 0 || r.Multicast != (Multicast{netip.MustParsePrefix("ff15::/64"), 6000, 8, "eth1"}) ||
		r.ReadTimeout != time.Second || r.WriteTimeout != 2*time.Second || r.SessionTimeout != 3*time.Minute ||
		r.MaxRequestBytes != 4096 || r.UDPQueue != 5 || r.TCPQueue != 6 ||
		r.EgressWorkers != 3 || r.SlowReaderTimeout != 4*time.Second || !reflect.DeepEqual(r.Protocols, []string{"tcp", "udp"}) {
		t.Errorf("rtsp: %+v", c)
	}
	if !r.Allows(ProtoTCP) || r.Allows(ProtoMulticast) {
		t.Errorf("Allows disagrees with %v", r.Protocols)
	}
	cam := c.Routes[0]
	if cam.SourceTransport != "tcp" || !cam.OnDemand || cam.OnDemandStartTimeout != 7*time.Second || cam.OnDemandCloseAfter != 0 ||
		cam.MaxReaders != 9 || cam.Pacing != 2.5 || cam.ReconnectMin != 2*time.Second || cam.ReconnectMax != 2*time.Second || !cam.IsPull() {
		t.Errorf("cam: %+v", cam)
	}
	if pub := c.Routes[1]; !pub.OverridePublisher || pub.IsPull() {
		t.Errorf("pub: %+v", pub)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.RTSP.Listen != ":8554" || len(c.Routes) != 1 || c.Routes[0].Name != "demo" || c.Routes[0].Source != SourceDemo {
		t.Fatalf("Default() = %+v", c)
	}
	if _, ok := c.Match("demo"); !ok {
		t.Error("default config does not serve demo")
	}
	y := DefaultYAML()
	y[0] = 'X'
	if bytes.Equal(y, DefaultYAML()) {
		t.Error("DefaultYAML returns the embedded slice itself")
	}
	if Default() == c {
		t.Error("Default returns a shared config")
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("routes:\n  x: {source: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	var one *Error
	if !errors.As(err, &one) || one.File != path || one.Line != 2 || one.Column != 15 {
		t.Fatalf("Load(bad) = %#v", err)
	}
}

// TestExampleConfigs parses every example shipped in configs/, so an example
// cannot rot when the schema changes.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no example configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	c := mustParse(t, `
routes:
  cam1: &cam
    source: rtsp://10.0.0.1/s
    on_demand: true
    reconnect_max: 5s
  cam2:
    <<: *cam
    source: rtsp://10.0.0.2/s
  cam3:
    <<: [{max_readers: 3}, *cam]
`)
	r2, r3 := c.Routes[1], c.Routes[2]
	if r2.Source != "rtsp://10.0.0.2/s" || !r2.OnDemand || r2.ReconnectMax != 5*time.Second {
		t.Errorf("cam2: %+v", r2)
	}
	if r3.Source != "rtsp://10.0.0.1/s" || r3.MaxReaders != 3 {
		t.Errorf("cam3: %+v", r3)
	}
}

func TestErrorsFormat(t *testing.T) {
	_, err := Parse("f.yaml", nil)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 1 || errs.List[0].Line != 0 {
		t.Fatalf("empty file: %#v", err)
	}
	if got := err.Error(); got != "f.yaml: file is empty; it needs at least a routes: section" {
		t.Errorf("got %q", got)
	}
	_, err = Parse("f.yaml", []byte("log_level: x\nlog_format: y\n"))
	want := strings.Join([]string{
		`f.yaml: no routes: section; add one, e.g. routes: {demo: {source: demo}}`,
		`f.yaml:1: log_level: "x" is not one of debug, info, warn, error`,
		`f.yaml:2: log_format: "y" is not one of text, json`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}
