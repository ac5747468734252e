package peertest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// probe runs ffprobe against url with the given RTSP transport and returns
// the parsed streams.
func probe(t *testing.T, url, transport string) []map[string]string {
	t.Helper()
	out := Run(context.Background(), t, "ffprobe", "-v", "error", "-rtsp_transport", transport,
		"-show_entries", "stream=codec_name,width,height,sample_rate,channels", "-of", "compact", url).
		MustSucceed(30 * time.Second)
	return FFprobeStreams(out)
}

func TestCameraProbe(t *testing.T) {
	Require(t, "ffprobe", "ffmpeg")
	cam := StartCamera(t, CameraOpts{Size: "320x240"})
	for _, tr := range []string{"udp", "tcp"} {
		s := probe(t, cam.URL(), tr)
		if len(s) != 2 || s[0]["codec_name"] != "h264" || s[0]["width"] != "320" || s[0]["height"] != "240" ||
			s[1]["codec_name"] != "aac" || s[1]["sample_rate"] != "48000" {
			t.Errorf("%s: streams %v", tr, s)
		}
	}
	out := Run(context.Background(), t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
		"-rtsp_transport", "tcp", "-i", cam.URL(), "-t", "3", "-f", "null", "-").MustSucceed(30 * time.Second)
	if n, ok := FFmpegFrames(out); !ok || n < 70 {
		t.Errorf("ffmpeg decoded %d frames in 3 s, want ~75", n)
	}
	if bad := FFmpegErrorLines(out); len(bad) > 0 {
		t.Errorf("decode errors: %q", bad)
	}
}

func TestCameraGstreamerClient(t *testing.T) {
	Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:avdec_h264", "gst:avdec_aac")
	cam := StartCamera(t, CameraOpts{Size: "320x240", Protocols: []string{"udp"}})
	out := Run(context.Background(), t, "gst-launch-1.0", "rtspsrc", "location="+cam.URL(), "protocols=udp",
		"latency=100", "name=s",
		"s.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
		"!", "identity", "eos-after=25", "!", "fakesink",
		"s.", "!", "application/x-rtp,media=audio", "!", "rtpmp4gdepay", "!", "avdec_aac",
		"!", "identity", "eos-after=25", "!", "fakesink").MustPlayGst(30 * time.Second)
	if !GstGotEOS(out) {
		t.Errorf("no EOS from gst-launch")
	}
}

func TestCameraRecordAndRestart(t *testing.T) {
	Require(t, "ffmpeg", "ffprobe")
	clip := testMedia.Clip(t, ClipSpec{Seconds: 3, Width: 320, Height: 240, Audio: "none"})
	cam := StartCamera(t, CameraOpts{Size: "320x240", Audio: "none", Record: []string{"/pub"}})
	Run(context.Background(), t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-re", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", cam.RecordURL("/pub")).
		MustSucceed(30 * time.Second)
	counts := cam.WaitRecord("/pub", 20*time.Second)
	if n := counts[0]; n < 65 || n > 75 {
		t.Errorf("RECORD /pub decoded %d frames, want about 75 (counts %v)", n, counts)
	}
	port := cam.Port()
	cam.Restart()
	if cam.Port() != port {
		t.Fatalf("Restart moved the camera from port %d to %d", port, cam.Port())
	}
	if s := probe(t, cam.URL(), "tcp"); len(s) != 1 || s[0]["codec_name"] != "h264" {
		t.Errorf("after Restart: streams %v", s)
	}
	cam.Stop()
	if !strings.Contains(cam.Proc().Output(), "STOP (SIGTERM)") {
		t.Errorf("camera did not stop cleanly:\n%s", cam.Proc().Tail(TailBytes))
	}
}

func TestCameraAuth(t *testing.T) {
	Require(t, "ffprobe")
	for _, method := range []string{"digest", "basic"} {
		t.Run(method, func(t *testing.T) {
			cam := StartCamera(t, CameraOpts{Size: "320x240", Audio: "none", Auth: "alice:s3cret", AuthMethod: method})
			p := Run(context.Background(), t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
				"-show_entries", "stream=codec_name", "-of", "compact", cam.URL())
			if err := p.Wait(30 * time.Second); err == nil {
				t.Errorf("unauthenticated ffprobe succeeded: %s", p.Output())
			}
			if s := probe(t, cam.AuthURL(), "tcp"); len(s) != 1 || s[0]["codec_name"] != "h264" {
				t.Errorf("authenticated: streams %v", s)
			}
		})
	}
}
