package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// mcastTransportRE finds the Transport header of a SETUP reply in ffmpeg's trace output.
var mcastTransportRE = regexp.MustCompile(`line='Transport: ([^']*)'`)

var mcastDestRE = regexp.MustCompile(`destination=([0-9.]+)`)

// mcastGateway runs the meshgw binary inside the server namespace, listening on its address with
// multicast enabled, and waits until it listens. It returns the demo URL.
func mcastGateway(t *testing.T, srv *peertest.Host) (*peertest.Proc, string) {
	t.Helper()
	cfg := fmt.Sprintf(`log_level: info
rtsp:
  listen: %s:8554
  rtp_port: 0
  multicast:
    range: 239.255.42.0/24
    port: 50000
    ttl: 1
  protocols: [udp, multicast, tcp]
routes:
  demo:
    source: demo
`, srv.Addr)
	path := filepath.Join(t.TempDir(), "meshgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := meshgwBinary(t)
	p := srv.Run(context.Background(), t, bin, "run", "-c", path)
	if _, err := p.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway in %s did not start: %v\n%s", srv, err, p.Output())
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil && !p.Exited() {
			t.Errorf("gateway stop: %v", err)
		}
	})
	return p, fmt.Sprintf("rtsp://%s:8554/demo", srv.Addr)
}

// mcastFFmpeg judges an ffmpeg reader run with -v trace: frames, no concealment, and the
// Transport headers of its SETUP replies.
func mcastFFmpeg(t *testing.T, name string, p *peertest.Proc, min int) []string {
	t.Helper()
	err := p.Wait(30 * time.Second)
	out := p.Output()
	n, ok := peertest.FFmpegFrames(out)
	if err != nil || !ok || n < min {
		t.Errorf("%s: %d frames (exit %v), want >= %d\n%s", name, n, err, min, playTail(out, 3000))
	}
	if strings.Contains(out, "concealing") {
		t.Errorf("%s: decoder concealed errors", name)
	}
	var tr []string
	for _, m := range mcastTransportRE.FindAllStringSubmatch(out, -1) {
		tr = append(tr, m[1])
	}
	t.Logf("%s: %d frames, SETUP replies %q", name, n, tr)
	return tr
}

// TestMulticastAcrossNamespaces runs the gateway binary on one host (network namespace) and
// players on another: multicast with ffmpeg and GStreamer, two players sharing one group, and
// unicast UDP and TCP across the link.
func TestMulticastAcrossNamespaces(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:rtph264depay", "gst:avdec_h264", "gst:rtpmp4gdepay", "gst:avdec_aac")
	peertest.RequireNetns(t)
	nn := peertest.NewNetns(t, "mgwmc")
	srv, cli := nn.Hosts[0], nn.Hosts[1]
	gwProc, url := mcastGateway(t, srv)
	ctx := context.Background()

	t.Run("ffmpeg multicast", func(t *testing.T) {
		p := cli.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp_multicast", url, 4, "-v", "trace")...)
		tr := mcastFFmpeg(t, "ffmpeg udp_multicast", p, 50)
		if len(tr) != 2 {
			t.Fatalf("%d SETUP replies, want 2", len(tr))
		}
		for i, want := range []string{"port=50000-50001", "port=50002-50003"} {
			if !strings.Contains(tr[i], "multicast") || !strings.Contains(tr[i], "destination=239.255.42.") || !strings.Contains(tr[i], want) {
				t.Errorf("track %d: Transport %q, want multicast to 239.255.42.0/24 %s", i, tr[i], want)
			}
			if !strings.Contains(tr[i], "ttl=1") {
				t.Errorf("track %d: Transport %q lacks ttl=1", i, tr[i])
			}
		}
	})

	t.Run("gstreamer multicast", func(t *testing.T) {
		start := time.Now()
		out := cli.Run(ctx, t, "gst-launch-1.0", playGstArgs(url, "udp-mcast", 50)...).MustPlayGst(30 * time.Second)
		if !peertest.GstGotEOS(out) {
			t.Errorf("no EOS from rtspsrc protocols=udp-mcast:\n%s", playTail(out, 3000))
		}
		t.Logf("rtspsrc udp-mcast: 50 video + 50 audio buffers in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("two readers share a group", func(t *testing.T) {
		startedBefore := strings.Count(gwProc.Output(), `msg="multicast started"`)
		ps := []*peertest.Proc{
			cli.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp_multicast", url, 4, "-v", "trace")...),
			cli.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp_multicast", url, 4, "-v", "trace")...),
		}
		var dests [2][]string
		for i, p := range ps {
			for _, tr := range mcastFFmpeg(t, fmt.Sprintf("ffmpeg-%d udp_multicast", i), p, 50) {
				if m := mcastDestRE.FindStringSubmatch(tr); m != nil {
					dests[i] = append(dests[i], m[1])
				}
			}
		}
		if len(dests[0]) != 2 || strings.Join(dests[0], ",") != strings.Join(dests[1], ",") {
			t.Errorf("destinations %v and %v, want one shared group for both readers", dests[0], dests[1])
		} else if dests[0][0] != dests[0][1] {
			t.Errorf("tracks went to groups %v, want one group per route", dests[0])
		}
		// the gateway started one multicast sender per track, not per reader
		if started := strings.Count(gwProc.Output(), `msg="multicast started"`) - startedBefore; started != 2 {
			t.Errorf("gateway logged %d \"multicast started\" for two readers, want 2 (one per track)", started)
		}
	})

	t.Run("unicast udp and tcp", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, tr := range []string{"udp", "tcp"} {
			p := cli.Run(ctx, t, "ffmpeg", playFFmpegArgs(tr, url, 4, "-v", "trace")...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies := mcastFFmpeg(t, "ffmpeg "+tr, p, 50)
				for _, r := range replies {
					if strings.Contains(r, "multicast") {
						t.Errorf("ffmpeg %s got a multicast transport %q", tr, r)
					}
				}
				if tr == "udp" {
					for _, r := range replies {
						if !strings.Contains(r, "server_port=") {
							t.Errorf("UDP transport %q lacks server_port", r)
						}
					}
				}
			}()
		}
		wg.Wait()
	})
}
