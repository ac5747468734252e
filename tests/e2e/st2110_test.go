package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// st2110Clip is the test clip of the ST 2110 tests: 320×240 4:2:2 8-bit (UYVY) at 25 frames/s,
// small enough for seconds of CI and still many packets and split lines per frame.
const (
	st2110W, st2110H = 320, 240
	st2110Rate       = 25
)

// st2110Raw writes n frames of ffmpeg's testsrc as raw UYVY and returns the path and each
// frame's MD5 (hex, as ffmpeg's framemd5 and GStreamer's checksumsink print them).
func st2110Raw(t *testing.T, dir string, n int) (string, map[string]int) {
	t.Helper()
	path := filepath.Join(dir, "src.uyvy")
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
		fmt.Sprintf("testsrc=size=%dx%d:rate=%d", st2110W, st2110H, st2110Rate), "-frames:v", fmt.Sprint(n),
		"-pix_fmt", "uyvy422", "-f", "rawvideo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := st2110W * st2110H * 2
	sums := map[string]int{}
	for i := 0; i+size <= len(b); i += size {
		s := md5.Sum(b[i : i+size])
		sums[hex.EncodeToString(s[:])] = i / size
	}
	if len(sums) != n {
		t.Fatalf("%d distinct frames of %d: testsrc should number them", len(sums), n)
	}
	return path, sums
}

// gstUYVYSender is the gst-launch-1.0 pipeline that plays the raw UYVY clip src in real time
// through rtpvrawpay (PT 96) into the elements of sink.
func gstUYVYSender(src string, sink ...string) []string {
	return append([]string{"-q", "filesrc", "location=" + src, "!",
		"rawvideoparse", "format=uyvy", fmt.Sprintf("width=%d", st2110W), fmt.Sprintf("height=%d", st2110H),
		fmt.Sprintf("framerate=%d/1", st2110Rate), "!", "clocksync", "!", "rtpvrawpay", "pt=96", "!"}, sink...)
}

// st2110SDP is the ST 2110-20 description of the clip, as a sender would publish it, for a
// flow to addr:port.
func st2110SDP(addr string, port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=test clip\r\nt=0 0\r\nm=video %d RTP/AVP 96\r\nc=IN IP4 %s\r\n"+
		"a=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=%d; height=%d; exactframerate=%d; depth=8; "+
		"TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPW\r\na=mediaclk:direct=0\r\n",
		port, addr, st2110W, st2110H, st2110Rate)
}

// checkAllFrames fails unless every frame sent was reassembled complete, allowing only for
// datagrams the kernel dropped at the gateway's socket (counted in /proc/net/udp), which make
// frames incomplete, never late, malformed or missing.
func checkAllFrames(t *testing.T, st st2110.ReassemblerStats, sent int, drops uint64) {
	t.Helper()
	if drops > 0 {
		t.Logf("the kernel dropped %d datagrams at the gateway's socket (a loaded host)", drops)
	}
	ok := st.Malformed == 0 && st.Late == 0 && st.Lost <= drops &&
		(st.Frames == uint64(sent) && st.Incomplete == 0 || drops > 0 && st.Frames+st.Incomplete+drops >= uint64(sent) && st.Frames >= uint64(sent)/2)
	if !ok {
		t.Fatalf("gateway reassembled %d complete frames of %d sent (socket drops %d): %+v", st.Frames, sent, drops, st)
	}
}

// st2110Stats returns the frame counters of the gateway's st2110 source flow (video essence 1).
func st2110Stats(t testing.TB, g *gw) (st2110.ReassemblerStats, node.FlowStats) {
	t.Helper()
	for _, f := range g.Node.Flows() {
		if f.Kind() == node.SourceST2110 {
			st, err := g.Node.Stats(f.ID)
			if err != nil || len(st.ST2110) != 1 {
				t.Fatalf("stats of %s: %+v %v", f.ID, st, err)
			}
			return st.ST2110[0], st
		}
	}
	t.Fatal("no source.st2110 flow on the node")
	return st2110.ReassemblerStats{}, node.FlowStats{}
}

var (
	framemd5Line = regexp.MustCompile(`(?m)^\s*0,\s*-?\d+,\s*-?\d+,\s*\d+,\s*(\d+),\s*([0-9a-f]{32})\s*$`)
	checksumLine = regexp.MustCompile(`(?m)^\d+:\d+:\d+\.\d+ ([0-9a-f]{32})\s*$`)
)

