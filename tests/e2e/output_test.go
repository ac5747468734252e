package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtsp/demo"
)

// Outputs (routes.*.outputs) checked against real receivers: GStreamer's SMPTE 2022-1 decoder
// rebuilds what a lossy link took from meshgw's FEC output, FFmpeg plays a plain output from an
// SDP, and the two legs of a 2022-7 output carry the same packets.

// rtpCapture records the RTP packets arriving at one UDP socket, by sequence number.
type rtpCapture struct {
	c   *net.UDPConn
	wg  sync.WaitGroup
	mu  sync.Mutex
	pkt map[uint16][]byte
	n   int
}

func captureAt(t *testing.T, port int) *rtpCapture {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	rc := &rtpCapture{c: c, pkt: map[uint16][]byte{}}
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			rc.mu.Lock()
			rc.pkt[binary.BigEndian.Uint16(buf[2:])] = bytes.Clone(buf[:n])
			rc.n++
			rc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); rc.wg.Wait() })
	return rc
}

func (rc *rtpCapture) port() int { return rc.c.LocalAddr().(*net.UDPAddr).Port }

func (rc *rtpCapture) snapshot() map[uint16][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[uint16][]byte, len(rc.pkt))
	for k, v := range rc.pkt {
		out[k] = v
	}
	return out
}

// udpBound reports whether a UDP socket is bound to port (from /proc/net/udp).
func udpBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			return true
		}
	}
	return false
}

// freeTriple is an even port P with P..P+5 free a moment ago (media, RTCP, column and row FEC).
func freeTriple(t *testing.T) int {
	t.Helper()
	for range 200 {
		p, _ := peertest.FreeUDPPair(t)
		if p+5 > 65535 {
			continue
		}
		free := true
		for d := 2; d <= 5; d++ {
			free = free && !udpBound(p+d)
		}
		if free {
			return p
		}
	}
	t.Fatal("no free UDP ports P..P+5")
	return 0
}

// forward copies every datagram arriving at 127.0.0.1:port to dst, until the test ends; false
// when port cannot be bound.
func forward(t *testing.T, port int, dst netip.AddrPort) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return false
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], dst)
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return true
}

// lossyFECPath is a lossy relay for the media at an even port R whose R+2 and R+4 forward the
// FEC streams without loss: what an output's destination must look like (media, +2, +4).
func lossyFECPath(t *testing.T, cfg peertest.LossyConfig, to int) (*peertest.LossyRelay, int) {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	cfg.To = netip.AddrPortFrom(lo, uint16(to))
	for range 200 {
		r := peertest.StartLossyRelay(t, cfg)
		p := int(r.Addr().Port())
		if p%2 == 0 && p+5 <= 65535 && !udpBound(p+1) && !udpBound(p+3) && !udpBound(p+5) &&
			forward(t, p+2, netip.AddrPortFrom(lo, uint16(to+2))) {
			if forward(t, p+4, netip.AddrPortFrom(lo, uint16(to+4))) {
				return r, p
			}
		}
		r.Close()
	}
	t.Fatal("no even relay port R with R+2 and R+4 free")
	return nil, 0
}

// TestOutputFECToGStreamer: meshgw's 2022-1 output, through a relay that drops media packets
// (not FEC), into GStreamer's rtpst2022-1-fecdec: the decoder's output holds the dropped
// packets, rebuilt.
func TestOutputFECToGStreamer(t *testing.T) {
	for _, tc := range []struct {
		name, fec string
		loss      peertest.LossyConfig
		// want is the share of dropped packets the decoder must rebuild: all of them where
		// the matrix can correct the pattern; with random loss a few patterns (two losses in a
		// row and in a column) are beyond 2D FEC. Patterns the matrix corrects may still be
		// given up by GStreamer's decoder when a loaded machine delays the FEC past its latency.
		want float64
	}{
		{"2D-5x5-random-5%", "{columns: 5, rows: 5}", peertest.LossyConfig{Random: 0.05, Seed: 11}, 0.9},
		{"1D-10x5-bursts-of-5", "{columns: 10, rows: 5, mode: column}", peertest.LossyConfig{Burst: 5, BurstEvery: 150}, 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runFECOutput(t, tc.fec, tc.loss, 10)
			if res.considered < 10 {
				t.Fatalf("only %d drops inside the window: the test does not test FEC", res.considered)
			}
			if share := float64(res.rebuilt) / float64(res.considered); share < tc.want {
				t.Errorf("GStreamer rebuilt %d of %d dropped packets (%.0f %%), want at least %.0f %%", res.rebuilt, res.considered, 100*share, 100*tc.want)
			}
		})
	}
}

