package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestRecordDemo records the demo route for about 10 s in 4 s files of 500 ms fragments, stops the
// gateway (which finishes the last file), and checks every file with ffprobe (H.264 and AAC, a
// duration) and ffmpeg (every frame decodes, no error), and that the files add up to the time
// recorded.
func TestRecordDemo(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	g := startGateway(t, `rtsp:
  listen: LISTEN
routes:
  demo:
    source: demo
    record: {path: `+dir+`, segment: 4s, part: 500ms}
`)
	start := time.Now() // the demo source is always on: recording starts at once
	time.Sleep(10 * time.Second)
	st := g.Recorders[0].Stats()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	recorded := time.Since(start)
	t.Logf("recorder stats: %+v", st)
	if !st.Recording || st.Segments < 2 || st.Parts < 10 || st.Errors != 0 {
		t.Errorf("recorder stats %+v: want recording, at least 2 files and 10 parts, no errors", st)
	}
	checkRecording(t, filepath.Join(dir, "demo"), recorded, "h264", "aac")
}

// TestRecordCamera records an on-demand GstRtspServer camera route (H.264 and Opus) for about
// 10 s in 5 s files and checks them as TestRecordDemo does.
func TestRecordCamera(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{Audio: "opus", GOP: 25})
	dir := t.TempDir()
	g := startGateway(t, `rtsp:
  listen: LISTEN
routes:
  cam:
    source: `+cam.URL()+`
    source_transport: tcp   # no UDP loss on a loaded machine: every frame must be there
    on_demand: true
    record: {path: `+dir+`, segment: 5s}
`)
	deadline := time.Now().Add(20 * time.Second)
	for !g.Recorders[0].Stats().Recording {
		if time.Now().After(deadline) {
			t.Fatalf("not recording after 20 s: %+v", g.Recorders[0].Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	time.Sleep(10 * time.Second)
	st := g.Recorders[0].Stats()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	recorded := time.Since(start)
	t.Logf("recorder stats: %+v", st)
	if st.Segments < 2 || st.Errors != 0 {
		t.Errorf("recorder stats %+v: want at least 2 files, no errors", st)
	}
	checkRecording(t, filepath.Join(dir, "cam"), recorded, "h264", "opus")
}

// checkRecording checks a route's recorded files with ffprobe (the codecs, a duration) and
// ffmpeg (every frame of 25 fps video decodes, no error or warning), and, when recorded is not 0,
// that they add up to the time recorded. It returns each file's start (from its name) and
// duration.
func checkRecording(t *testing.T, dir string, recorded time.Duration, codecs ...string) (starts []time.Time, durs []float64) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.mp4"))
	sort.Strings(files)
	if len(files) < 2 {
		t.Fatalf("%d files recorded in %s, want at least 2 of 4 s", len(files), recorded)
	}
	var total float64
	frames := 0
	for _, f := range files {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out := peertest.Run(ctx, t, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "default=nw=1", f).MustSucceed(30 * time.Second)
		cancel()
		for _, c := range codecs {
			if !strings.Contains(out, "codec_name="+c) {
				t.Errorf("%s: ffprobe found %q, want %v", filepath.Base(f), out, codecs)
			}
		}
		var d float64
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "duration="); ok {
				d, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		total += d
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		dec := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-v", "warning", "-stats", "-i", f, "-f", "null", "-").MustSucceed(30 * time.Second)
		cancel()
		n, _ := peertest.FFmpegFrames(dec)
		frames += n
		for _, l := range strings.Split(strings.ReplaceAll(dec, "\r", "\n"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "frame=") && !strings.HasPrefix(l, "[out#") && !strings.HasPrefix(l, "size=") {
				t.Errorf("%s: ffmpeg: %s", filepath.Base(f), l)
			}
		}
		info, _ := os.Stat(f)
		t.Logf("%s: %.2f s, %d frames, %d bytes", filepath.Base(f), d, n, info.Size())
		at, err := time.Parse("2006-01-02_15-04-05.000000", strings.TrimSuffix(filepath.Base(f), ".mp4"))
		if err != nil {
			t.Errorf("file name %s: %v", filepath.Base(f), err)
		}
		starts, durs = append(starts, at), append(durs, d)
	}
	t.Logf("%d files, %.2f s in all, %d frames, recorded for %s", len(files), total, frames, recorded.Round(time.Millisecond))
	// the files start at the first keyframe (the demo has one a second) and end where Close cut
	if recorded > 0 && (total < recorded.Seconds()-2.5 || total > recorded.Seconds()+0.5) {
		t.Errorf("files hold %.2f s of a %.2f s recording", total, recorded.Seconds())
	}
	if want := int(total*25) - 5*len(files); frames < want {
		t.Errorf("%d frames decoded from %.2f s at 25 fps, want at least %d", frames, total, want)
	}
	return starts, durs
}

// TestRecordCameraRestart restarts the camera of a recorded route: the gap in its media ends the
// file (a gap counted), the next file starts after it, and no two files overlap in time.
func TestRecordCameraRestart(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{Audio: "aac", GOP: 25})
	dir := t.TempDir()
	g := startGateway(t, `rtsp:
  listen: LISTEN
routes:
  cam:
    source: `+cam.URL()+`
    source_transport: tcp   # no UDP loss on a loaded machine: every frame must be there
    record: {path: `+dir+`, segment: 1h}
`)
	rec := g.Recorders[0]
	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(25 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 25 s: %+v", what, rec.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("recording", func() bool { return rec.Stats().Recording })
	time.Sleep(4 * time.Second)
	cam.Proc().Kill()
	time.Sleep(3 * time.Second) // a gap of 3 s or more, above the recorder's 2 s
	cam.Restart()
	wait("a gap and a second file", func() bool { st := rec.Stats(); return st.Gaps >= 1 && st.Segments >= 2 })
	time.Sleep(4 * time.Second)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorder stats: %+v", rec.Stats())
	starts, durs := checkRecording(t, filepath.Join(dir, "cam"), 0, "h264", "aac")
	if len(starts) < 2 {
		t.Fatalf("%d files, want one before and one after the restart", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		end := starts[i-1].Add(time.Duration(durs[i-1] * float64(time.Second)))
		if gap := starts[i].Sub(end); gap < 2*time.Second {
			t.Errorf("file %d starts %v after file %d ends; want the camera's gap (3 s or more) between them", i, gap, i-1)
		}
		if durs[i-1] < 3 || durs[i] < 3 {
			t.Errorf("files of %.2f s and %.2f s around the restart, want about 4 s each", durs[i-1], durs[i])
		}
	}
}

// TestRecordDiskFull records the demo route onto a 128 KiB tmpfs while an RTSP reader plays it:
// the disk fills, recording stops with the error counted ("no space left"), the reader plays on,
// and recording resumes once files are deleted.
func TestRecordDiskFull(t *testing.T) {
	peertest.RequireRoot(t)
	peertest.Require(t, "ffmpeg", "mount", "umount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	g := startGateway(t, `rtsp:
  listen: LISTEN
routes:
  demo:
    source: demo
    record: {path: `+dir+`, segment: 2s, part: 250ms}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reader := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-rtsp_transport", "tcp", "-i", g.URL+"demo", "-t", "14", "-f", "null", "-")
	rec := g.Recorders[0]
	deadline := time.Now().Add(20 * time.Second)
	for rec.Stats().Errors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no recording error on a full 128 KiB disk after 20 s: %+v", rec.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := rec.Stats()
	t.Logf("disk full: %+v", st)
	if !strings.Contains(st.LastError, "no space left") {
		t.Errorf("last error %q, want it to say no space is left", st.LastError)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "demo", "*.mp4"))
	for _, f := range files {
		os.Remove(f)
	}
	before := st.Segments
	deadline = time.Now().Add(15 * time.Second)
	for rec.Stats().Segments <= before {
		if time.Now().After(deadline) {
			t.Fatalf("recording did not resume 15 s after the disk was freed: %+v", rec.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("resumed: %+v", rec.Stats())
	out := reader.MustSucceed(40 * time.Second)
	if n, _ := peertest.FFmpegFrames(out); n < 14*25-25 {
		t.Errorf("the RTSP reader decoded %d frames in 14 s while the recording failed, want about %d", n, 14*25)
	}
}