// TestST2110SourceGStreamer: GStreamer's rtpvrawpay sends an RFC 4175 UYVY flow to an
// st2110:// route, described by a hand-written ST 2110 SDP. The gateway reassembles every frame
// (frames = frames sent, none incomplete), and RTSP readers of the route, ffmpeg and GStreamer's
// rtspsrc ! rtpvrawdepay, decode frames whose MD5s are the source's.
func TestST2110SourceGStreamer(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync",
		"gst:rtspsrc", "gst:rtpvrawdepay", "gst:checksumsink")
	const frames = 125
	dir := t.TempDir()
	src, sums := st2110Raw(t, dir, frames)
	port, _ := peertest.FreeUDPPair(t)
	sdpPath := filepath.Join(dir, "cam.sdp")
	if err := os.WriteFile(sdpPath, []byte(st2110SDP("127.0.0.1", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  cam:\n    source: st2110://%s\n", sdpPath))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := peertest.Run(ctx, t, "gst-launch-1.0", gstUYVYSender(src,
		"udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", port))...)
	if !waitCond(ctx, 10*time.Second, func() bool { st, _ := st2110Stats(t, g); return st.Frames >= 3 }) {
		st, _ := st2110Stats(t, g)
		t.Fatalf("no frames reassembled: %+v", st)
	}

	// two readers at once, each for 20 frames (the clip lasts 5 s)
	const read = 20
	ff := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-rtsp_transport", "tcp", "-i", g.URL+"cam",
		"-frames:v", fmt.Sprint(read), "-f", "framemd5", "-")
	gst := peertest.Run(ctx, t, "gst-launch-1.0", "rtspsrc", "location="+g.URL+"cam", "protocols=tcp", "latency=200", "!",
		"rtpvrawdepay", "!", "identity", fmt.Sprintf("eos-after=%d", read), "!", "checksumsink", "hash=md5")
	ffOut := ff.MustSucceed(30 * time.Second)
	gstOut := gst.MustPlayGst(30 * time.Second)
	for _, r := range []struct {
		name string
		re   *regexp.Regexp
		out  string
		col  int
	}{{"ffmpeg", framemd5Line, ffOut, 2}, {"GStreamer", checksumLine, gstOut, 1}} {
		m := r.re.FindAllStringSubmatch(r.out, -1)
		if len(m) < read-1 {
			t.Fatalf("%s RTSP reader decoded %d frames, want %d\n%s", r.name, len(m), read, tail(r.out))
		}
		// the first frame may be partial if the reader's first packet came mid-frame
		for _, l := range m[1:] {
			if _, ok := sums[l[r.col]]; !ok {
				t.Fatalf("%s RTSP reader decoded a frame (MD5 %s) that is none of the source's", r.name, l[r.col])
			}
		}
		t.Logf("%s RTSP reader: %d frames, all equal to source frames (first is frame %d)", r.name, len(m), sums[m[0][r.col]])
	}

	sender.MustSucceed(30 * time.Second)
	var st st2110.ReassemblerStats
	waitCond(ctx, 5*time.Second, func() bool { st, _ = st2110Stats(t, g); return st.Frames+st.Incomplete >= frames })
	_, fs := st2110Stats(t, g)
	t.Logf("gateway reassembler: %+v; 2110-21 reading of GStreamer's (unpaced) flow: %+v", st, fs.ST2110Timing)
	if len(fs.ST2110Timing) != 1 || fs.ST2110Timing[0].Frames < frames/2 {
		t.Errorf("no 2110-21 reading of the flow: %+v", fs.ST2110Timing)
	}
	checkAllFrames(t, st, frames, peertest.UDPDrops(port))
}