// fecResult is one run of an FEC output through a lossy relay into GStreamer's decoder.
type fecResult struct {
	window     int // sequence numbers inside the window looked at
	considered int // of them dropped by the relay
	rebuilt    int // of those, in the decoder's output
}

// runFECOutput publishes secs seconds into a route whose output (with fec, a YAML mapping) goes
// through a relay dropping media per loss into GStreamer's rtpst2022-1-fecdec, and counts what
// the decoder rebuilt of what the relay dropped, two matrices' worth of packets away from either
// end (FEC for the first packets may predate the decoder; the last ones' column FEC may still
// be coming).
func runFECOutput(t *testing.T, fec string, loss peertest.LossyConfig, secs int) fecResult {
	t.Helper()
	peertest.Require(t, "gst-launch-1.0", "gst:rtpst2022-1-fecdec")
	back := captureAt(t, 0)
	in := freeTriple(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+50)*time.Second)
	defer cancel()
	udpsrc := func(port int) []string {
		return []string{"udpsrc", "address=127.0.0.1", fmt.Sprintf("port=%d", port), "buffer-size=4194304", "caps=application/x-rtp"}
	}
	args := append([]string{"-q"}, udpsrc(in)...)
	args = append(args, "!", "rtpst2022-1-fecdec", "name=dec", "size-time=2000000000",
		"!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", back.port()), "sync=false")
	args = append(append(args, udpsrc(in+2)...), "!", "dec.fec_0")
	args = append(append(args, udpsrc(in+4)...), "!", "dec.fec_1")
	gst := peertest.Run(ctx, t, "gst-launch-1.0", args...)
	for deadline := time.Now().Add(20 * time.Second); !(udpBound(in) && udpBound(in+2) && udpBound(in+4)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || gst.Exited() {
			t.Fatalf("GStreamer did not bind its ports: %s", gst.Tail(2000))
		}
	}
	relay, r := lossyFECPath(t, loss, in)
	// A publisher route: its output starts when the publisher records.
	g := startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
routes:
  tv:
    source: publisher
    outputs:
      - url: rtp://127.0.0.1:%d
        fec: %s
