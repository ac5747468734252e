package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

const pubConfig = `
rtsp:
  listen: LISTEN
routes:
  pub:
    source: publisher
`

// ffmpegPublisher starts ffmpeg publishing secs seconds of testsrc2 (size) + a sine (AAC) to url
// over transport. It is killed when ctx ends or the test ends.
func ffmpegPublisher(ctx context.Context, t testing.TB, transport, url, size string, secs int) *peertest.Proc {
	t.Helper()
	return peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
		"-re", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25",
		"-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", fmt.Sprint(secs),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-f", "rtsp", "-rtsp_transport", transport, url)
}

// checkReader reads url with ffmpeg for 4 s and wants no decode errors and at least 70 decoded
// frames: the reader joins mid-GOP and loses up to one GOP (25 frames) before the first keyframe,
// so this is >= 50 frames per 3 s of decodable stream.
func checkReader(t testing.TB, transport, url string) {
	t.Helper()
	n, out := ffmpegFrames(t, transport, url, 4)
	t.Logf("ffmpeg reader (%s) decoded %d frames", transport, n)
	if n < minFrames4s {
		t.Errorf("ffmpeg reader (%s) decoded %d frames in 4 s, want >= %d\n%s", transport, n, minFrames4s, tail(out))
	}
	if bad := peertest.FFmpegErrorLines(out); len(bad) > 0 {
		t.Errorf("ffmpeg reader (%s): decode errors: %q", transport, bad)
	}
}

// minFrames4s is the fewest frames a 4 s ffmpeg reader of a 25 fps, GOP 25 stream must decode.
const minFrames4s = 70

// probeStreams runs ffprobe on url and returns its streams.
func probeStreams(t testing.TB, transport, url string) []map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "ffprobe", "-v", "error", "-rtsp_transport", transport,
		"-show_entries", "stream=codec_name,width,height,sample_rate", "-of", "compact", url)
	if err := p.Wait(30 * time.Second); err != nil {
		t.Fatalf("ffprobe %s (%s): %v\n%s", url, transport, err, tail(p.Output()))
	}
	return peertest.FFprobeStreams(p.Output())
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// waitExit waits for a publisher to finish and fails the test if it did not succeed.
func waitExit(t testing.TB, p *peertest.Proc, timeout time.Duration, what string) {
	t.Helper()
	if err := p.Wait(timeout); err != nil {
		t.Errorf("%s: %v\n%s", what, err, tail(p.Output()))
	}
}

// waitRtspclientsinkEnd waits for rtspclientsink to PAUSE, TEARDOWN and exit. GStreamer 1.22's
// rtspclientsink sometimes never gets there: at EOS both of its internal RTP sources send BYE in
// the same RTCP cycle, one is re-created, and the EOS never reaches the sink, so it sends no further
// request (seen in its rtpsession debug log; no request of it is pending on the gateway). That case
// is recognised by the gateway still holding the session, whose TEARDOWN never came, and is only
// logged. A hang after the gateway processed the TEARDOWN, or an error response, fails the test.
func waitRtspclientsinkEnd(t testing.TB, g *gw, pub *peertest.Proc, protocols string) {
	t.Helper()
	what := "rtspclientsink (" + protocols + ") at its end"
	select {
	case <-pub.Done():
		if err := pub.Wait(time.Second); err != nil {
			t.Errorf("%s: %v\n%s", what, err, tail(pub.Output()))
		}
		return
	case <-time.After(20 * time.Second):
	}
	out := pub.Output()
	held := g.RTSP.SessionCount() > 0
	pub.Kill()
	if held && !strings.Contains(out, "error response") {
		t.Logf("%s: GStreamer's rtspclientsink stopped before sending PAUSE/TEARDOWN (its EOS race); the gateway still held the session", what)
		return
	}
	t.Errorf("%s: no exit 20 s after EOS (gateway holds %d sessions)\n%s", what, g.RTSP.SessionCount(), tail(out))
}

func TestPublishFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	for i, pubTr := range []string{"udp", "tcp"} {
		t.Run(pubTr, func(t *testing.T) {
			g := startGateway(t, pubConfig)
			url := g.URL + "pub"
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			pub := ffmpegPublisher(ctx, t, pubTr, url, "640x360", 8)
			waitPublished(t, url, 10*time.Second)
			readTr := []string{"tcp", "udp"}[i] // the other transport
			checkReader(t, readTr, url)
			waitExit(t, pub, 20*time.Second, "ffmpeg publisher ("+pubTr+")")
		})
	}
}

// rtspclientsinkArgs is the gst-launch-1.0 command line of a video-only rtspclientsink publisher
// (PEERS.md §5), 320x240 for secs seconds; with audio, an Opus track is linked to sink_1 after
// the video, which makes rtspclientsink announce audio first.
func rtspclientsinkArgs(url, protocols string, secs int, audio bool) []string {
	video := []string{"videotestsrc", "is-live=true", fmt.Sprintf("num-buffers=%d", secs*25), "!",
		"video/x-raw,format=I420,width=320,height=240,framerate=25/1", "!",
		"x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=25", "sliced-threads=false", "!"}
	if !audio {
		return append(append([]string{"-q"}, video...), "rtspclientsink", "location="+url, "protocols="+protocols)
	}
	args := []string{"-q", "rtspclientsink", "name=c", "location=" + url, "protocols=" + protocols}
	args = append(append(args, video...), "c.sink_0")
	return append(args, "audiotestsrc", "is-live=true", fmt.Sprintf("num-buffers=%d", secs*50), "samplesperbuffer=960", "!",
		"audio/x-raw,rate=48000,channels=2", "!", "opusenc", "!", "c.sink_1")
}

func TestPublishRtspclientsink(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe", "gst-launch-1.0", "gst:rtspclientsink", "gst:x264enc", "gst:videotestsrc")
	cases := []struct {
		name, protocols, reader string
		audio                   bool
	}{
		{"udp", "udp", "tcp", false},
		{"tcp", "tcp", "udp", false},
		{"udp-audio-first", "udp", "udp", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.audio {
				peertest.Require(t, "gst:opusenc", "gst:audiotestsrc")
			}
			g := startGateway(t, pubConfig)
			url := g.URL + "pub"
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			pub := peertest.Run(ctx, t, "gst-launch-1.0", rtspclientsinkArgs(url, tc.protocols, 8, tc.audio)...)
			waitPublished(t, url, 10*time.Second)
			streams := probeStreams(t, tc.reader, url)
			want := []string{"h264"}
			if tc.audio {
				want = []string{"opus", "h264"} // the gateway keeps the publisher's order
			}
			var got []string
			for _, s := range streams {
				got = append(got, s["codec_name"])
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("ffprobe streams %v, want codecs %v", streams, want)
			}
			for _, s := range streams {
				if s["codec_name"] == "h264" && (s["width"] != "320" || s["height"] != "240") {
					t.Errorf("video %sx%s, want 320x240", s["width"], s["height"])
				}
			}
			checkReader(t, tc.reader, url)
			waitRtspclientsinkEnd(t, g, pub, tc.protocols)
		})
	}
}

