package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtsp/demo"
)

// TestMemifConsumerRestart: a route's packets go to a memif consumer (`meshgw memif`, a
// separate process speaking the memif slave side); the consumer is killed mid-stream and a new
// one connects and gets the stream again, while an ffmpeg RTSP reader of the same route plays
// on undisturbed. A consumer with the wrong secret is refused with the reason.
func TestMemifConsumerRestart(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	dir, err := os.MkdirTemp("", "mgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "memif.sock")
	g := startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
node:
  memif:
    socket: %s
    interfaces:
      - {id: 5, secret: s3cret, route: tv}
routes:
  tv: {source: demo}
`, sock))
	bin := meshgwBinary(t)
	ffDone := make(chan struct{})
	var frames int
	var ffOut string
	go func() {
		defer close(ffDone)
		frames, ffOut = ffmpegFrames(t, "tcp", g.URL+"tv", 8)
	}()

	// consumer A: runs until it has seen packets, then is killed without a word
	a := peertest.Run(context.Background(), t, bin, "memif", "-socket", sock, "-id", "5", "-secret", "s3cret")
	if _, err := a.WaitForOutput(regexp.MustCompile(`packets=[1-9]\d* pkt/s=`), 15*time.Second); err != nil {
		t.Fatalf("consumer A got nothing: %v\n%s", err, a.Output())
	}
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.Done()

	// a wrong secret is refused with the reason
	w := peertest.Run(context.Background(), t, bin, "memif", "-socket", sock, "-id", "5", "-secret", "guess", "-duration", "5s")
	if err := w.Wait(15 * time.Second); err == nil || !strings.Contains(w.Output(), "wrong secret for interface id 5") {
		t.Fatalf("wrong secret: %v\n%s", err, w.Output())
	}

	// consumer B: the restarted consumer is served again (the master may still be noticing that
	// A is gone: B retries like a restarted application would)
	var out string
	for try := 0; ; try++ {
		b := peertest.Run(context.Background(), t, bin, "memif", "-socket", sock, "-id", "5", "-secret", "s3cret", "-duration", "3s")
		err := b.Wait(20 * time.Second)
		out = b.Output()
		if err == nil || try == 5 || !strings.Contains(out, "already has a connected peer") {
			if err != nil {
				t.Fatalf("consumer B: %v\n%s", err, out)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := regexp.MustCompile(`total [\d.]+s packets=(\d+) pkt/s=\S+ bad=0 track0: packets=(\d+) gaps=(\d+) markers=(\d+) track1: packets=(\d+) gaps=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("consumer B's summary missing or has bad buffers:\n%s", out)
	}
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	t.Logf("consumer B: %d packets, video %d (gaps %d, markers %d), audio %d (gaps %d)", num(1), num(2), num(3), num(4), num(5), num(6))
	if num(2) < 50 || num(4) < 10 || num(5) < 10 || num(3) != 0 || num(6) != 0 {
		t.Fatalf("consumer B: too few packets or gaps:\n%s", out)
	}
	<-ffDone
	t.Logf("ffmpeg RTSP reader decoded %d frames over the consumers' restart", frames)
	if frames < 100 {
		t.Fatalf("the RTSP reader decoded %d frames in 8 s, want ≥ 100:\n%s", frames, ffOut)
	}
}

// TestMemifProducerToRTSPReader: a route's packets are taken from one memif interface
// (`meshgw memif -dump`), written back by a producer into another (`meshgw memif -feed`, a
// separate process) that a memif:// route reads, and an ffmpeg RTSP reader of that route decodes
// the video.
func TestMemifProducerToRTSPReader(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	dir, err := os.MkdirTemp("", "mgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	clip, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.sdp"), clip.SDP(), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "memif.sock")
	g := startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
node:
  memif:
    socket: %s
    interfaces:
      - {id: 5, route: tv}
      - {id: 9, secret: feeder}
routes:
  tv: {source: demo}
  fed:
    source: memif://9
    sdp: %s
