package record

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/routetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecord records the demo route into 1 s files and reads them back with mediacommon's fMP4
// reader: an initialization section with both tracks, then fragments.
func TestRecord(t *testing.T) {
	d := routetest.StartDemo(t)
	dir := filepath.Join(t.TempDir(), "demo")
	r := Start(Config{Route: "demo", Dir: dir, Segment: time.Second, Part: 250 * time.Millisecond, Handler: d})
	waitFor(t, "two files", 15*time.Second, func() bool { return r.Stats().Segments >= 3 })
	r.Close()
	st := r.Stats()
	if st.Errors != 0 || st.Parts < 4 || st.BytesWritten == 0 || st.Recording {
		t.Fatalf("stats after close %+v", st)
	}
	if n := d.Closes.Load(); n != 1 {
		t.Fatalf("reader closed %d times, want 1", n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.mp4"))
	if len(files) < 3 {
		t.Fatalf("%d files", len(files))
	}
	b, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("init of %s: %v", files[1], err)
	}
	if len(init.Tracks) != 2 || init.Tracks[0].TimeScale != 90000 {
		t.Fatalf("init tracks %+v", init.Tracks)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil || len(parts) < 2 {
		t.Fatalf("fragments of %s: %d, %v", files[1], len(parts), err)
	}
	if s := parts[0].Tracks[0].Samples[0]; s.IsNonSyncSample {
		t.Fatalf("a file starts with a non-keyframe")
	}
}

// TestRecordUnwritable: a directory that cannot be made stops recording with the error counted,
// and recording resumes by itself once it can.
func TestRecordUnwritable(t *testing.T) {
	d := routetest.StartDemo(t)
	tmp := t.TempDir()
	block := filepath.Join(tmp, "rec")
	if err := os.WriteFile(block, nil, 0o644); err != nil { // a file where the directory must go
		t.Fatal(err)
	}
	r := Start(Config{Route: "demo", Dir: filepath.Join(block, "demo"), Segment: time.Second, Part: 250 * time.Millisecond,
		Handler: d, Retry: 200 * time.Millisecond})
	defer r.Close()
	waitFor(t, "an error", 15*time.Second, func() bool { return r.Stats().Errors > 0 })
	if st := r.Stats(); st.Recording || st.Segments != 0 || st.LastError == "" {
		t.Fatalf("stats while unwritable %+v", st)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recording after the path was freed", 15*time.Second, func() bool { return r.Stats().Segments > 0 && r.Stats().Recording })
}

func TestRouteDir(t *testing.T) {
	if d, err := RouteDir("/r", "cams/door"); err != nil || d != "/r/cams/door" {
		t.Fatalf("%q %v", d, err)
	}
	for _, bad := range []string{"../x", "a//b", "a/./b", ""} {
		if _, err := RouteDir("/r", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzRouteDir: a route's directory never leaves the record path.
func FuzzRouteDir(f *testing.F) {
	for _, s := range []string{"demo", "a/b", "../x", "a/../../b", "/abs", "a//b", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, route string) {
		d, err := RouteDir("/rec", route)
		if err != nil {
			return
		}
		if rel, err := filepath.Rel("/rec", d); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("route %q gives %q, outside /rec", route, d)
		}
	})
}