`, r, fec))
	pub := busyPublisher(ctx, t, g.URL+"tv", secs)
	_ = pub.Wait(time.Duration(secs+40) * time.Second)
	time.Sleep(500 * time.Millisecond) // the decoder's last output
	got := back.snapshot()
	dropped := relay.Dropped()
	st := relay.Stats()
	if len(got) < 200*secs {
		t.Fatalf("GStreamer passed on only %d packets (relay: %+v): %s", len(got), st, gst.Tail(2000))
	}
	var lo, hi uint16
	first := true
	for s := range got {
		if first || int16(s-lo) < 0 {
			lo = s
		}
		if first || int16(s-hi) > 0 {
			hi = s
		}
		first = false
	}
	lo, hi = lo+100, hi-100
	res := fecResult{window: int(hi-lo) + 1}
	var missing []uint16
	for _, s := range dropped {
		if int16(s-lo) < 0 || int16(hi-s) < 0 {
			continue
		}
		res.considered++
		if _, ok := got[s]; ok {
			res.rebuilt++
		} else {
			missing = append(missing, s)
		}
	}
	t.Logf("fec %s, loss %+v: relay %+v; GStreamer output %d packets (seq %d..%d); of %d dropped inside, %d rebuilt; not: %v",
		fec, loss, st, len(got), lo-100, hi+100, res.considered, res.rebuilt, missing)
	return res
}

// TestOutputFECTable measures the residual loss of meshgw's FEC output decoded by GStreamer
// (MESHGW_PROTECT_TABLE=1 go test ./tests/e2e -run TestOutputFECTable -v).
func TestOutputFECTable(t *testing.T) {
	if os.Getenv("MESHGW_PROTECT_TABLE") == "" {
		t.Skip("set MESHGW_PROTECT_TABLE=1 to measure")
	}
	losses := peertest.TableLosses()
	fecs := []struct{ name, yaml string }{
		{"1D 5×5", "{columns: 5, rows: 5, mode: column}"},
		{"2D 5×5", "{columns: 5, rows: 5}"},
		{"1D 10×10", "{columns: 10, rows: 10, mode: column}"},
		{"2D 10×10", "{columns: 10, rows: 10}"},
	}
	var rows []string
	for _, l := range losses {
		row := "| " + l.Name
		for _, f := range fecs {
			var res fecResult
			t.Run(l.Name+"/"+f.name, func(t *testing.T) { res = runFECOutput(t, f.yaml, l.Cfg, 8) })
			row += fmt.Sprintf(" | %.2f %% → %.3f %%", 100*float64(res.considered)/float64(max(res.window, 1)),
				100*float64(res.considered-res.rebuilt)/float64(max(res.window, 1)))
		}
		rows = append(rows, row+" |")
	}
	head := "| induced loss"
	for _, f := range fecs {
		head += " | " + f.name
	}
	t.Logf("meshgw FEC output → lossy relay (media only) → GStreamer rtpst2022-1-fecdec; cells: loss on the link → residual after the decoder\n%s |\n|---|---|---|---|---|\n%s",
		head, strings.Join(rows, "\n"))
}

// busyPublisher publishes secs seconds of noisy 720p H.264 at about 5 Mbit/s (some 500 packets/s,
// so a few seconds hold thousands of packets) over RTSP/TCP, without audio.
func busyPublisher(ctx context.Context, t *testing.T, url string, secs int) *peertest.Proc {
	t.Helper()
	peertest.Require(t, "ffmpeg")
	return peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", fmt.Sprint(secs),
		"-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-b:v", "5M", "-maxrate", "5M", "-bufsize", "2M", "-g", "25", "-pix_fmt", "yuv420p", "-an",
		"-f", "rtsp", "-rtsp_transport", "tcp", url)
}

// TestOutput2022_7Legs: both legs of a 2022-7 output carry identical packets (same SSRC, sequence
// numbers, timestamps and payloads, byte for byte).
func TestOutput2022_7Legs(t *testing.T) {
	a, _ := peertest.FreeUDPPair(t)
	legA := captureAt(t, a)
	b, _ := peertest.FreeUDPPair(t)
	legB := captureAt(t, b)
	startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
routes:
  tv:
    source: demo
    outputs:
      - {url: rtp://127.0.0.1:%d, leg2: rtp://127.0.0.1:%d}
`, a, b))
	time.Sleep(4 * time.Second)
	ga, gb := legA.snapshot(), legB.snapshot()
	if len(ga) < 80 || len(gb) < 80 { // the demo's video runs at about 28 packets/s
		t.Fatalf("legs got %d and %d packets", len(ga), len(gb))
	}
	same, onlyA, onlyB := 0, 0, 0
	for s, pa := range ga {
		pb, ok := gb[s]
		if !ok {
			onlyA++
			continue
		}
		if !bytes.Equal(pa, pb) {
			t.Fatalf("seq %d differs between the legs:\n%x\n%x", s, pa[:min(len(pa), 32)], pb[:min(len(pb), 32)])
		}
		same++
	}
	for s := range gb {
		if _, ok := ga[s]; !ok {
			onlyB++
		}
	}
	t.Logf("legs: %d identical packets, %d only on leg 1, %d only on leg 2 (in flight at the snapshot)", same, onlyA, onlyB)
	// The snapshots are taken one after the other while packets flow: a few at the end may be
	// on one leg only, never more.
	if onlyA > 20 || onlyB > 20 {
		t.Errorf("%d packets only on leg 1, %d only on leg 2", onlyA, onlyB)
	}
}

