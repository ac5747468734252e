package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
)

// The tests here feed rtp:// routes from real senders (FFmpeg prompeg, GStreamer
// rtpst2022-1-fecenc, a GStreamer dual-leg sender) through lossy relays, and read the route
// with an RTSP client over TCP, whose sequence line shows exactly what meshgw output.

// freeRTPBase returns an even UDP port P on 127.0.0.1 with P..P+5 free a moment ago: room for
// media, RTCP and both FEC streams.
func freeRTPBase(t testing.TB) int {
	t.Helper()
	for range 200 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
		if p < 1024 || p+5 > 65535 {
			continue
		}
		var cs []*net.UDPConn
		for o := range 6 {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + o})
			if err != nil {
				break
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			c.Close()
		}
		if len(cs) == 6 {
			return p
		}
	}
	t.Fatal("no free UDP port range P..P+5")
	return 0
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// fecRelays starts lossy relays on R, R+2 and R+4 forwarding to to, to+2 and to+4; only the media
// relay (R) applies media's loss rules. It returns R and the media relay.
func fecRelays(t testing.TB, to int, media peertest.LossyConfig) (int, *peertest.LossyRelay) {
	t.Helper()
	r := freeRTPBase(t)
	media.Listen, media.To = loopback(r), loopback(to)
	m := peertest.StartLossyRelay(t, media)
	for _, o := range []int{2, 4} {
		peertest.StartLossyRelay(t, peertest.LossyConfig{Listen: loopback(r + o), To: loopback(to + o)})
	}
	return r, m
}

// rtpGateway runs a gateway with one route "ts" on source rtp://127.0.0.1:port plus extra route
// keys (indented four spaces).
func rtpGateway(t testing.TB, port int, extra string) *gw {
	t.Helper()
	return startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  ts:\n    source: rtp://127.0.0.1:%d\n%s", port, extra))
}

// rtpSourceStats returns the receive counters of the gateway's rtp:// source flow.
func rtpSourceStats(t testing.TB, g *gw) rtp.RTPSourceStats {
	t.Helper()
	for _, f := range g.Node.Flows() {
		if f.Kind() == node.SourceRTP {
			st, err := g.Node.Stats(f.ID)
			if err != nil || st.RTPSource == nil {
				t.Fatalf("stats of %s: %+v %v", f.ID, st, err)
			}
			return *st.RTPSource
		}
	}
	t.Fatal("no source.rtp flow on the node")
	return rtp.RTPSourceStats{}
}

// seqGaps returns the sequence numbers missing from a reader's line (unwrapped relative to its
// first packet) and the packets it spans.
func seqGaps(p []pktRec) (gaps []int, span int) {
	if len(p) == 0 {
		return nil, 0
	}
	ext, prev := 0, p[0].seq
	for _, r := range p[1:] {
		d := int(int16(r.seq - prev))
		if d <= 0 {
			continue // a repeat or step back would show in checkLine
		}
		for k := 1; k < d; k++ {
			gaps = append(gaps, ext+k)
		}
		ext += d
		prev = r.seq
	}
	return gaps, ext + 1
}

// readUntilQuiet reads the route with a TCP RTSP client until the sender ends and returns
// what it saw.
func readUntilQuiet(t *testing.T, g *gw, sender *peertest.Proc, min int) []pktRec {
	t.Helper()
	r := startGoReader(t, g.URL+"ts", "tcp")
	r.waitCount(0, min, 40*time.Second)
	if err := sender.Wait(60 * time.Second); err != nil {
		t.Fatalf("sender: %v\n%s", err, sender.Tail(2000))
	}
	r.settle(10 * time.Second)
	return r.packets(0)
}