`, sock, filepath.Join(dir, "demo.sdp")))
	bin := meshgwBinary(t)
	dump := filepath.Join(dir, "tv.dump")
	d := peertest.Run(context.Background(), t, bin, "memif", "-socket", sock, "-id", "5", "-duration", "6s", "-dump", dump)
	if err := d.Wait(30 * time.Second); err != nil {
		t.Fatalf("dump: %v", err)
	}
	total := regexp.MustCompile(`total [\d.]+s packets=(\d+)`).FindStringSubmatch(d.Output())
	if total == nil {
		t.Fatalf("no summary:\n%s", d.Output())
	}
	n, _ := strconv.Atoi(total[1])
	// fed back at the rate it came, so the reader sees real time
	f := peertest.Run(context.Background(), t, bin, "memif", "-socket", sock, "-id", "9", "-secret", "feeder",
		"-feed", dump, "-rate", fmt.Sprint(float64(n)/6))
	time.Sleep(500 * time.Millisecond)
	frames, out := ffmpegFrames(t, "tcp", g.URL+"fed", 4)
	t.Logf("dumped %d packets; ffmpeg decoded %d frames from the memif-fed route", n, frames)
	if err := f.Wait(20 * time.Second); err != nil || !strings.Contains(f.Output(), fmt.Sprintf("fed %d packets", n)) {
		t.Fatalf("feeder: %v\n%s", err, f.Output())
	}
	if frames < 40 {
		t.Fatalf("ffmpeg decoded %d frames from the memif-fed route, want ≥ 40:\n%s", frames, out)
	}
}

// TestMemifTestpmdGetsRoute: DPDK testpmd (rxonly, a memif client of the node) takes a route's
// packets; its own RX counter is compared, as a rate, with what `meshgw memif` counts on a second
// interface of the same route over part of the same time.
func TestMemifTestpmdGetsRoute(t *testing.T) {
	peertest.Require(t, "dpdk-testpmd")
	dir, err := os.MkdirTemp("", "mgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "memif.sock")
	startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
node:
  memif:
    socket: %s
    interfaces:
      - {id: 0, secret: dpdk, route: tv}
      - {id: 1, route: tv}
routes:
  tv: {source: demo}
`, sock))
	bin := meshgwBinary(t) // built before testpmd busy-polls both cores
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pmd := peertest.Run(ctx, t, "dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix="+filepath.Base(dir),
		"--vdev=net_memif0,role=client,id=0,secret=dpdk,socket-abstract=no,socket="+sock,
		"--", "--forward-mode=rxonly", "--stats-period=1", "--nb-cores=1", "--total-num-mbufs=8192")
	// testpmd says nothing when memif connects (that is a debug line): its first non-zero
	// RX count is when packets flow; its window is counted from that stats line's second
	if _, err := pmd.WaitForOutput(regexp.MustCompile(`RX-packets:\s+[1-9]`), 30*time.Second); err != nil {
		t.Fatalf("testpmd got no packets: %v\n%s", err, pmd.Output())
	}
	connected := time.Now().Add(-time.Second)
	tool := peertest.Run(ctx, t, bin, "memif", "-socket", sock, "-id", "1", "-duration", "4s")
	if err := tool.Wait(30 * time.Second); err != nil {
		t.Fatalf("meshgw memif: %v", err)
	}
	m := regexp.MustCompile(`total ([\d.]+)s packets=(\d+)`).FindStringSubmatch(tool.Output())
	if m == nil {
		t.Fatalf("no summary:\n%s", tool.Output())
	}
	window := time.Since(connected).Seconds()
	if err := pmd.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-pmd.Done()
	secs, _ := strconv.ParseFloat(m[1], 64)
	n, _ := strconv.Atoi(m[2])
	rx := regexp.MustCompile(`RX-packets:\s+(\d+)`).FindAllStringSubmatch(pmd.Output(), -1)
	missed := regexp.MustCompile(`RX-missed:\s+(\d+)`).FindAllStringSubmatch(pmd.Output(), -1)
	if rx == nil || missed == nil {
		t.Fatalf("no testpmd counters:\n%s", pmd.Tail(3000))
	}
	got, _ := strconv.Atoi(rx[len(rx)-1][1])
	lost, _ := strconv.Atoi(missed[len(missed)-1][1])
	toolRate, pmdRate := float64(n)/secs, float64(got)/window
	t.Logf("testpmd RX-packets %d (RX-missed %d) in %.1fs = %.0f pkt/s; meshgw memif %d in %.1fs = %.0f pkt/s", got, lost, window, pmdRate, n, secs, toolRate)
	if got == 0 || lost != 0 || pmdRate < 0.7*toolRate || pmdRate > 1.3*toolRate {
		t.Fatalf("testpmd's rate %.0f pkt/s is not the route's %.0f pkt/s (or it missed %d)\n%s", pmdRate, toolRate, lost, pmd.Tail(3000))
	}
}