// TestOutputFFmpegPlays: FFmpeg reads a plain output (no FEC) with an SDP naming its ports and
// decodes the video.
func TestOutputFFmpegPlays(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	p := freeTriple(t) // video at P (RTCP P+1), audio at P+2
	clip, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	sdp := string(clip.SDP())
	sdp = strings.Replace(sdp, "c=IN IP4 0.0.0.0", "c=IN IP4 127.0.0.1", 1)
	sdp = strings.Replace(sdp, "m=video 0 ", fmt.Sprintf("m=video %d ", p), 1)
	sdp = strings.Replace(sdp, "m=audio 0 ", fmt.Sprintf("m=audio %d ", p+2), 1)
	file := filepath.Join(t.TempDir(), "out.sdp")
	if err := os.WriteFile(file, []byte(sdp), 0o644); err != nil {
		t.Fatal(err)
	}
	startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
routes:
  tv:
    source: demo
    outputs:
      - url: rtp://127.0.0.1:%d
`, p))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ff := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-protocol_whitelist", "file,udp,rtp", "-i", file,
		"-t", "4", "-map", "0:v", "-f", "null", "-")
	_ = ff.Wait(40 * time.Second)
	out := ff.Output()
	n, _ := peertest.FFmpegFrames(out)
	t.Logf("ffmpeg decoded %d frames from the output", n)
	if n < 40 {
		t.Fatalf("ffmpeg decoded %d frames from the plain RTP output, want ≥ 40:\n%s", n, out)
	}
}

// TestClusterOutputFailover: an output is sent from its stream's ingest node; when that node is
// killed, the stream is re-ingested on another node and the output moves with it, so the
// destination keeps receiving.
func TestClusterOutputFailover(t *testing.T) {
	c := newCluster(t, func(c *cluster) string {
		return fmt.Sprintf("  tv: {source: demo, node: node-a, outputs: [{url: \"rtp://%s:5000\"}]}\n", c.p1.Addr)
	})
	c.waitLog(c.ctlP, `msg="output started".*route=tv.*node=node-a`, 20*time.Second)
	ctx := context.Background()
	cp := c.p1.Run(ctx, t, "tshark", "-n", "-i", peertest.NetnsDev, "-a", "duration:14",
		"-f", "udp and dst port 5000", "-d", "udp.port==5000,rtp",
		"-T", "fields", "-E", "separator=,", "-E", "aggregator=|", "-e", "frame.time_epoch", "-e", "ip.src",
		"-e", "rtp.ssrc", "-e", "rtp.seq", "-e", "udp.dstport", "-e", "udp.length")
	time.Sleep(4 * time.Second)
	killed := time.Now()
	_ = c.aP.Signal(syscall.SIGKILL)
	c.waitLog(c.ctlP, `msg="reader moved".*route=tv.*from=node-a`, 15*time.Second)
	moved := time.Since(killed)
	pkts := parseCapture(result(cp, 40*time.Second))
	srcs := map[string]int{}
	for _, p := range pkts {
		srcs[p.src]++
	}
	t.Logf("output moved %v after the kill; destination got %d packets by sender %v", moved.Round(time.Millisecond), len(pkts), srcs)
	if srcs[c.a.Addr.String()] < 50 || srcs[c.b.Addr.String()] < 50 {
		t.Errorf("packets by sender %v: want the output from node-a, then from node-b", srcs)
	}
}

// TestClusterOutputControlRestart: the control is killed and restarted; the node keeps sending
// the output all along, and the new control adopts it instead of starting another.
func TestClusterOutputControlRestart(t *testing.T) {
	c := newCluster(t, func(c *cluster) string {
		return fmt.Sprintf("  tv: {source: demo, node: node-a, outputs: [{url: \"rtp://%s:5000\"}]}\n", c.p1.Addr)
	})
	c.waitLog(c.ctlP, `msg="output started".*route=tv.*node=node-a`, 20*time.Second)
	cp := c.p1.Run(context.Background(), t, "tshark", "-n", "-i", peertest.NetnsDev, "-a", "duration:12",
		"-f", "udp and dst port 5000", "-d", "udp.port==5000,rtp",
		"-T", "fields", "-E", "separator=,", "-E", "aggregator=|", "-e", "frame.time_epoch", "-e", "ip.src",
		"-e", "rtp.ssrc", "-e", "rtp.seq", "-e", "udp.dstport", "-e", "udp.length")
	time.Sleep(3 * time.Second)
	_ = c.ctlP.Signal(syscall.SIGKILL)
	_ = c.ctlP.Wait(5 * time.Second)
	time.Sleep(time.Second)
	c.ctlP = c.startControl()
	c.waitLog(c.ctlP, `msg="state rebuilt from nodes"`, 20*time.Second)
	pkts := parseCapture(result(cp, 40*time.Second))
	srcs, gap, missing, ssrcs := lineReport(t, pkts)
	t.Logf("control restart: destination got %d packets from %v, %d SSRCs, largest silence %v, %d missing", len(pkts), srcs, ssrcs, gap.Round(time.Millisecond), missing)
	// A restart that touched the output would silence it for the startup grace (2 s) at least;
	// a few packets lost to a loaded machine are not what this test is about.
	if len(pkts) < 150 || ssrcs != 1 || gap > time.Second || missing > 10 {
		t.Errorf("the output did not run through the control restart on one line")
	}
	time.Sleep(2 * time.Second) // the adopted stream's outputs are checked after the grace
	if n := strings.Count(c.ctlP.Output(), `msg="output started"`); n != 0 {
		t.Errorf("the restarted control started %d outputs; it should adopt node-a's:\n%s", n, playTail(c.ctlP.Output(), 3000))
	}
}