// checkAllRebuilt wants the reader's line without gaps, except in its last tail packets, where
// the sender's end left the matrix without the FEC that would rebuild them.
func checkAllRebuilt(t *testing.T, name string, p []pktRec, tail int, relay *peertest.LossyRelay, st rtp.RTPSourceStats) {
	t.Helper()
	gaps, span := seqGaps(p)
	var early []int
	for _, g := range gaps {
		if g < span-tail {
			early = append(early, g)
		}
	}
	rs := relay.Stats()
	t.Logf("%s: relay dropped %d of %d media packets; meshgw received %d, FEC %d, recovered %d, unrecoverable %d; reader got %d packets over %d seqs, %d missing (%d in the last %d)",
		name, rs.Dropped, rs.Received, st.Received, st.FEC, st.Recovered, st.Unrecoverable, len(p), span, len(gaps), len(gaps)-len(early), tail)
	if rs.Dropped < 10 || st.Recovered == 0 {
		t.Errorf("%s: the test proves nothing: %d dropped, %d recovered", name, rs.Dropped, st.Recovered)
	}
	if len(early) > 0 {
		t.Errorf("%s: reader misses %d packets FEC should have rebuilt (positions %v)", name, len(early), early[:min(len(early), 10)])
	}
	if span < 1000 {
		t.Errorf("%s: reader saw only %d sequence numbers", name, span)
	}
}

// TestRTPSourceFFmpegFEC: FFmpeg's prompeg sends MPEG-TS over RTP with 2D FEC through a relay
// that drops a burst of L media packets every three matrices (each column loses one: within
// what the matrix corrects); the reader's line must have every one of them rebuilt.
func TestRTPSourceFFmpegFEC(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	for _, m := range [][2]int{{5, 5}, {10, 10}} {
		l, d := m[0], m[1]
		t.Run(fmt.Sprintf("%dx%d", l, d), func(t *testing.T) {
			p := freeRTPBase(t)
			g := rtpGateway(t, p, fmt.Sprintf("    fec: {columns: %d, rows: %d}\n", l, d))
			r, relay := fecRelays(t, p, peertest.LossyConfig{Burst: l, BurstEvery: 3 * l * d})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ff := peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning", "-re",
				"-f", "lavfi", "-i", "testsrc=size=640x480:rate=25", "-t", "8",
				"-c:v", "mpeg2video", "-b:v", "4M", "-minrate", "4M", "-maxrate", "4M", "-bufsize", "1M",
				"-f", "rtp_mpegts", "-fec", fmt.Sprintf("prompeg=l=%d:d=%d", l, d), fmt.Sprintf("rtp://127.0.0.1:%d", r))
			pkts := readUntilQuiet(t, g, ff, 200)
			checkOrdered(t, "reader", pkts)
			checkAllRebuilt(t, "ffmpeg prompeg", pkts, 2*l*d+l, relay, rtpSourceStats(t, g))
		})
	}
}

// checkOrdered wants one SSRC and strictly increasing sequence numbers (gaps are counted by
// checkAllRebuilt, with its tail allowance).
func checkOrdered(t *testing.T, name string, p []pktRec) {
	t.Helper()
	for i := 1; i < len(p); i++ {
		if p[i].ssrc != p[0].ssrc || int16(p[i].seq-p[i-1].seq) <= 0 {
			t.Errorf("%s: packet %d: SSRC %08x seq %d after SSRC %08x seq %d", name, i, p[i].ssrc, p[i].seq, p[0].ssrc, p[i-1].seq)
			return
		}
	}
}

