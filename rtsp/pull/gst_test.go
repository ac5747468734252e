package pull

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGstRtspServerCamera pulls from a GStreamer RTSP server, an
// implementation unrelated to gortsplib, over auto (UDP) and TCP.
func TestGstRtspServerCamera(t *testing.T) {
	const py = "/usr/bin/python3"
	check := exec.Command(py, "-c", "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer")
	if err := check.Run(); err != nil {
		if os.Getenv("MESHGW_REQUIRE_PEERS") == "1" {
			t.Fatalf("GstRtspServer for %s required (MESHGW_REQUIRE_PEERS=1): %v", py, err)
		}
		t.Skipf("GstRtspServer (python3-gi, gir1.2-gst-rtsp-server-1.0) not available: %v", err)
	}
	_, port, _ := net.SplitHostPort(freeTCPAddr(t))
	cmd := exec.Command(py, "testdata/camera.py", port)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("camera did not start: %q %v", line, err)
	}

	for _, tr := range []string{"auto", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			rec := newRecorder()
			p := New(Config{URL: "rtsp://127.0.0.1:" + port + "/cam", Transport: tr, ReconnectMin: 50 * time.Millisecond}, rec)
			p.Start()
			rec.waitFor(t, "camera packets", func(r *recorder) bool { return r.rtp[0] >= 25 && r.rtp[1] >= 10 })
			p.Close()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.tracks) != 2 || rec.tracks[0].Media != "video" || rec.tracks[1].ClockRate != 48000 {
				t.Errorf("tracks = %+v", rec.tracks)
			}
			if got := strings.Join(rec.events, ","); got != "ready,disconnect" {
				t.Errorf("events = %s", got)
			}
		})
	}
}
