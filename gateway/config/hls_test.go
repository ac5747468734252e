package config

import (
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtsp/hls"
)

func TestHLS(t *testing.T) {
	if c := mustParse(t, minimalYAML); c.HLS.Enabled() {
		t.Fatalf("hls is on without an hls: section: %+v", c.HLS)
	}
	c := mustParse(t, minimalYAML+"hls:\n")
	want := HLS{Listen: ":8888", Muxing: hls.Muxing{Variant: HLSLowLatency, SegmentCount: 7, SegmentDuration: time.Second,
		PartDuration: 200 * time.Millisecond, IdleStop: time.Minute, AllowOrigin: "*"}}
	if c.HLS != want {
		t.Fatalf("bare hls: got %+v, want the defaults %+v", c.HLS, want)
	}
	c = mustParse(t, minimalYAML+`hls:
  listen: 127.0.0.1:9888
  variant: mpegts
  segment_count: 3
  segment_duration: 2s
  idle_stop: 5s
  allow_origin: ""
  cert: c.pem
  key: k.pem
`)
	want = HLS{Listen: "127.0.0.1:9888", Muxing: hls.Muxing{Variant: HLSMPEGTS, SegmentCount: 3, SegmentDuration: 2 * time.Second,
		PartDuration: 200 * time.Millisecond, IdleStop: 5 * time.Second}, Cert: "c.pem", Key: "k.pem"}
	if c.HLS != want || !c.HLS.TLS() {
		t.Fatalf("got %+v, want %+v", c.HLS, want)
	}
}

func TestHLSErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"hls:\n  variant: dash\n", `t.yaml:12: hls.variant: "dash" is not one of lowLatency, fmp4, mpegts`},
		{"hls:\n  segment_count: 5\n", "t.yaml:12: hls.segment_count: Low-Latency HLS needs at least 7 segments"},
		{"hls:\n  variant: fmp4\n  segment_count: 2\n", "t.yaml:13: hls.segment_count: 2 is out of range (3-100)"},
		{"hls:\n  segment_duration: 100ms\n", "t.yaml:12: hls.part_duration: 200ms must be shorter than hls.segment_duration (100ms)"},
		{"hls:\n  cert: c.pem\n", "t.yaml:12: hls: cert and key go together"},
		{"hls:\n  listen: 8888\n", "t.yaml:12: hls.listen: expected host:port"},
		{"hls:\n  idle_stop: 0s\n", "t.yaml:12: hls.idle_stop: must be greater than 0"},
		{"hls: [1]\n", "t.yaml:11: hls: expected a mapping"},
	} {
		_, err := Parse("t.yaml", []byte(minimalYAML+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	_, err := Parse("t.yaml", []byte("node:\n  control: c:8443\nhls:\n"))
	if err == nil || !strings.Contains(err.Error(), "hls: belongs in the control's file") {
		t.Errorf("node-only file with hls: got %v", err)
	}
}

func TestRecord(t *testing.T) {
	c := mustParse(t, minimalYAML+"  rec:\n    source: demo\n    record: {path: /var/rec, segment: 10m}\n")
	r, _ := c.Match("rec")
	if r.Record == nil || *r.Record != (Record{Path: "/var/rec", Segment: 10 * time.Minute, Part: time.Second}) {
		t.Fatalf("record: %+v", r.Record)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"  rec:\n    record: {segment: 1h}\n", "t.yaml:12: routes.rec.record.path: required"},
		{"  rec:\n    record: {path: /x, segment: 1s, part: 2s}\n", "t.yaml:12: routes.rec.record: segment (1s) must not be shorter than part (2s)"},
		{"  ~^r(.*)$:\n    record: {path: /x}\n", "t.yaml:12: routes.~^r(.*)$.record: recording needs one stream"},
		{"  rec:\n    record: {path: /x, retention: 1d}\n", "t.yaml:12: routes.rec.record: unknown key \"retention\""},
	} {
		_, err := Parse("t.yaml", []byte(minimalYAML+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
