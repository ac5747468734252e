package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// pullConfig is a gateway with one route "cam" pulling src; extra is indented route keys.
func pullConfig(src, extra string) string {
	return fmt.Sprintf(`
rtsp:
  listen: LISTEN
routes:
  cam:
    source: %s
%s`, src, extra)
}

// checkCamStreams wants ffprobe to see the camera's h264 640x360 + aac 48 kHz through url.
func checkCamStreams(t testing.TB, transport, url string) {
	t.Helper()
	s := probeStreams(t, transport, url)
	if len(s) != 2 || s[0]["codec_name"] != "h264" || s[0]["width"] != "640" || s[0]["height"] != "360" ||
		s[1]["codec_name"] != "aac" || s[1]["sample_rate"] != "48000" {
		t.Errorf("ffprobe (%s) %s: streams %v, want h264 640x360 + aac 48000", transport, url, s)
	}
}

// gstRead plays url with rtspsrc over protocols and wants EOS after 50 decoded video frames and
// 50 decoded audio buffers.
//
// Once in a full CI-like run (never in isolation, nor in 4 runs under CPU stress) rtspsrc over UDP
// never created its audio pad ("Delayed linking failed ... rtpmp4gdepay") while the same route's
// audio reached ffmpeg readers just before. Until that is understood, a second player gets one
// more try, and the first failure stays in the log: a gateway that stopped serving audio over UDP
// fails both.
func gstRead(t testing.TB, protocols, url string) {
	t.Helper()
	out, ok := gstReadOnce(t, protocols, url)
	if ok {
		return
	}
	t.Logf("rtspsrc (%s) %s: no EOS on the first try, retrying once; its output:\n%s", protocols, url, tail(out))
	if out, ok = gstReadOnce(t, protocols, url); !ok {
		t.Errorf("rtspsrc (%s) %s: no EOS twice\n%s", protocols, url, tail(out))
	}
}

func gstReadOnce(t testing.TB, protocols, url string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "gst-launch-1.0", "rtspsrc", "location="+url, "protocols="+protocols, "latency=100", "name=s",
		"s.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
		"!", "identity", "eos-after=50", "!", "fakesink",
		"s.", "!", "application/x-rtp,media=audio", "!", "rtpmp4gdepay", "!", "avdec_aac",
		"!", "identity", "eos-after=50", "!", "fakesink")
	err := p.Wait(30 * time.Second)
	return p.Output(), peertest.GstPlayedThrough(p.Output(), err) == nil
}

func TestPullCamera(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe", "gst-launch-1.0", "gst:rtspsrc", "gst:avdec_h264", "gst:avdec_aac", "gst:rtpmp4gdepay")
	cases := []struct {
		name, transport string
		camProtocols    []string
	}{
		{"auto", "auto", nil},
		{"udp", "udp", []string{"udp"}},
		{"tcp", "tcp", []string{"tcp"}},
		// a TCP-only camera answers the UDP SETUP with 461: auto must fall back to TCP
		{"auto-tcp-fallback", "auto", []string{"tcp"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cam := peertest.StartCamera(t, peertest.CameraOpts{Protocols: tc.camProtocols})
			g := startGateway(t, pullConfig(cam.URL(), "    source_transport: "+tc.transport+"\n    reconnect_min: 200ms\n    reconnect_max: 1s\n"))
			url := g.URL + "cam"
			readTr := []string{"udp", "tcp"}[i%2]
			checkCamStreams(t, readTr, url)
			checkReader(t, readTr, url)
			gstRead(t, "udp", url)
			gstRead(t, "tcp", url)
		})
	}
}

