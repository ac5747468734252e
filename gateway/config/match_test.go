package config

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestMatch(t *testing.T) {
	c := mustParse(t, `
routes:
  "~^cam/(\\d+)$":
    source: rtsp://10.0.0.$1:554/s
    on_demand: true
  cam/7:
    source: rtsp://special/s
  "~^(?P<site>[a-z]{3,})/(?P<cam>\\d+)$":
    source: rtsps://${site}.example.com/cam${cam}
  "~^cam/.*$":
    source: demo
  "~^pt/(\\w+)$":
    source: rtsp://h:$1/s
  pub:
`)
	tests := []struct {
		path, name, source, pattern string
		ok                          bool
	}{
		// A plain route wins over an earlier regex route that also matches.
		{"cam/7", "cam/7", "rtsp://special/s", "", true},
		{"/cam/7", "cam/7", "rtsp://special/s", "", true},
		{"cam/12", "cam/12", "rtsp://10.0.0.12:554/s", `~^cam/(\d+)$`, true},
		{"/cam/12", "cam/12", "rtsp://10.0.0.12:554/s", `~^cam/(\d+)$`, true},
		{"paris/3", "paris/3", "rtsps://paris.example.com/cam3", `~^(?P<site>[a-z]{3,})/(?P<cam>\d+)$`, true},
		// Falls through the first regex to a later one, in file order.
		{"cam/x", "cam/x", "demo", `~^cam/.*$`, true},
		{"pub", "pub", "publisher", "", true},
		{"nothing", "", "", "", false},
		{"", "", "", "", false},
		// The capture would make a bad port: no match rather than a bad URL.
		{"pt/abc", "", "", "", false},
		{"pt/554", "pt/554", "rtsp://h:554/s", `~^pt/(\w+)$`, true},
		// File order: the earlier site pattern takes port/554.
		{"port/554", "port/554", "rtsps://port.example.com/cam554", `~^(?P<site>[a-z]{3,})/(?P<cam>\d+)$`, true},
		// Paths that are not valid route names never reach a pattern.
		{"cam/../etc", "", "", "", false},
		{"cam/a b", "", "", "", false},
	}
	for _, tt := range tests {
		r, ok := c.Match(tt.path)
		if ok != tt.ok || r.Name != tt.name || r.Source != tt.source || r.Pattern != tt.pattern {
			t.Errorf("Match(%q) = %q %q %q %v, want %q %q %q %v", tt.path, r.Name, r.Source, r.Pattern, ok,
				tt.name, tt.source, tt.pattern, tt.ok)
		}
	}
	// The returned route is a copy: the config keeps its template.
	r, _ := c.Match("cam/12")
	if !r.OnDemand || r.Regexp == nil || r.Line != 3 {
		t.Errorf("matched route lost its settings: %+v", r)
	}
	if c.Routes[0].Source != "rtsp://10.0.0.$1:554/s" || c.Routes[0].Name != `~^cam/(\d+)$` {
		t.Errorf("Match changed the config: %+v", c.Routes[0])
	}
}

// TestMatchHandBuilt covers a Config assembled in code (tests elsewhere do
// this), which has no name index.
func TestMatchHandBuilt(t *testing.T) {
	c := &Config{Routes: []Route{{Name: "a", Source: SourceDemo}}}
	if r, ok := c.Match("a"); !ok || r.Source != SourceDemo {
		t.Fatalf("Match(a) = %+v %v", r, ok)
	}
	if _, ok := c.Match("b"); ok {
		t.Fatal("Match(b) matched")
	}
}

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, every error
// must be an *Errors whose lines lie inside the input (0 only for whole-file
// problems), and every accepted config must be usable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalYAML))
	f.Add(DefaultYAML())
	f.Add([]byte(""))
	f.Add([]byte("routes:\n  \"~^cam/(\\\\d+)$\": {source: \"rtsp://h:$1/s\"}\n"))
	f.Add([]byte("routes:\n  a: &x {source: demo}\n  b: {<<: [*x, *x]}\n"))
	f.Add([]byte("rtsp: {rtp_port: 0, rtcp_port: 1, protocols: [udp, udp]}\nroutes: {}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("routes: {<<: {}}\n"))
	f.Add([]byte("routes:\n  \"~^c/(\\\\d+)$\": {source: \"rtsp://h/$1\", backup: \"rtsp://b/$1\", backup_stall: 2s, backup_mode: merge}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("error is not a non-empty *Errors: %#v", err)
			}
			// YAML also breaks lines at CR, NEL, LS and PS; counting each
			// of them (and CRLF twice) gives an upper bound on the lines.
			lines := 1
			for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
				lines += bytes.Count(data, []byte(br))
			}
			for _, e := range errs.List {
				if e.Line < 0 || e.Line > lines+1 || e.Msg == "" || e.File != "f.yaml" {
					t.Fatalf("bad error %+v for %d-line input", e, lines)
				}
			}
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if len(c.Routes) == 0 {
			t.Fatal("accepted a config without routes")
		}
		for _, r := range c.Routes {
			if r.Line < 1 {
				t.Fatalf("route %q has line %d", r.Name, r.Line)
			}
			if r.Backup != "" && r.Regexp == nil && (checkSource(r.Backup) != "" || !isBackupKind(r.Backup) || r.Source == SourcePublisher) {
				t.Fatalf("route %q: accepted backup %q of source %q", r.Name, r.Backup, r.Source)
			}
			if r.Regexp == nil {
				if got, ok := c.Match(r.Name); !ok || got.Name != r.Name {
					t.Fatalf("Match(%q) = %+v %v", r.Name, got, ok)
				}
			}
		}
		// Matching arbitrary lines of the input must not panic either.
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			c.Match(sc.Text())
		}
	})
}