// TestST2110SourceDUP: the SDP groups two m= lines a=group:DUP (SMPTE 2022-7). GStreamer sends
// the flow on both legs through lossy relays that each drop 5 % (bursts of 5 in every 100, at
// different places); the gateway merges the legs and reassembles every frame, none incomplete.
func TestST2110SourceDUP(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync")
	const frames = 75
	dir := t.TempDir()
	src, _ := st2110Raw(t, dir, frames)
	p1, _ := peertest.FreeUDPPair(t)
	p2, _ := peertest.FreeUDPPair(t)
	one := st2110SDP("127.0.0.1", p1)
	head, media, _ := strings.Cut(one, "m=")
	sdp := head + "a=group:DUP primary secondary\r\n" +
		"m=" + media + "a=mid:primary\r\n" +
		"m=" + strings.Replace(media, fmt.Sprint(p1), fmt.Sprint(p2), 1) + "a=mid:secondary\r\n"
	sdpPath := filepath.Join(dir, "dup.sdp")
	if err := os.WriteFile(sdpPath, []byte(sdp), 0o600); err != nil {
		t.Fatal(err)
	}
	// class C (450 ms): on a loaded host a relay goroutine can fall behind by more than B's 50 ms
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  cam:\n    source: st2110\n    sdp: %s\n    dup_skew: C\n", sdpPath))
	r1 := peertest.StartLossyRelay(t, peertest.LossyConfig{To: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p1)), Burst: 5, BurstEvery: 100})
	r2 := peertest.StartLossyRelay(t, peertest.LossyConfig{To: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p2)), Burst: 5, BurstEvery: 100, BurstOffset: 50})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := peertest.Run(ctx, t, "gst-launch-1.0", gstUYVYSender(src, "tee", "name=t",
		"!", "queue", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r1.Addr().Port()),
		"t.", "!", "queue", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r2.Addr().Port()))...)
	sender.MustSucceed(30 * time.Second)
	var st st2110.ReassemblerStats
	var fs node.FlowStats
	waitCond(ctx, 5*time.Second, func() bool { st, fs = st2110Stats(t, g); return st.Frames+st.Incomplete >= frames })
	t.Logf("relays dropped %d and %d; legs %+v; reassembler %+v", r1.Stats().Dropped, r2.Stats().Dropped, fs.RTPSource.Legs, st)
	if r1.Stats().Dropped == 0 || r2.Stats().Dropped == 0 {
		t.Fatal("a relay dropped nothing: the test proves no protection")
	}
	// both legs' sockets starve together on a loaded host: only what the kernel dropped at
	// both may be missing
	checkAllFrames(t, st, frames, min(peertest.UDPDrops(p1), peertest.UDPDrops(p2)))
}

// TestST2110Output: a route fed ST 2110 by GStreamer has an st2110: output; ffmpeg reads the
// SDP file the gateway writes for it, and every frame it decodes is one of the source's. The
// SDP is complete ST 2110-20 (the keys ffmpeg's own SDPs lack are there).
func TestST2110Output(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync")
	const frames = 125
	dir := t.TempDir()
	src, sums := st2110Raw(t, dir, frames)
	in, _ := peertest.FreeUDPPair(t)
	out, _ := peertest.FreeUDPPair(t)
	sdpIn := filepath.Join(dir, "in.sdp")
	sdpOut := filepath.Join(dir, "out.sdp")
	if err := os.WriteFile(sdpIn, []byte(st2110SDP("127.0.0.1", in)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  cam:\n    source: st2110://%s\n"+
		"    outputs:\n      - st2110: {video: 127.0.0.1:%d, tp: 2110TPNL}\n        sdp: %s\n", sdpIn, out, sdpOut))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := peertest.Run(ctx, t, "gst-launch-1.0", gstUYVYSender(src,
		"udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", in))...)
	var sdp []byte
	if !waitCond(ctx, 10*time.Second, func() bool { sdp, _ = os.ReadFile(sdpOut); return len(sdp) > 0 }) {
		t.Fatal("the gateway wrote no SDP for its st2110 output")
	}
	for _, want := range []string{"a=rtpmap:96 raw/90000", "exactframerate=25", "colorimetry=BT709", "PM=2110GPM",
		"SSN=ST2110-20:2017", "TP=2110TPNL", "a=ts-refclk:", "a=mediaclk:direct=0", fmt.Sprintf("m=video %d RTP/AVP 96", out)} {
		if !strings.Contains(string(sdp), want) {
			t.Errorf("the output's SDP lacks %q:\n%s", want, sdp)
		}
	}
	const read = 25
	ff := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-protocol_whitelist", "file,udp,rtp", "-buffer_size", "4000000",
		"-i", sdpOut, "-frames:v", fmt.Sprint(read), "-f", "framemd5", "-")
	ffOut := ff.MustSucceed(30 * time.Second)
	m := framemd5Line.FindAllStringSubmatch(ffOut, -1)
	if len(m) < read {
		t.Fatalf("ffmpeg decoded %d frames of the st2110 output, want %d\n%s", len(m), read, tail(ffOut))
	}
	// the first frame may be partial (ffmpeg joined mid-frame), and a UDP reader on a loaded
	// host can lose packets: nine in ten must be exact
	bad := 0
	for _, l := range m[1:] {
		if _, ok := sums[l[2]]; !ok {
			bad++
		}
	}
	if bad > len(m)/10 {
		t.Fatalf("ffmpeg decoded %d of %d frames of the output that are none of the source's", bad, len(m)-1)
	}
	sender.MustSucceed(30 * time.Second)
	for _, f := range g.Node.Flows() {
		if f.Kind() == node.SinkST2110 {
			st, _ := g.Node.Stats(f.ID)
			t.Logf("ffmpeg decoded %d source frames from the output; sender %+v", len(m), *st.ST2110Out)
			if st.ST2110Out.Frames == 0 || st.Errors != 0 {
				t.Errorf("sender stats %+v", *st.ST2110Out)
			}
			return
		}
	}
	t.Error("no sink.st2110 flow on the node")
}