// TestRTPSourceGStreamerFEC: GStreamer's rtpst2022-1-fecenc as the sender (2D and column-only),
// same relay and reader.
func TestRTPSourceGStreamerFEC(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtpst2022-1-fecenc", "gst:x264enc", "gst:mpegtsmux", "gst:rtpmp2tpay")
	for _, tc := range []struct {
		l, d int
		row  bool
	}{{5, 5, true}, {10, 5, false}} {
		t.Run(fmt.Sprintf("%dx%d-row=%t", tc.l, tc.d, tc.row), func(t *testing.T) {
			p := freeRTPBase(t)
			rows := tc.d
			if !tc.row {
				rows = 0 // column FEC only: D comes from the FEC headers
			}
			g := rtpGateway(t, p, fmt.Sprintf("    fec: {columns: %d, rows: %d}\n", tc.l, rows))
			r, relay := fecRelays(t, p, peertest.LossyConfig{Burst: tc.l, BurstEvery: 3 * tc.l * tc.d})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := strings.Fields("-q videotestsrc is-live=true num-buffers=200 pattern=smpte " +
				"! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 " +
				"! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=3000 ! h264parse " +
				"! mpegtsmux alignment=7 ! rtpmp2tpay pt=33 ssrc=0")
			args = append(args, "!", "rtpst2022-1-fecenc", "name=enc", fmt.Sprintf("columns=%d", tc.l), fmt.Sprintf("rows=%d", tc.d),
				fmt.Sprintf("enable-row-fec=%t", tc.row),
				"!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r),
				"enc.fec_0", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r+2), "async=false")
			if tc.row {
				args = append(args, "enc.fec_1", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r+4), "async=false")
			}
			gst := peertest.Run(ctx, t, "gst-launch-1.0", args...)
			pkts := readUntilQuiet(t, g, gst, 200)
			checkOrdered(t, "reader", pkts)
			checkAllRebuilt(t, "gstreamer fecenc", pkts, 2*tc.l*tc.d+tc.l, relay, rtpSourceStats(t, g))
		})
	}
}

// gstDualLeg starts GStreamer sending identical MPEG-TS over RTP packets to two addresses
// (PEERS.md §9.1) for secs seconds.
func gstDualLeg(ctx context.Context, t *testing.T, secs int, a, b netip.AddrPort) *peertest.Proc {
	args := strings.Fields(fmt.Sprintf("-q videotestsrc is-live=true num-buffers=%d pattern=smpte "+
		"! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 "+
		"! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=3000 ! h264parse "+
		"! mpegtsmux alignment=7 ! rtpmp2tpay pt=33 ! multiudpsink clients=%s,%s", secs*25, a, b))
	return peertest.Run(ctx, t, "gst-launch-1.0", args...)
}

// liveLiveSetup runs a gateway merging two legs, each fed through its own relay.
func liveLiveSetup(t *testing.T, c1, c2 peertest.LossyConfig) (*gw, *peertest.LossyRelay, *peertest.LossyRelay) {
	p1, p2 := freeRTPBase(t), freeRTPBase(t)
	for p2 >= p1-1 && p2 <= p1+1 {
		p2 = freeRTPBase(t)
	}
	// Class C: on a busy 2-core VM the goroutines reading the two legs (and the two relays) can
	// drift tens of milliseconds apart; the skew must cover that, as it covers path delay.
	g := rtpGateway(t, p1, fmt.Sprintf("    live_live: {leg2: \"rtp://127.0.0.1:%d\", skew: C}\n", p2))
	c1.To, c2.To = loopback(p1), loopback(p2)
	return g, peertest.StartLossyRelay(t, c1), peertest.StartLossyRelay(t, c2)
}

