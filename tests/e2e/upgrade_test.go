package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestUpgradeRun upgrades `meshgw run -upgrade-socket` twice while ffmpeg, rtspsrc and Go readers
// play the demo over UDP and TCP (and ffmpeg over RTSPS): first by starting a successor with the same flags, then by SIGUSR2 to
// that successor (which starts its own). The listeners pass over the Unix socket; every reader
// stays on the process it connected to, which drains and exits when its last reader leaves.
//   - no ffmpeg reader exits, and the Go readers' lines (one per track) have no sequence gap and
//     no pause over a second across both upgrades;
//   - a reader that connects after the first upgrade is served by the successor (it plays while
//     the first process drains), and one after the second by the third process;
//   - with a fixed rtsp.rtp_port, held by the draining predecessor, the successor takes a free pair;
//   - a prober's DESCRIBEs, back to back through both upgrades, are all answered;
//   - once its readers leave, each predecessor logs that it drained and exits.
func TestUpgradeRun(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:rtph264depay", "gst:avdec_h264", "gst:fpsdisplaysink")
	port := peertest.FreePort(t)
	url := fmt.Sprintf("rtsp://127.0.0.1:%d/demo", port)
	dir := t.TempDir()
	file := filepath.Join(dir, "meshgw.yaml")
	sock := filepath.Join(dir, "upgrade.sock")
	certFile, keyFile, ca := selfSigned(t, dir, "gw")
	saddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	// a fixed RTP/RTCP pair, which a successor cannot bind while its predecessor drains on it,
	// and RTSPS, whose listener passes too while its connections stay where they are
	writeConf := func(rtpPort int) {
		conf := strings.Replace(reloadConfig(port, "  demo: {source: demo}\n"), "rtp_port: 0", fmt.Sprintf("rtp_port: %d", rtpPort), 1)
		conf = strings.Replace(conf, "routes:\n", fmt.Sprintf("rtsps:\n  listen: %s\n  cert: %s\n  key: %s\nroutes:\n", saddr, certFile, keyFile), 1)
		if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := func() *peertest.Proc {
		p := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", file, "-upgrade-socket", sock, "-upgrade-drain", "60s")
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
		return p
	}
	wait := func(p *peertest.Proc, re string, what string) {
		t.Helper()
		if _, err := p.WaitForOutput(regexp.MustCompile(re), 15*time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, tail(p.Output()))
		}
	}
	// A free pair can be taken by another program on this busy machine before meshgw binds it:
	// try again with another.
	var a *peertest.Proc
	var rtpPort int
	for try := 0; ; try++ {
		rtpPort, _ = peertest.FreeUDPPair(t)
		writeConf(rtpPort)
		a = start()
		_, err := a.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second)
		if err == nil {
			break
		}
		if try == 2 || !strings.Contains(a.Output(), "address already in use") {
			t.Fatalf("first process: %v\n%s", err, tail(a.Output()))
		}
	}

	ffmpeg := func(transport string) *peertest.Proc {
		return peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-rtsp_transport", transport,
			"-i", url, "-map", "0:v", "-vf", "showinfo", "-f", "null", "-")
	}
	ffUDP, ffTCP := ffmpeg("udp"), ffmpeg("tcp")
	ffTLS := peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-rtsp_transport", "tcp",
		"-i", "rtsps://"+saddr+"/demo", "-map", "0:v", "-vf", "showinfo", "-f", "null", "-")
	for _, ff := range []*peertest.Proc{ffUDP, ffTCP, ffTLS} {
		if _, err := ff.WaitForOutput(regexp.MustCompile(`s:640x360`), 15*time.Second); err != nil {
			t.Fatalf("ffmpeg reader: %v\n%s", err, tail(ff.Output()))
		}
	}
	// rtspsrc readers print how many frames they decoded every half second
	rtspsrc := func(transport string) *peertest.Proc {
		return peertest.Run(ctx, t, "gst-launch-1.0", "-v", "rtspsrc", "location="+url, "protocols="+transport, "latency=100",
			"!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
			"!", "fpsdisplaysink", "video-sink=fakesink", "text-overlay=false", "sync=false")
	}
	gstUDP, gstTCP := rtspsrc("udp"), rtspsrc("tcp")
	goUDP, goTCP := startGoReader(t, url, "udp"), startGoReader(t, url, "tcp")
	goTCP.waitCount(0, 50, 10*time.Second)
	for _, g := range []*peertest.Proc{gstUDP, gstTCP} {
		if _, err := g.WaitForOutput(regexp.MustCompile(`rendered: [1-9]`), 15*time.Second); err != nil {
			t.Fatalf("rtspsrc reader: %v\n%s", err, tail(g.Output()))
		}
	}
	before := map[*peertest.Proc]int{gstUDP: rendered(gstUDP.Output()), gstTCP: rendered(gstTCP.Output())}

	// While the listeners change hands, new players keep being answered: a prober DESCRIBEs
	// back to back through both upgrades and counts what is not answered.
	var asked, refused atomic.Int64
	probeDone := make(chan struct{})
	stopProbe := make(chan struct{})
	go func() {
		defer close(probeDone)
		for {
			select {
			case <-stopProbe:
				return
			default:
			}
			asked.Add(1)
			if !describeOK(url) {
				refused.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// upgrade 1: a successor started with the same flags
	b := start()
	wait(b, `msg="upgrade: predecessor stopped accepting`, "successor")
	wait(a, `msg="upgrade: handed over; draining`, "first process")
	if !strings.Contains(b.Output(), fmt.Sprintf(`msg="upgrade: the configured RTP/RTCP pair is busy (the predecessor drains on it); using a free pair" rtp_port=%d`, rtpPort)) {
		t.Errorf("the successor did not say it took a free pair\n%s", tail(b.Output()))
	}
	late := startGoReader(t, url, "tcp") // served by b: a no longer accepts
	late.waitCount(0, 50, 10*time.Second)

	// upgrade 2: SIGUSR2 makes b start its own successor, whose log goes to b's output
	if err := b.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !waitCond(ctx, 15*time.Second, func() bool {
		return strings.Count(b.Output(), `msg="upgrade: predecessor stopped accepting`) >= 2
	}) {
		t.Fatalf("SIGUSR2: no successor took over\n%s", tail(b.Output()))
	}
	wait(b, `msg="upgrade: handed over; draining`, "second process")
	if !describeOK(url) {
		t.Errorf("the third process does not serve %s", url)
	}
	if st := rtspsStatus(t, saddr, ca, "DESCRIBE rtsps://"+saddr+"/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n"); st != 200 {
		t.Errorf("RTSPS DESCRIBE after the upgrades: %d", st)
	}
	time.Sleep(2 * time.Second) // playing on after both upgrades
	close(stopProbe)
	<-probeDone
	t.Logf("DESCRIBEs during the upgrades: %d, unanswered: %d", asked.Load(), refused.Load())
	if refused.Load() != 0 || asked.Load() < 10 {
		t.Errorf("%d of %d DESCRIBEs during the upgrades were not answered", refused.Load(), asked.Load())
	}

	for name, ff := range map[string]*peertest.Proc{"ffmpeg/udp": ffUDP, "ffmpeg/tcp": ffTCP, "ffmpeg/rtsps": ffTLS, "rtspsrc/udp": gstUDP, "rtspsrc/tcp": gstTCP} {
		if ff.Exited() {
			t.Errorf("%s exited across the upgrades: %s", name, lastLine(ff.Output()))
		}
	}
	for name, g := range map[string]*peertest.Proc{"rtspsrc/udp": gstUDP, "rtspsrc/tcp": gstTCP} {
		n := rendered(g.Output())
		t.Logf("%s: %d frames decoded before the first upgrade, %d after the second", name, before[g], n)
		if n <= before[g] {
			t.Errorf("%s decoded no frame across the upgrades", name)
		}
	}
	for _, r := range []struct {
		name string
		r    *goReader
	}{{"go/udp", goUDP}, {"go/tcp", goTCP}, {"go/tcp after upgrade 1", late}} {
		if err := r.r.Err(); err != nil {
			t.Errorf("%s: session ended: %v", r.name, err)
			continue
		}
		for track := range r.r.medias {
			p := r.r.packets(track)
			big := biggestGap(p)
			t.Logf("%s track %d: %d packets, biggest gap %v", r.name, track, len(p), big.gap)
			checkLine(t, fmt.Sprintf("%s track %d", r.name, track), p)
			if big.gap > time.Second {
				t.Errorf("%s track %d: a gap of %v at packet %d", r.name, track, big.gap, big.i)
			}
		}
	}

	// The first process's readers leave: it drains and exits; b still serves late.
	goUDP.Close()
	goTCP.Close()
	_ = ffUDP.Stop(5 * time.Second)
	_ = ffTCP.Stop(5 * time.Second)
	_ = ffTLS.Stop(5 * time.Second)
	_ = gstUDP.Stop(5 * time.Second)
	_ = gstTCP.Stop(5 * time.Second)
	if err := a.Wait(15 * time.Second); err != nil {
		t.Errorf("first process after its readers left: %v", err)
	}
	if !strings.Contains(a.Output(), `msg="upgrade: drained"`) {
		t.Errorf("first process did not log its drain\n%s", tail(a.Output()))
	}
	if err := late.Err(); err != nil {
		t.Errorf("the reader of the second process ended with the first: %v", err)
	}
	late.Close()
	if !waitCond(ctx, 15*time.Second, func() bool { return strings.Contains(b.Output(), `msg="upgrade: drained"`) }) {
		t.Errorf("second process did not drain after its reader left\n%s", tail(b.Output()))
	}
}

// rendered is the last count of decoded frames fpsdisplaysink printed in out, 0 before any.
func rendered(out string) int {
	m := regexp.MustCompile(`rendered: ([0-9]+)`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestUpgradeRefused: a successor that fails after taking the listeners (its file moves
// rtsp.listen to a port it cannot bind) exits, and the running meshgw serves on without a break;
// SIGUSR2 to a meshgw run without -upgrade-socket is logged and ignored, not fatal.
func TestUpgradeRefused(t *testing.T) {
	port := peertest.FreePort(t)
	url := fmt.Sprintf("rtsp://127.0.0.1:%d/demo", port)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	sock := filepath.Join(dir, "upgrade.sock")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for file, p := range map[string]int{good: port, bad: busy.Addr().(*net.TCPAddr).Port} {
		if err := os.WriteFile(file, []byte(reloadConfig(p, "  demo: {source: demo}\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", good, "-upgrade-socket", sock)
	t.Cleanup(func() { _ = a.Stop(5 * time.Second) })
	if _, err := a.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	r := startGoReader(t, url, "tcp")
	defer r.Close()
	r.waitCount(0, 20, 10*time.Second)

	b := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", bad, "-upgrade-socket", sock)
	if err := b.Wait(20 * time.Second); err == nil {
		t.Fatalf("the successor that cannot listen exited 0\n%s", tail(b.Output()))
	}
	if !strings.Contains(b.Output(), "address already in use") {
		t.Errorf("the successor did not say why it failed\n%s", tail(b.Output()))
	}
	if _, err := a.WaitForOutput(regexp.MustCompile(`msg="upgrade: successor gave up before serving; this process serves on"`), 10*time.Second); err != nil {
		t.Errorf("running meshgw: %v", err)
	}
	if !describeOK(url) {
		t.Errorf("the running meshgw stopped accepting for a successor that failed")
	}
	if err := r.Err(); err != nil {
		t.Errorf("reader ended: %v", err)
	}
	checkLine(t, "reader", r.packets(0))

	// the same meshgw without -upgrade-socket ignores SIGUSR2
	port2 := peertest.FreePort(t)
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte(reloadConfig(port2, "  demo: {source: demo}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	c := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", plain)
	t.Cleanup(func() { _ = c.Stop(5 * time.Second) })
	if _, err := c.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	if err := c.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForOutput(regexp.MustCompile(`msg="SIGUSR2: an upgrade needs meshgw run -upgrade-socket; ignored"`), 10*time.Second); err != nil {
		t.Errorf("SIGUSR2 without -upgrade-socket: %v", err)
	}
	if c.Exited() || !describeOK(fmt.Sprintf("rtsp://127.0.0.1:%d/demo", port2)) {
		t.Errorf("SIGUSR2 without -upgrade-socket ended the gateway\n%s", tail(c.Output()))
	}
}
