package config

import (
	"strings"
	"testing"
)

// TestParseErrors pins the exact text of every class of mistake, because
// these messages are the user interface of `meshgw check`.
func TestParseErrors(t *testing.T) {
	const ok = "routes:\n  demo: {source: demo}\n"
	tests := []struct {
		name, yaml string
		want       []string // full "file:line: message" lines, in order
	}{
		{"empty file", "", []string{
			`t.yaml: file is empty; it needs at least a routes: section`}},
		{"only comments", "# nothing here\n\n", []string{
			`t.yaml: file is empty; it needs at least a routes: section`}},
		{"null document", "~\n", []string{
			`t.yaml: file is empty; it needs at least a routes: section`}},
		{"top level is a list", "- a\n- b\n", []string{
			`t.yaml:1: expected a mapping of settings (log_level:, rtsp:, routes:), got a list`}},
		{"syntax error", "routes:\n  demo: [\n", []string{
			`t.yaml:2: YAML syntax error: did not find expected node content`}},
		// yaml.v3 reports some syntax errors at the start of the enclosing
		// block (here the mapping under routes:), not at the offending line.
		{"bad indentation", "routes:\n  a: {source: demo}\n b: 1\n", []string{
			`t.yaml:2: YAML syntax error: did not find expected key`}},
		{"control character", "\x01", []string{
			`t.yaml: YAML syntax error: control characters are not allowed`}},
		{"two documents", ok + "---\n" + ok, []string{
			`t.yaml:3: a config file holds one YAML document; remove the "---" that starts a second one`}},
		{"missing routes", "log_level: info\n", []string{
			`t.yaml: no routes: section; add one, e.g. routes: {demo: {source: demo}}`}},
		{"empty routes map", "routes: {}\n", []string{
			`t.yaml:1: routes: is empty; add at least one route, e.g. demo: {source: demo}`}},
		{"null routes", "routes:\n", []string{
			`t.yaml:1: routes: is empty; add at least one route, e.g. demo: {source: demo}`}},
		{"routes only an empty merge", "routes: {<<: {}}\n", []string{
			`t.yaml:1: routes: is empty; add at least one route, e.g. demo: {source: demo}`}},
		{"routes as list", "routes:\n  - demo\n", []string{
			`t.yaml:2: routes: expected a mapping of route name to settings, got a list`}},
		{"unknown top-level key", "lg_level: info\n" + ok, []string{
			`t.yaml:1: unknown key "lg_level"; did you mean "log_level"?`}},
		{"unknown key far from any", "colour: red\n" + ok, []string{
			`t.yaml:1: unknown key "colour"`}},
		{"mediamtx key", "rtspAddress: :8554\n" + ok, []string{
			`t.yaml:1: unknown key "rtspAddress"; meshgw calls this "listen" under rtsp:`}},
		{"camelCase key", "logLevel: info\n" + ok, []string{
			`t.yaml:1: unknown key "logLevel"; did you mean "log_level"?`}},
		{"unknown nested keys each on their own line", "rtsp:\n  listen: :1\n  lisen: :2\n  multicast:\n    tll: 3\n" + ok, []string{
			`t.yaml:3: rtsp: unknown key "lisen"; did you mean "listen"?`,
			`t.yaml:5: rtsp.multicast: unknown key "tll"; did you mean "ttl"?`}},
		{"unknown route key", "routes:\n  cam:\n    sorce: demo\n", []string{
			`t.yaml:3: routes.cam: unknown key "sorce"; did you mean "source"?`}},
		{"mediamtx route key", "routes:\n  cam:\n    source: rtsp://h/\n    sourceOnDemand: yes\n", []string{
			`t.yaml:4: routes.cam: unknown key "sourceOnDemand"; meshgw calls this "on_demand"`}},
		{"duplicate top-level key", "log_level: info\nlog_level: debug\n" + ok, []string{
			`t.yaml:2: duplicate key "log_level" (first defined at line 1)`}},
		{"duplicate route", "routes:\n  a: {source: demo}\n  a: {source: demo}\n", []string{
			`t.yaml:3: routes: duplicate key "a" (first defined at line 2)`}},
		{"duplicate nested key", "rtsp:\n  listen: :1\n  listen: :2\n" + ok, []string{
			`t.yaml:3: rtsp: duplicate key "listen" (first defined at line 2)`}},
		{"non-string key", "[a]: 1\n" + ok, []string{
			`t.yaml:1: keys must be plain strings, got a list`}},
		{"bad log level", "log_level: verbose\n" + ok, []string{
			`t.yaml:1: log_level: "verbose" is not one of debug, info, warn, error`}},
		{"bad log format", "log_format: xml\n" + ok, []string{
			`t.yaml:1: log_format: "xml" is not one of text, json`}},
		{"log level wrong type", "log_level: [debug]\n" + ok, []string{
			`t.yaml:1: log_level: expected a string, got a list`}},
		{"rtsp wrong type", "rtsp: 8554\n" + ok, []string{
			`t.yaml:1: rtsp: expected a mapping, got integer 8554`}},
		{"listen as number", "rtsp:\n  listen: 8554\n" + ok, []string{
			`t.yaml:2: rtsp.listen: expected host:port like ":8554", got integer 8554`}},
		{"listen without port", "rtsp:\n  listen: localhost\n" + ok, []string{
			`t.yaml:2: rtsp.listen: "localhost" is not host:port (write ":8554" for all interfaces)`}},
		{"listen bad port", "rtsp:\n  listen: :http\n" + ok, []string{
			`t.yaml:2: rtsp.listen: ":http" has invalid port "http" (want 0-65535)`}},
		{"odd rtp port", "rtsp:\n  rtp_port: 8001\n" + ok, []string{
			`t.yaml:2: rtsp.rtp_port: 8001 is odd; RTP needs an even port (RTCP takes the next odd one)`}},
		{"rtp port out of range", "rtsp:\n  rtp_port: 65536\n" + ok, []string{
			`t.yaml:2: rtsp.rtp_port: 65536 is out of range (0-65534)`}},
		{"rtp port huge", "rtsp:\n  rtp_port: 99999999999999999999\n" + ok, []string{
			`t.yaml:2: rtsp.rtp_port: expected an integer, got number 99999999999999999999`}},
		{"rtp port not a number", "rtsp:\n  rtp_port: abc\n" + ok, []string{
			`t.yaml:2: rtsp.rtp_port: expected an integer, got string "abc"`}},
		{"rtp port float", "rtsp:\n  rtp_port: 8000.5\n" + ok, []string{
			`t.yaml:2: rtsp.rtp_port: expected an integer, got number 8000.5`}},
		{"rtcp port mismatch", "rtsp:\n  rtp_port: 9000\n  rtcp_port: 8001\n" + ok, []string{
			`t.yaml:3: rtsp.rtcp_port: must be rtp_port+1 (9001), got 8001`}},
		{"rtcp port with default rtp", "rtsp:\n  rtcp_port: 7001\n" + ok, []string{
			`t.yaml:2: rtsp.rtcp_port: must be rtp_port+1 (8001), got 7001`}},
		{"rtcp port with picked rtp", "rtsp:\n  rtp_port: 0\n  rtcp_port: 1\n" + ok, []string{
			`t.yaml:3: rtsp.rtcp_port: must be left out (or 0) when rtp_port is 0, because the pair is picked together`}},
		{"bad duration", "rtsp:\n  read_timeout: 10x\n" + ok, []string{
			`t.yaml:2: rtsp.read_timeout: "10x" is not a duration; write it like "10s", "1m30s" or "500ms"`}},
		{"duration without unit", "rtsp:\n  write_timeout: 10\n" + ok, []string{
			`t.yaml:2: rtsp.write_timeout: expected a duration with a unit like "10s", got integer 10`}},
		{"zero duration", "rtsp:\n  session_timeout: 0s\n" + ok, []string{
			`t.yaml:2: rtsp.session_timeout: must be greater than 0, got 0s`}},
		{"negative duration", "routes:\n  c: {source: rtsp://h/, on_demand: true, on_demand_close_after: -1s}\n", []string{
			`t.yaml:2: routes.c.on_demand_close_after: must not be negative, got -1s`}},
		{"max request bytes too small", "rtsp:\n  max_request_bytes: 10\n" + ok, []string{
			`t.yaml:2: rtsp.max_request_bytes: 10 is out of range (1024-16777216)`}},
		{"queues", "rtsp:\n  udp_queue: 0\n  tcp_queue: -1\n" + ok, []string{
			`t.yaml:2: rtsp.udp_queue: 0 is out of range (1-1048576)`,
			`t.yaml:3: rtsp.tcp_queue: -1 is out of range (1-1048576)`}},
		{"egress and pacing", "rtsp:\n  egress_workers: 65\n  slow_reader_timeout: 0s\nroutes:\n  a: {source: demo, pacing: 0.5}\n  b: {source: demo, pacing: fast}\n", []string{
			`t.yaml:2: rtsp.egress_workers: 65 is out of range (0-64)`,
			`t.yaml:3: rtsp.slow_reader_timeout: must be greater than 0, got 0s`,
			`t.yaml:5: routes.a.pacing: 0.5 is out of range (0 for off, or 1-20)`,
			`t.yaml:6: routes.b.pacing: expected a number, got string "fast"`}},
		{"bad CIDR", "rtsp:\n  multicast:\n    range: 239.255.42.0\n" + ok, []string{
			`t.yaml:3: rtsp.multicast.range: "239.255.42.0" is not a CIDR block like 239.255.42.0/24`}},
		{"unicast CIDR", "rtsp:\n  multicast:\n    range: 10.0.0.0/8\n" + ok, []string{
			`t.yaml:3: rtsp.multicast.range: 10.0.0.0/8 is not inside a multicast block (224.0.0.0/4 or ff00::/8)`}},
		{"CIDR wider than multicast", "rtsp:\n  multicast:\n    range: 224.0.0.0/3\n" + ok, []string{
			`t.yaml:3: rtsp.multicast.range: 224.0.0.0/3 is not inside a multicast block (224.0.0.0/4 or ff00::/8)`}},
		{"CIDR host bits", "rtsp:\n  multicast:\n    range: 239.255.42.7/24\n" + ok, []string{
			`t.yaml:3: rtsp.multicast.range: 239.255.42.7/24 has host bits set; did you mean 239.255.42.0/24?`}},
		{"odd multicast port", "rtsp:\n  multicast: {port: 5001, ttl: 256}\n" + ok, []string{
			`t.yaml:2: rtsp.multicast.port: 5001 is odd; RTP needs an even port (RTCP takes the next odd one)`,
			`t.yaml:2: rtsp.multicast.ttl: 256 is out of range (0-255)`}},
		{"protocols not a list", "rtsp:\n  protocols: tcp\n" + ok, []string{
			`t.yaml:2: rtsp.protocols: expected a list like [udp, multicast, tcp], got string "tcp"`}},
		{"protocols empty", "rtsp:\n  protocols: []\n" + ok, []string{
			`t.yaml:2: rtsp.protocols: must name at least one of udp, multicast, tcp`}},
		{"protocols bad entries", "rtsp:\n  protocols:\n    - udp\n    - quic\n    - udp\n" + ok, []string{
			`t.yaml:4: rtsp.protocols: "quic" is not one of udp, multicast, tcp`,
			`t.yaml:5: rtsp.protocols: "udp" is listed twice`}},
		{"route not a mapping", "routes:\n  cam: rtsp://h/\n", []string{
			`t.yaml:2: routes.cam: expected a mapping of route settings (source:, on_demand:, ...), got string "rtsp://h/"`}},
		{"route name with leading slash", "routes:\n  /cam: {source: demo}\n", []string{
			`t.yaml:2: routes./cam: route name must not start with "/"; write "cam"`}},
		{"route name with trailing slash", "routes:\n  cam/: {source: demo}\n", []string{
			`t.yaml:2: routes.cam/: route name must not end with "/"`}},
		{"route name with empty segment", "routes:\n  a//b: {source: demo}\n", []string{
			`t.yaml:2: routes.a//b: route name "a//b" has an empty segment ("//")`}},
		{"route name with dot-dot", "routes:\n  a/../b: {source: demo}\n", []string{
			`t.yaml:2: routes.a/../b: route name "a/../b" has a ".." segment`}},
		{"route name with space", "routes:\n  \"my cam\": {source: demo}\n", []string{
			`t.yaml:2: routes.my cam: route name "my cam" contains ' '; use letters, digits and _ - . ~ : /`}},
		{"empty route name", "routes:\n  \"\": {source: demo}\n", []string{
			`t.yaml:2: routes.: route name must not be empty`}},
		{"source wrong type", "routes:\n  cam: {source: 5}\n", []string{
			`t.yaml:2: routes.cam.source: expected a string, got integer 5`}},
		{"source empty", "routes:\n  cam: {source: \"\"}\n", []string{
			`t.yaml:2: routes.cam: source must not be empty; use publisher, demo, rtsp://, rtsps:// or rtp://`}},
		{"source unknown word", "routes:\n  cam: {source: camera}\n", []string{
			`t.yaml:2: routes.cam: source "camera" is not supported; use publisher, demo, rtsp://, rtsps:// or rtp://`}},
		{"source st2110", "routes:\n  cam:\n    source: st2110://stream.sdp\n", []string{
			`t.yaml:3: routes.cam: stat stream.sdp: no such file or directory`}},
		{"source without host", "routes:\n  cam:\n    source: rtsp:///stream\n", []string{
			`t.yaml:3: routes.cam: source "rtsp:///stream" has no host`}},
		{"source bad port", "routes:\n  cam:\n    source: rtsp://h:70000/s\n", []string{
			`t.yaml:3: routes.cam: source "rtsp://h:70000/s" has invalid port "70000" (want 1-65535)`}},
		{"source port zero", "routes:\n  cam:\n    source: rtsp://h:0/s\n", []string{
			`t.yaml:3: routes.cam: source "rtsp://h:0/s" has invalid port "0" (want 1-65535)`}},
		{"source non-numeric port", "routes:\n  cam:\n    source: rtsp://h:x/s\n", []string{
			`t.yaml:3: routes.cam: source "rtsp://h:x/s" is not a valid URL: invalid port ":x" after host`}},
		{"source empty port", "routes:\n  cam:\n    source: \"rtsp://h:/s\"\n", []string{
			`t.yaml:3: routes.cam: source "rtsp://h:/s" has an empty port; drop the ":" or give a port`}},
		{"source with space", "routes:\n  cam:\n    source: rtsp://h/a b\n", []string{
			`t.yaml:3: routes.cam: source "rtsp://h/a b" contains spaces or control characters`}},
		{"bad source transport", "routes:\n  cam: {source: rtsp://h/, source_transport: quic}\n", []string{
			`t.yaml:2: routes.cam.source_transport: "quic" is not one of auto, udp, tcp`}},
		{"bad bool", "routes:\n  cam:\n    source: rtsp://h/\n    on_demand: sometimes\n", []string{
			`t.yaml:4: routes.cam.on_demand: expected true or false, got string "sometimes"`}},
		{"bool wrong type", "routes:\n  cam:\n    source: rtsp://h/\n    on_demand: 1\n", []string{
			`t.yaml:4: routes.cam.on_demand: expected true or false, got integer 1`}},
		{"publisher on demand", "routes:\n  pub:\n    source: publisher\n    on_demand: true\n", []string{
			`t.yaml:4: routes.pub: on_demand needs a source to pull; a publisher route has nothing to start (remove on_demand or set source)`}},
		{"default publisher on demand", "routes:\n  pub:\n    on_demand: true\n", []string{
			`t.yaml:3: routes.pub: on_demand needs a source to pull; a publisher route has nothing to start (remove on_demand or set source)`}},
		{"override without publisher", "routes:\n  cam:\n    source: demo\n    override_publisher: true\n", []string{
			`t.yaml:4: routes.cam: override_publisher applies only to source: publisher`}},
		{"transport without pull", "routes:\n  pub:\n    source_transport: tcp\n", []string{
			`t.yaml:3: routes.pub: source_transport applies only to rtsp:// and rtsps:// sources`}},
		{"max readers negative", "routes:\n  cam: {source: demo, max_readers: -1}\n", []string{
			`t.yaml:2: routes.cam.max_readers: -1 is out of range (0-1048576)`}},
		{"reconnect inverted", "routes:\n  cam:\n    source: rtsp://h/\n    reconnect_min: 10s\n    reconnect_max: 5s\n", []string{
			`t.yaml:5: routes.cam: reconnect_max (5s) must not be less than reconnect_min (10s)`}},
		{"reconnect min above default max", "routes:\n  cam:\n    source: rtsp://h/\n    reconnect_min: 1m\n", []string{
			`t.yaml:4: routes.cam: reconnect_max (30s) must not be less than reconnect_min (1m0s)`}},
		{"regex compile error", "routes:\n  \"~^cam/(\\\\d+$\": {source: demo}\n", []string{
			"t.yaml:2: routes.~^cam/(\\d+$: invalid regular expression: error parsing regexp: missing closing ): `^cam/(\\d+$`"}},
		{"regex empty", "routes:\n  \"~\": {source: demo}\n", []string{
			`t.yaml:2: routes.~: a regex route needs a pattern after the "~"`}},
		{"regex source bad group number", "routes:\n  \"~^cam/(\\\\d+)$\": {source: \"rtsp://h/$2\"}\n", []string{
			`t.yaml:2: routes.~^cam/(\d+)$: source refers to $2 but the pattern has 1 capture group(s)`}},
		{"regex source bad group name", "routes:\n  \"~^cam/(?P<id>\\\\d+)$\": {source: \"rtsp://h/${idx}\"}\n", []string{
			`t.yaml:2: routes.~^cam/(?P<id>\d+)$: source refers to ${idx} but the pattern has no group named "idx"`}},
		{"regex source number then text", "routes:\n  \"~^cam/(\\\\d+)$\": {source: \"rtsp://h/$1a\"}\n", []string{
			`t.yaml:2: routes.~^cam/(\d+)$: source refers to ${1a} but the pattern has no group named "1a"; to follow group 1 with text write ${1}`}},
		{"regex source invalid after substitution", "routes:\n  \"~^cam/(\\\\d+)$\": {source: \"rtp://h/$1\"}\n", []string{
			`t.yaml:2: routes.~^cam/(\d+)$: "rtp://h/1": an rtp:// source is just rtp://HOST:PORT (no path, query or user)`}},
		{"merge of a scalar", "routes:\n  cam:\n    <<: 5\n", []string{
			`t.yaml:3: routes.cam: the value of a merge key (<<) must be a mapping or a list of mappings, got integer 5`}},
		{"alias value keeps the use line", "x: &p 8001\nrtsp:\n  rtp_port: *p\n" + ok, []string{
			`t.yaml:1: unknown key "x"`,
			`t.yaml:3: rtsp.rtp_port: 8001 is odd; RTP needs an even port (RTCP takes the next odd one)`}},
		{"all errors collected in line order", "log_level: loud\nrtsp:\n  rtp_port: 7\n  bogus: 1\nroutes:\n  pub: {on_demand: true}\n  cam: {source: ftp://h/}\n", []string{
			`t.yaml:1: log_level: "loud" is not one of debug, info, warn, error`,
			`t.yaml:3: rtsp.rtp_port: 7 is odd; RTP needs an even port (RTCP takes the next odd one)`,
			`t.yaml:4: rtsp: unknown key "bogus"`,
			`t.yaml:6: routes.pub: on_demand needs a source to pull; a publisher route has nothing to start (remove on_demand or set source)`,
			`t.yaml:7: routes.cam: source scheme "ftp" is not supported; use publisher, demo, rtsp://, rtsps:// or rtp://`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