// TestPullReconnectContinuity: readers of a pulled route stay connected while the camera restarts
// and then see one continuous RTP line: same SSRC, seq +1 across the outage, timestamps advanced
// by about the outage's duration.
func TestPullReconnectContinuity(t *testing.T) {
	peertest.Require(t, "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startGateway(t, pullConfig(cam.URL(), "    reconnect_min: 200ms\n    reconnect_max: 1s\n"))
	url := g.URL + "cam"
	readers := map[string]*goReader{}
	for _, tr := range []string{"tcp", "udp"} {
		readers[tr] = startGoReader(t, url, tr)
	}
	for _, r := range readers {
		for i := range r.medias {
			r.waitCount(i, 50, 10*time.Second)
		}
	}
	// Kill the camera first (Restart kills it again, harmlessly) to know which packets were the
	// old session's.
	cam.Proc().Kill()
	killed := time.Now()
	before := map[string][]int{}
	for tr, r := range readers {
		before[tr] = r.settle(5 * time.Second)
	}
	cam.Restart()
	for tr, r := range readers {
		for i := range r.medias {
			r.waitCount(i, before[tr][i]+100, 20*time.Second)
		}
	}
	t.Logf("media back and 100 packets per track %v after the camera was killed", time.Since(killed))
	for tr, r := range readers {
		if err := r.Err(); err != nil {
			t.Errorf("%s reader: session ended: %v", tr, err)
			continue
		}
		for i, m := range r.medias {
			name := fmt.Sprintf("%s reader %s", tr, m.Type)
			p := r.packets(i)
			checkLine(t, name, p)
			if k := before[tr][i]; k < len(p) && p[k].at.Sub(p[k-1].at) < 300*time.Millisecond {
				t.Errorf("%s: no outage between packets %d and %d", name, k-1, k)
			}
			checkSwitch(t, name, p, before[tr][i], r.clock[i])
		}
	}
}

// TestOnDemand: an on-demand route pulls only while read, and an unreachable one answers 503.
func TestOnDemand(t *testing.T) {
	peertest.Require(t, "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{Audio: "none"})
	g := startGateway(t, pullConfig(cam.URL(), `    on_demand: true
    on_demand_close_after: 1s
  dead:
    source: rtsp://127.0.0.1:1/x
    on_demand: true
    on_demand_start_timeout: 2s
`))
	url := g.URL + "cam"
	port := cam.Port()
	ctx := context.Background()
	if waitCond(ctx, 700*time.Millisecond, func() bool { return tcpConnsTo(t, port) > 0 }) {
		t.Fatalf("the gateway connected to the on-demand camera before any reader")
	}

	for round := 1; round <= 2; round++ {
		r := startGoReader(t, url, "tcp")
		if n := tcpConnsTo(t, port); n != 1 {
			t.Errorf("round %d: %d connections to the camera while reading, want 1", round, n)
		}
		r.waitCount(0, 50, 10*time.Second)
		r.Close()
		left := time.Now()
		if !waitCond(ctx, 6*time.Second, func() bool { return tcpConnsTo(t, port) == 0 }) {
			t.Fatalf("round %d: the pull still runs 6 s after the last reader left", round)
		}
		el := time.Since(left)
		t.Logf("round %d: pull stopped %v after the last reader left", round, el)
		if el < 800*time.Millisecond || el > 3*time.Second {
			t.Errorf("round %d: pull stopped %v after the last reader left, want about on_demand_close_after (1s)", round, el)
		}
	}

	t.Run("unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		p := peertest.Run(ctx, t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", "-of", "compact", g.URL+"dead")
		err := p.Wait(20 * time.Second)
		el := time.Since(start)
		out := p.Output()
		t.Logf("ffprobe of the unreachable route ended after %v: %s", el, strings.TrimSpace(out))
		if err == nil || !strings.Contains(out, "503") {
			t.Errorf("ffprobe of an unreachable on-demand route: err %v, want a 503:\n%s", err, out)
		}
		if el < 1500*time.Millisecond || el > 4500*time.Millisecond {
			t.Errorf("503 after %v, want after on_demand_start_timeout (2s)", el)
		}
	})
}

// TestRegexRoute: "~^cam/(\d+)$" pulls rtsp://camera/cam$1.
func TestRegexRoute(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{Path: "/cam7"})
	g := startGateway(t, fmt.Sprintf(`
rtsp:
  listen: LISTEN
routes:
  "~^cam/(\\d+)$":
    source: "rtsp://%s/cam$1"
    on_demand_start_timeout: 5s
`, cam.HostPort()))
	checkCamStreams(t, "tcp", g.URL+"cam/7")
	checkReader(t, "udp", g.URL+"cam/7")
	for path, want := range map[string]string{"cam/x": "404", "cam/7/x": "404", "cam/8": "503"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		p := peertest.Run(ctx, t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", "-of", "compact", g.URL+path)
		err := p.Wait(20 * time.Second)
		cancel()
		if err == nil || !strings.Contains(p.Output(), want) {
			t.Errorf("ffprobe %s: err %v, want %s:\n%s", path, err, want, p.Output())
		}
	}
}