// TestST2110SourceL24: an ST 2110-30-style L24 flow (ffmpeg, 1 ms packets of 48 stereo samples)
// into an st2110:// route; RTSP readers ffmpeg and GStreamer's rtspsrc ! rtpL24depay decode it.
func TestST2110SourceL24(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:rtpL24depay")
	dir := t.TempDir()
	port, _ := peertest.FreeUDPPair(t)
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=pcm\r\nt=0 0\r\nm=audio %d RTP/AVP 97\r\nc=IN IP4 127.0.0.1\r\n"+
		"a=rtpmap:97 L24/48000/2\r\na=ptime:1\r\na=mediaclk:direct=0\r\n", port)
	sdpPath := filepath.Join(dir, "pcm.sdp")
	if err := os.WriteFile(sdpPath, []byte(sdp), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  pcm:\n    source: st2110://%s\n", sdpPath))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// exact 1 ms packets: 48-sample input frames, 12 + 48×6 bytes
	sender := peertest.Run(ctx, t, "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:samples_per_frame=48",
		"-t", "6", "-ac", "2", "-c:a", "pcm_s24be", "-f", "rtp", "-pkt_size", "300", fmt.Sprintf("rtp://127.0.0.1:%d", port))
	if !waitCond(ctx, 10*time.Second, func() bool {
		for _, f := range g.Node.Flows() {
			if f.Kind() == node.SourceST2110 {
				st, _ := g.Node.Stats(f.ID)
				return st.Packets > 100
			}
		}
		return false
	}) {
		t.Fatal("no L24 packets reached the route")
	}
	ff := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-rtsp_transport", "tcp", "-i", g.URL+"pcm", "-t", "2", "-f", "null", "-")
	gst := peertest.Run(ctx, t, "gst-launch-1.0", "rtspsrc", "location="+g.URL+"pcm", "protocols=tcp", "!",
		"rtpL24depay", "!", "identity", "eos-after=1000", "!", "fakesink")
	out := ff.MustSucceed(30 * time.Second)
	if !strings.Contains(out, "pcm_s24be") || !strings.Contains(out, "48000 Hz") || !strings.Contains(out, "stereo") || !strings.Contains(out, "time=00:00:02") {
		t.Errorf("ffmpeg did not decode 2 s of 48 kHz stereo L24 from the route:\n%s", tail(out))
	}
	gst.MustPlayGst(30 * time.Second)
	sender.MustSucceed(30 * time.Second)
}

