package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

var receptionRE = regexp.MustCompile(`msg="reader reception".* reader=(\S+) .*track=(\d) reports=(\d+) lost=(-?\d+) fraction_lost=\S+ jitter=(\S+) rtt=(\S+)`)

// TestReaderReceptionReports: real players' RTCP receiver reports reach the gateway's stats.
// Two GStreamer rtspsrc readers, one over UDP and one interleaved (TCP), read the demo for 12 s;
// when they leave, the gateway logs, per reader and track, how many reports each sent, their
// loss and jitter, and the round trip from the sender reports they echoed. (FFmpeg 5.1 sends only an empty RR at the start, to open NATs: nothing to
// measure, so it is not the peer here.)
func TestReaderReceptionReports(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:avdec_h264", "gst:avdec_aac")
	port := peertest.FreePort(t)
	cfg := fmt.Sprintf("log_level: info\nrtsp:\n  listen: 127.0.0.1:%d\n  rtp_port: 0\nroutes:\n  demo: {source: demo}\n", port)
	path := filepath.Join(t.TempDir(), "meshgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", path)
	if _, err := gw.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	t.Cleanup(func() { _ = gw.Stop(5 * time.Second) })
	url := fmt.Sprintf("rtsp://127.0.0.1:%d/demo", port)
	// 12 s of video: a player's first report comes 2.5-7.5 s in
	udp := peertest.Run(context.Background(), t, "gst-launch-1.0", playGstArgs(url, "udp", 300)...)
	tcp := peertest.Run(context.Background(), t, "gst-launch-1.0", playGstArgs(url, "tcp", 300)...)
	udp.MustPlayGst(40 * time.Second)
	tcp.MustPlayGst(40 * time.Second)
	// the session ends with its TEARDOWN (or its connection); the log lines follow at once
	var lines [][]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		lines = receptionRE.FindAllStringSubmatch(gw.Output(), -1)
		if len(lines) >= 4 { // two readers, two tracks
			break
		}
	}
	tracks := map[string]bool{}
	for _, m := range lines {
		t.Log(m[0])
		reports, _ := strconv.Atoi(m[3])
		lost, _ := strconv.Atoi(m[4])
		jitter, err1 := time.ParseDuration(m[5])
		rtt, err2 := time.ParseDuration(m[6])
		// a report may count a duplicate as received, which makes the cumulative loss negative
		// (RFC 3550 §6.4.1); on loopback it stays near 0
		if reports < 1 || lost < -10 || lost > 50 || err1 != nil || err2 != nil || jitter > time.Second || rtt > time.Second {
			t.Errorf("implausible reception line: %s", m[0])
		}
		transport := "udp"
		if strings.Contains(m[0], "transport=tcp") {
			transport = "tcp"
		}
		tracks[transport+"/"+m[2]] = true
	}
	for _, want := range []string{"udp/0", "udp/1", "tcp/0", "tcp/1"} {
		if !tracks[want] {
			t.Errorf("no reception logged for %s (got %v)\n%s", want, tracks, playTail(gw.Output(), 3000))
		}
	}
}

// TestPublisherReceiverReports: a GStreamer publisher over UDP gets RTCP receiver reports from
// the node about each of its streams (RTCP ends at each hop, DESIGN §4): tshark sees RRs leave
// the node's RTCP port with a report block that echoes the publisher's own sender reports.
func TestPublisherReceiverReports(t *testing.T) {
	peertest.Require(t, "tshark", "gst-launch-1.0", "gst:rtspclientsink", "gst:x264enc", "gst:videotestsrc")
	g := startGateway(t, "rtsp:\n  listen: LISTEN\nroutes:\n  pub:\n    source: publisher\n")
	port := g.Node.UDP().RTCPPort()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cp := peertest.Run(ctx, t, "tshark", "-l", "-n", "-i", "lo", "-a", "duration:16", "-f", fmt.Sprintf("udp and src port %d", port),
		"-d", fmt.Sprintf("udp.port==%d,rtcp", port), "-T", "fields", "-E", "separator=;",
		"-e", "rtcp.pt", "-e", "rtcp.ssrc.identifier", "-e", "rtcp.ssrc.cum_nr", "-e", "rtcp.ssrc.lsr")
	time.Sleep(time.Second) // tshark needs a moment to open the interface
	pub := peertest.Run(ctx, t, "gst-launch-1.0", rtspclientsinkArgs(g.URL+"pub", "udp", 13, false)...)
	_ = cp.Wait(30 * time.Second)
	pub.Kill() // rtspclientsink may never end after EOS (README "Tests"); the capture is what counts
	rrs, echoed := 0, 0
	for _, l := range strings.Split(cp.Output(), "\n") {
		f := strings.Split(strings.TrimSpace(l), ";")
		if len(f) != 4 || !strings.HasPrefix(f[0], "201") || f[1] == "" {
			continue
		}
		rrs++
		if f[3] != "" && f[3] != "0" && f[3] != "0x00000000" {
			echoed++
		}
	}
	t.Logf("the node sent %d receiver reports to the publisher, %d echoing its SR", rrs, echoed)
	if rrs == 0 || echoed == 0 {
		t.Errorf("no receiver report with an echoed SR reached the publisher; capture:\n%s", playTail(cp.Output(), 2000))
	}
}