// TestRTPSourceLiveLive: GStreamer sends one stream on two legs, each relay dropping 10 % of
// the packets independently; the reader must miss exactly the packets both legs lost. Then one
// leg is cut for 5 s: the reader must miss nothing.
func TestRTPSourceLiveLive(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:x264enc", "gst:mpegtsmux", "gst:rtpmp2tpay", "gst:multiudpsink")
	t.Run("two-lossy-legs", func(t *testing.T) {
		g, r1, r2 := liveLiveSetup(t, peertest.LossyConfig{Random: 0.10, Seed: 1}, peertest.LossyConfig{Random: 0.10, Seed: 2})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pkts := readUntilQuiet(t, g, gstDualLeg(ctx, t, 8, r1.Addr(), r2.Addr()), 200)
		both := intersect(r1.Dropped(), r2.Dropped())
		gaps, span := seqGaps(pkts)
		st := rtpSourceStats(t, g)
		t.Logf("leg 1 dropped %d, leg 2 dropped %d, both %d; reader got %d packets over %d seqs, %d missing; legs %+v",
			len(r1.Dropped()), len(r2.Dropped()), len(both), len(pkts), span, len(gaps), st.Legs)
		if len(r1.Dropped()) < 100 || len(r2.Dropped()) < 100 || span < 1000 {
			t.Fatalf("the test proves nothing: drops %d/%d over %d", len(r1.Dropped()), len(r2.Dropped()), span)
		}
		checkOnlyBothLost(t, pkts, gaps, span, both)
		if len(st.Legs) != 2 || st.Legs[0].Lost == 0 || st.Legs[1].Lost == 0 {
			t.Errorf("per-leg counters %+v", st.Legs)
		}
	})
	t.Run("leg-cut-5s", func(t *testing.T) {
		g, r1, r2 := liveLiveSetup(t, peertest.LossyConfig{}, peertest.LossyConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		gst := gstDualLeg(ctx, t, 10, r1.Addr(), r2.Addr())
		r := startGoReader(t, g.URL+"ts", "tcp")
		r.waitCount(0, 200, 40*time.Second)
		r1.Cut(5 * time.Second)
		cutAt := time.Now()
		if err := gst.Wait(60 * time.Second); err != nil {
			t.Fatalf("sender: %v\n%s", err, gst.Tail(2000))
		}
		r.settle(10 * time.Second)
		pkts := r.packets(0)
		gaps, span := seqGaps(pkts)
		st := rtpSourceStats(t, g)
		t.Logf("leg 1 cut for 5s (%v before the sender ended), dropped %d; reader got %d packets over %d seqs, %d missing; legs %+v",
			time.Since(cutAt).Round(time.Millisecond), len(r1.Dropped()), len(pkts), span, len(gaps), st.Legs)
		if len(r1.Dropped()) < 500 {
			t.Errorf("the cut dropped only %d packets", len(r1.Dropped()))
		}
		if len(gaps) != 0 {
			t.Errorf("reader misses %d packets while one leg was cut: %v", len(gaps), gaps[:min(10, len(gaps))])
		}
		checkLine(t, "reader", pkts)
	})
}

func intersect(a, b []uint16) []uint16 {
	in := map[uint16]bool{}
	for _, s := range a {
		in[s] = true
	}
	var out []uint16
	for _, s := range b {
		if in[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// checkOnlyBothLost finds the offset between the reader's sequence line (which meshgw's hub
// rewrote) and the sender's, and wants the reader's gaps to be exactly the packets both legs
// lost within the part of the stream the reader saw.
func checkOnlyBothLost(t *testing.T, pkts []pktRec, gaps []int, span int, both []uint16) {
	t.Helper()
	first := pkts[0].seq
	// reader seq of gap g is first+g; the sender's seq is that minus off.
	inB := map[uint16]bool{}
	for _, s := range both {
		inB[s] = true
	}
	if len(gaps) == 0 {
		if len(both) > 3 {
			t.Errorf("reader misses nothing but %d packets were lost on both legs: were they outside its window?", len(both))
		}
		return
	}
	for _, b := range both {
		off := first + uint16(gaps[0]) - b
		ok := true
		for _, g := range gaps {
			if !inB[first+uint16(g)-off] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		// every packet lost on both legs inside the reader's window is a gap
		gapSet := map[int]bool{}
		for _, g := range gaps {
			gapSet[g] = true
		}
		var missed []uint16
		for _, s := range both {
			if g := int(s + off - first); g > 0 && g < span && !gapSet[g] {
				missed = append(missed, s)
			}
		}
		if len(missed) > 0 {
			t.Errorf("lost on both legs but not missing at the reader (rebuilt from nothing?): %v", missed)
		}
		t.Logf("reader gaps = the %d packets both legs lost (offset %d)", len(gaps), off)
		return
	}
	t.Errorf("reader misses packets that a leg delivered: gaps %v, lost on both %v", gaps[:min(10, len(gaps))], both[:min(10, len(both))])
}

// TestRTPSourceMulticast runs the gateway binary on one host (network namespace) with a route
// joining a multicast group on its interface, and FFmpeg on the other host sending MPEG-TS over
// RTP with prompeg FEC to that group; a reader on the second host plays the route over TCP.
func TestRTPSourceMulticast(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	peertest.RequireNetns(t)
	nn := peertest.NewNetns(t, "mgwrtp")
	srv, cli := nn.Hosts[0], nn.Hosts[1]
	cfg := fmt.Sprintf(`log_level: info
rtsp:
  listen: %s:8554
  rtp_port: 0
routes:
  ts:
    source: rtp://239.255.9.1:5000
    source_interface: %s
    fec: {columns: 5, rows: 5}
`, srv.Addr, srv.Dev)
	path := filepath.Join(t.TempDir(), "meshgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gwp := srv.Run(context.Background(), t, meshgwBinary(t), "run", "-c", path)
	if _, err := gwp.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v\n%s", err, gwp.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ff := cli.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc=size=640x480:rate=25", "-t", "8",
		"-c:v", "mpeg2video", "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M",
		"-f", "rtp_mpegts", "-fec", "prompeg=l=5:d=5:ttl=1", "rtp://239.255.9.1:5000?ttl=1")
	rd := cli.Run(ctx, t, "ffmpeg", "-rtsp_transport", "tcp", "-i", fmt.Sprintf("rtsp://%s:8554/ts", srv.Addr),
		"-t", "4", "-f", "null", "-")
	if err := rd.Wait(40 * time.Second); err != nil {
		t.Fatalf("reader: %v\n%s\ngateway:\n%s", err, rd.Tail(2000), gwp.Tail(2000))
	}
	if n, ok := peertest.FFmpegFrames(rd.Output()); !ok || n < 50 {
		t.Errorf("reader decoded %d frames, want >= 50\n%s", n, rd.Tail(2000))
	}
	_ = ff.Wait(30 * time.Second)
	if err := gwp.Stop(5 * time.Second); err != nil && !gwp.Exited() {
		t.Errorf("gateway stop: %v", err)
	}
	if m := regexp.MustCompile(`msg="rtp source stopped".*received=(\d+).*fec=(\d+)`).FindStringSubmatch(gwp.Output()); m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("no summary with media and FEC received over multicast: %v\n%s", m, gwp.Tail(3000))
	} else {
		t.Logf("gateway summary: received %s media, %s FEC datagrams", m[1], m[2])
	}
}

// TestRTPSourceSDPH264FEC: GStreamer sends H.264 (PT 96, packets of every size, markers) with
// 2D FEC; the route describes it with an sdp: file. The reader must get an H.264 track and every
// packet the relay dropped.
func TestRTPSourceSDPH264FEC(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtpst2022-1-fecenc", "gst:x264enc", "gst:rtph264pay")
	p := freeRTPBase(t)
	sdp := filepath.Join(t.TempDir(), "cam.sdp")
	if err := os.WriteFile(sdp, []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := rtpGateway(t, p, fmt.Sprintf("    sdp: %s\n    fec: {columns: 5, rows: 5}\n", sdp))
	r, relay := fecRelays(t, p, peertest.LossyConfig{Burst: 5, BurstEvery: 75})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := strings.Fields("-q videotestsrc is-live=true num-buffers=200 pattern=smpte ! video/x-raw,width=640,height=480,framerate=25/1 " +
		"! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=3000 ! h264parse " +
		"! rtph264pay pt=96 ssrc=0 mtu=1200 config-interval=-1 ! rtpst2022-1-fecenc name=enc columns=5 rows=5")
	args = append(args, "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r),
		"enc.fec_0", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r+2), "async=false",
		"enc.fec_1", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", r+4), "async=false")
	gst := peertest.Run(ctx, t, "gst-launch-1.0", args...)
	rd := startGoReader(t, g.URL+"ts", "tcp")
	if len(rd.medias) != 1 || len(rd.medias[0].Formats) != 1 || rd.medias[0].Formats[0].Codec() != "H264" {
		t.Fatalf("reader's description: %d medias, formats %v", len(rd.medias), rd.medias[0].Formats)
	}
	rd.waitCount(0, 200, 40*time.Second)
	if err := gst.Wait(60 * time.Second); err != nil {
		t.Fatalf("sender: %v\n%s", err, gst.Tail(2000))
	}
	rd.settle(10 * time.Second)
	pkts := rd.packets(0)
	checkOrdered(t, "reader", pkts)
	checkAllRebuilt(t, "gstreamer H.264 fecenc", pkts, 55, relay, rtpSourceStats(t, g))
}