// TestST2110SourceFFmpeg: ffmpeg's RFC 4175 packetizer (-f rtp -c:v rawvideo, UYVY) sends to an
// st2110:// route; the gateway reassembles every frame sent, none incomplete.
func TestST2110SourceFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	const frames = 75
	dir := t.TempDir()
	src, _ := st2110Raw(t, dir, frames)
	port, _ := peertest.FreeUDPPair(t)
	sdpPath := filepath.Join(dir, "cam.sdp")
	if err := os.WriteFile(sdpPath, []byte(st2110SDP("127.0.0.1", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  cam:\n    source: st2110://%s\n", sdpPath))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	peertest.Run(ctx, t, "ffmpeg", "-v", "error", "-re", "-f", "rawvideo", "-pix_fmt", "uyvy422",
		"-video_size", fmt.Sprintf("%dx%d", st2110W, st2110H), "-framerate", fmt.Sprint(st2110Rate), "-i", src,
		"-c:v", "rawvideo", "-f", "rtp", fmt.Sprintf("rtp://127.0.0.1:%d", port)).MustSucceed(30 * time.Second)
	var st st2110.ReassemblerStats
	waitCond(ctx, 5*time.Second, func() bool { st, _ = st2110Stats(t, g); return st.Frames+st.Incomplete >= frames })
	t.Logf("gateway reassembler: %+v", st)
	checkAllFrames(t, st, frames, peertest.UDPDrops(port))
}

// TestST2110SourceSSM: three hosts on one link. The gateway's route joins a multicast group for
// one sender (a=source-filter, IGMPv3 source-specific); GStreamer on that sender's host and ffmpeg
// on a third host both send RFC 4175 video to the group and port. Only the named sender's frames
// reach the reassembler: every one of them complete, nothing late or malformed from the other.
func TestST2110SourceSSM(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync")
	peertest.RequireNetns(t)
	nn := peertest.NewNetnsN(t, "mgwssm", 3)
	srv, cam, other := nn.Hosts[0], nn.Hosts[1], nn.Hosts[2]
	const frames = 75
	const group = "239.255.21.1"
	dir := t.TempDir()
	src, _ := st2110Raw(t, dir, frames)
	sdp := strings.Replace(st2110SDP(group, 5004), "c=IN IP4 "+group+"\r\n",
		fmt.Sprintf("c=IN IP4 %s/32\r\na=source-filter: incl IN IP4 %s %s\r\n", group, group, cam.Addr), 1)
	sdpPath := filepath.Join(dir, "ssm.sdp")
	cfgPath := filepath.Join(dir, "meshgw.yaml")
	if err := os.WriteFile(sdpPath, []byte(sdp), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("log_level: info\nrtsp:\n  listen: %s:8554\n  rtp_port: 0\nroutes:\n  cam:\n    source: st2110://%s\n    source_interface: %s\n",
		srv.Addr, sdpPath, srv.Dev)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gwp := srv.Run(context.Background(), t, meshgwBinary(t), "run", "-c", cfgPath)
	if _, err := gwp.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v\n%s", err, gwp.Output())
	}
	time.Sleep(300 * time.Millisecond) // the IGMPv3 report
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	intruder := other.Run(ctx, t, "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", st2110W, st2110H, st2110Rate),
		"-t", "5", "-pix_fmt", "uyvy422", "-c:v", "rawvideo", "-f", "rtp", fmt.Sprintf("rtp://%s:5004?ttl=1", group))
	cam.Run(ctx, t, "gst-launch-1.0", gstUYVYSender(src,
		"udpsink", "host="+group, "port=5004", "ttl-mc=1", "multicast-iface="+cam.Dev)...).MustSucceed(30 * time.Second)
	_ = intruder.Wait(30 * time.Second)
	if err := gwp.Stop(5 * time.Second); err != nil && !gwp.Exited() {
		t.Errorf("gateway stop: %v", err)
	}
	m := regexp.MustCompile(`msg="st2110 source stopped".* frames=(\d+) incomplete=(\d+) late=(\d+) late_frames=\d+ lost=(\d+) malformed=(\d+)`).FindStringSubmatch(gwp.Output())
	if m == nil {
		t.Fatalf("no st2110 summary in the gateway's log\n%s", gwp.Tail(3000))
	}
	t.Logf("gateway: frames=%s incomplete=%s late=%s lost=%s malformed=%s", m[1], m[2], m[3], m[4], m[5])
	// The other sender's packets, joined, show as late (its sequence line is behind) or as
	// extra frames. Loss on the veth link of a loaded host only makes frames incomplete.
	complete, _ := strconv.Atoi(m[1])
	incomplete, _ := strconv.Atoi(m[2])
	if complete+incomplete != frames || m[3] != "0" || m[5] != "0" || complete < frames*3/4 {
		t.Errorf("want the %d frames of the filtered-in sender only, nothing late or malformed: %v", frames, m[1:])
	}
}
