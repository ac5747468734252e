package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDiffRoutes(t *testing.T) {
	old := mustParse(t, `routes:
  same: {source: demo}
  moved: {source: demo, max_readers: 3}
  gone: {source: publisher}
  src: {source: "rtsp://cam/a"}
  limit: {source: demo, max_readers: 1}
  out:
    source: demo
    outputs: [{url: "rtp://127.0.0.1:5000"}]
  ~^cam(\d)$: {source: "rtsp://cam/$1"}
`)
	// same order shifted by a comment line and a new route first: lines differ everywhere
	cur := mustParse(t, `# a comment moves every line
routes:
  new: {source: demo}
  same: {source: demo}
  src: {source: "rtsp://cam/b"}
  limit: {source: demo, max_readers: 2}
  out:
    source: demo

    outputs: [{url: "rtp://127.0.0.1:5000"}]
  ~^cam(\d)$: {source: "rtsp://cam/x$1"}
  moved: {source: demo, max_readers: 3}
`)
	d := DiffRoutes(old, cur)
	check := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	check("added", d.Added, []string{"new"})
	check("removed", d.Removed, []string{"gone"})
	check("changed", d.Changed, []string{"src", "limit", `~^cam(\d)$`})
	check("unchanged", d.Unchanged, []string{"same", "out", "moved"})
	if d.Empty() {
		t.Error("Empty() on a diff with changes")
	}
	if !DiffRoutes(old, old).Empty() {
		t.Error("a config differs from itself")
	}
}

func TestSourceAndOutputsEqual(t *testing.T) {
	c := mustParse(t, `routes:
  a: {source: demo, max_readers: 1}
  b: {source: demo, max_readers: 2, allow_ips: [10.0.0.0/8]}
  c: {source: demo, pacing: 3}
  d: {source: demo, backup: demo}
  e:
    source: demo
    outputs: [{url: "rtp://127.0.0.1:5000"}]
  f:
    source: demo
    outputs: [{url: "rtp://127.0.0.1:5002"}]
`)
	r := map[string]Route{}
	for _, x := range c.Routes {
		r[x.Name] = x
	}
	if !SourceEqual(r["a"], r["b"]) {
		t.Error("max_readers and allow_ips are not the source")
	}
	if SourceEqual(r["a"], r["c"]) || SourceEqual(r["a"], r["d"]) {
		t.Error("pacing and backup feed the stream: they are the source")
	}
	if OutputsEqual(r["e"], r["f"]) || !OutputsEqual(r["a"], r["b"]) {
		t.Error("OutputsEqual")
	}
}

func TestRestartKeys(t *testing.T) {
	old := mustParse(t, "rtsp:\n  listen: :8554\nroutes:\n  a: {source: demo}\n")
	cur := mustParse(t, "log_level: debug\nrtsp:\n  listen: :9554\n  max_sessions: 4\n  session_timeout: 5s\nauth:\n  anonymous: {read: all}\nroutes:\n  b: {source: demo}\n")
	got := RestartKeys(old, cur)
	// log_level, max_sessions, auth: and the routes change in place
	want := []string{"rtsp.listen", "rtsp.session_timeout"}
	if !slices.Equal(got, want) {
		t.Errorf("RestartKeys = %q, want %q", got, want)
	}
	if k := RestartKeys(cur, mustParse(t, "rtsp:\n  listen: :9554\n  session_timeout: 5s\nauth:\n  max_failures: 2\n  anonymous: {read: all}\nroutes:\n  b: {source: demo}\n")); !slices.Equal(k, []string{"auth.max_failures"}) {
		t.Errorf("RestartKeys = %q, want the ban setting", k)
	}
	if k := RestartKeys(old, old); len(k) != 0 {
		t.Errorf("RestartKeys of a config against itself = %q", k)
	}
}

func TestRestartNamesMatchValues(t *testing.T) {
	if n, v := len(restartNames), len(restartValues(defaults())); n != v {
		t.Fatalf("%d restart key names for %d values", n, v)
	}
}

func TestWatchConfig(t *testing.T) {
	if !mustParse(t, minimalYAML).WatchConfig {
		t.Error("watch_config is off by default")
	}
	if mustParse(t, "watch_config: false\n"+minimalYAML).WatchConfig {
		t.Error("watch_config: false left it on")
	}
	_, err := Parse("t.yaml", []byte("watch_config: sometimes\n"+minimalYAML))
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml:1: watch_config") {
		t.Errorf("a bad watch_config: %v", err)
	}
}