// TestPublishConflict: a second publisher on a busy route is refused with 409 while the first one
// keeps going; with override_publisher the second replaces the first.
func TestPublishConflict(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	t.Run("refused", func(t *testing.T) {
		g := startGateway(t, pubConfig)
		url := g.URL + "pub"
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		pub1 := ffmpegPublisher(ctx, t, "tcp", url, "640x360", 9)
		waitPublished(t, url, 10*time.Second)
		for _, tr := range []string{"tcp", "udp"} {
			pub2 := ffmpegPublisher(ctx, t, tr, url, "320x240", 3)
			err := pub2.Wait(15 * time.Second)
			out := pub2.Output()
			if err == nil {
				t.Errorf("second publisher (%s) succeeded on a busy route:\n%s", tr, tail(out))
			}
			if !strings.Contains(out, "409") && !strings.Contains(out, "Conflict") {
				t.Errorf("second publisher (%s) got no 409 Conflict:\n%s", tr, tail(out))
			}
		}
		if pub1.Exited() {
			t.Fatalf("first publisher ended after the refused one:\n%s", tail(pub1.Output()))
		}
		checkReader(t, "udp", url)
		if s := probeStreams(t, "tcp", url); len(s) == 0 || s[0]["width"] != "640" {
			t.Errorf("route no longer carries the first publisher's 640x360: %v", s)
		}
		waitExit(t, pub1, 20*time.Second, "first publisher")
	})
	t.Run("override", func(t *testing.T) {
		peertest.Require(t, "ffmpeg", "ffprobe")
		g := startGateway(t, strings.Replace(pubConfig, "source: publisher", "source: publisher\n    override_publisher: true", 1))
		url := g.URL + "pub"
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		pub1 := ffmpegPublisher(ctx, t, "tcp", url, "640x360", 20)
		waitPublished(t, url, 10*time.Second)
		if s := probeStreams(t, "tcp", url); len(s) == 0 || s[0]["width"] != "640" {
			t.Fatalf("first publisher: streams %v", s)
		}
		// A reader kept connected across the override.
		kept := startGoReader(t, url, "tcp")
		video := kept.track("video")
		kept.waitCount(video, 50, 10*time.Second)

		pub2 := ffmpegPublisher(ctx, t, "udp", url, "320x240", 8)
		select {
		case <-pub1.Done():
			out := pub1.Output()
			if pub1.ExitCode() == 0 {
				t.Errorf("replaced publisher exited cleanly, want an error from the closed session:\n%s", tail(out))
			}
			t.Logf("replaced publisher ended (exit %d): %s", pub1.ExitCode(), lastLines(out, 3))
		case <-time.After(10 * time.Second):
			t.Fatalf("first publisher still running 10 s after the second one started")
		}
		if pub2.Exited() {
			t.Fatalf("second publisher ended early:\n%s", tail(pub2.Output()))
		}
		// New readers get the new stream.
		if s := probeStreams(t, "udp", url); len(s) == 0 || s[0]["width"] != "320" {
			t.Errorf("after override: streams %v, want the second publisher's 320x240", s)
		}
		checkReader(t, "tcp", url)
		// The kept reader: same track layout, so it stays on its line.
		n := len(kept.packets(video))
		kept.waitCount(video, n+50, 10*time.Second)
		if err := kept.Err(); err != nil {
			t.Errorf("kept reader's session ended: %v", err)
		}
		checkLine(t, "kept reader video", kept.packets(video))
		t.Logf("kept reader stayed connected: %d video packets, biggest gap %v", len(kept.packets(video)), biggestGap(kept.packets(video)).gap)
		waitExit(t, pub2, 20*time.Second, "second publisher")
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// TestPublisherReturns: a reader stays connected while its publisher leaves and another one with
// the same tracks comes; it sees one continuous RTP line per track.
func TestPublisherReturns(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	for _, readTr := range []string{"tcp", "udp"} {
		t.Run("reader-"+readTr, func(t *testing.T) {
			pubTr := map[string]string{"tcp": "udp", "udp": "tcp"}[readTr]
			g := startGateway(t, pubConfig)
			url := g.URL + "pub"
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pub1 := ffmpegPublisher(ctx, t, pubTr, url, "640x360", 4)
			waitPublished(t, url, 10*time.Second)
			r := startGoReader(t, url, readTr)
			video, audio := r.track("video"), r.track("audio")
			r.waitCount(video, 20, 10*time.Second)
			waitExit(t, pub1, 20*time.Second, "first publisher")
			stopped := time.Now()
			nv, na := len(r.packets(video)), len(r.packets(audio))

			pub2 := ffmpegPublisher(ctx, t, pubTr, url, "640x360", 4)
			r.waitCount(video, nv+50, 15*time.Second)
			r.waitCount(audio, na+20, 5*time.Second) // ffmpeg packs several AAC frames per packet
			if err := r.Err(); err != nil {
				t.Fatalf("reader session ended: %v", err)
			}
			for _, tr := range []struct {
				name string
				idx  int
				n    int
			}{{"video", video, nv}, {"audio", audio, na}} {
				p := r.packets(tr.idx)
				checkSwitch(t, tr.name, p, tr.n, r.clock[tr.idx])
				checkLine(t, tr.name, p)
			}
			t.Logf("second publisher's packets arrived %v after the first one left", time.Since(stopped))
			waitExit(t, pub2, 20*time.Second, "second publisher")
		})
	}
}
