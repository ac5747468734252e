package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/internal/peertest"
)

// sourceStats returns the stats of the source flow of route on the gateway's local node.
func sourceStats(t testing.TB, g *gw, route string) node.FlowStats {
	t.Helper()
	for _, f := range g.Node.Flows() {
		if f.Meta["route"] == route && f.Backup() != nil {
			st, err := g.Node.Stats(f.ID)
			if err != nil {
				t.Fatalf("stats of %s: %v", f.ID, err)
			}
			return st
		}
	}
	t.Fatalf("no source flow with a backup for route %s among %d flows", route, len(g.Node.Flows()))
	return node.FlowStats{}
}

// waitStats waits until cond holds on the route's backup stats.
func waitStats(t testing.TB, g *gw, route, what string, timeout time.Duration, cond func(node.BackupStats) bool) node.BackupStats {
	t.Helper()
	var st node.BackupStats
	if !waitCond(context.Background(), timeout, func() bool { st = sourceStats(t, g, route).Backup; return cond(st) }) {
		t.Fatalf("no %s within %v: backup stats %+v", what, timeout, st)
	}
	return st
}

// ffmpegLive is an ffmpeg reader that decodes until stopped, printing its frame count as it goes.
type ffmpegLive struct {
	p *peertest.Proc
}

func startFFmpegLive(t testing.TB, transport, url string) *ffmpegLive {
	t.Helper()
	p := peertest.Run(context.Background(), t, "ffmpeg", "-stats_period", "0.5", "-rtsp_transport", transport, "-i", url, "-f", "null", "-")
	return &ffmpegLive{p: p}
}

// frames is the latest decoded frame count ffmpeg printed.
func (f *ffmpegLive) frames() int {
	n, _ := peertest.FFmpegFrames(f.p.Output())
	return n
}

// waitFrames waits until ffmpeg decoded more than n frames; it fails if ffmpeg ended (a reader
// that would have had to reconnect).
func (f *ffmpegLive) waitFrames(t testing.TB, n int, timeout time.Duration, what string) int {
	t.Helper()
	var got int
	ok := waitCond(context.Background(), timeout, func() bool {
		got = f.frames()
		return got > n || f.p.Exited()
	})
	if f.p.Exited() {
		t.Fatalf("ffmpeg reader ended (%s): %s", what, f.p.Tail(2000))
	}
	if !ok {
		t.Fatalf("ffmpeg decoded %d frames, not more than %d within %v (%s)", got, n, timeout, what)
	}
	return got
}

// TestBackupSwitchCamera: a route pulls a camera with a second camera (other picture size, other
// SSRC) as backup, in auto mode. Killing the primary camera under the readers moves them to the
// backup within backup_stall plus about one GOP, on one unbroken RTP line and without a reconnect;
// the restarted primary takes the stream back, still on that line.
func TestBackupSwitchCamera(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	const (
		stall = time.Second
		gop   = time.Second // 25 frames at 25 fps
	)
	primary := peertest.StartCamera(t, peertest.CameraOpts{GOP: 25})
	backup := peertest.StartCamera(t, peertest.CameraOpts{GOP: 25, Size: "480x270"})
	g := startGateway(t, pullConfig(primary.URL(), fmt.Sprintf(
		"    backup: %s\n    backup_stall: %s\n    reconnect_min: 200ms\n    reconnect_max: 1s\n", backup.URL(), stall)))
	url := g.URL + "cam"

	r := startGoReader(t, url, "tcp")
	video := r.track("video")
	r.waitCount(video, 100, 20*time.Second)
	ff := startFFmpegLive(t, "udp", url)
	ff.waitFrames(t, 25, 30*time.Second, "before the kill")
	st := waitStats(t, g, "cam", "decision for switch mode", 10*time.Second, func(b node.BackupStats) bool { return b.Mode != "auto" })
	if st.Mode != "switch" || st.Active != "primary" || st.Switches != 0 {
		t.Fatalf("two cameras: backup stats %+v, want switch mode on the primary", st)
	}

	primary.Proc().Kill()
	killed := time.Now()
	n0 := len(r.packets(video))
	st = waitStats(t, g, "cam", "switch to the backup", 20*time.Second, func(b node.BackupStats) bool { return b.Active == "backup" })
	r.waitCount(video, n0+200, 20*time.Second)
	p := r.packets(video)
	out := biggestGap(p)
	t.Logf("primary killed: stream on the backup after %v (reason %q); the reader's longest silence %v (budget stall %v + GOP %v)",
		st.LastSwitch.Sub(killed).Round(time.Millisecond), st.LastReason, out.gap.Round(time.Millisecond), stall, gop)
	// generous slack for a loaded 2-core VM: the point is a bounded outage, not a benchmark
	if out.gap > stall+gop+3*time.Second {
		t.Errorf("the reader saw nothing for %v, want within backup_stall %v + one GOP %v (+3s slack)", out.gap, stall, gop)
	}
	if !strings.Contains(st.LastReason, "primary") {
		t.Errorf("switch reason %q does not name the primary", st.LastReason)
	}
	f1 := ff.waitFrames(t, ff.frames()+50, 30*time.Second, "on the backup")

	// counts are relative: a camera starved of CPU on a loaded machine may cause a switch of its own
	sw := st.Switches
	primary.Restart()
	st = waitStats(t, g, "cam", "switch back to the primary", 30*time.Second, func(b node.BackupStats) bool {
		return b.Active == "primary" && b.Switches > sw
	})
	t.Logf("primary back: %+v", st)
	if !strings.Contains(st.LastReason, "delivering again") {
		t.Errorf("after the primary's return: stats %+v, want the last switch for a recovered primary", st)
	}
	n1 := len(r.packets(video))
	r.waitCount(video, n1+200, 20*time.Second)
	ff.waitFrames(t, f1+50, 30*time.Second, "back on the primary")

	// A frozen camera (SIGSTOP) keeps its connection open and sends nothing: only the stall
	// detection can see it.
	if err := primary.Proc().Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	n2 := len(r.packets(video))
	sw = st.Switches
	st = waitStats(t, g, "cam", "switch to the backup on a stall", 20*time.Second, func(b node.BackupStats) bool {
		return b.Active == "backup" && b.Switches > sw
	})
	r.waitCount(video, n2+200, 20*time.Second)
	out = biggestGap(r.packets(video)[n2-1:])
	t.Logf("primary frozen: stream on the backup after %v (reason %q); the reader's longest silence %v",
		st.LastSwitch.Sub(frozen).Round(time.Millisecond), st.LastReason, out.gap.Round(time.Millisecond))
	if st.Active != "backup" || !strings.Contains(st.LastReason, "primary delivered nothing for") {
		t.Errorf("frozen primary: stats %+v, want a switch to the backup for a stall", st)
	}
	if out.gap > stall+gop+3*time.Second {
		t.Errorf("the reader saw nothing for %v, want within backup_stall %v + one GOP %v (+3s slack)", out.gap, stall, gop)
	}
	if st.LastSwitch.Sub(frozen) < stall {
		t.Errorf("switched %v after the freeze, before backup_stall %v", st.LastSwitch.Sub(frozen), stall)
	}
	if err := primary.Proc().Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	sw = st.Switches
	waitStats(t, g, "cam", "switch back after the thaw", 30*time.Second, func(b node.BackupStats) bool {
		return b.Active == "primary" && b.Switches > sw
	})
	r.waitCount(video, len(r.packets(video))+100, 20*time.Second)

	if err := r.Err(); err != nil {
		t.Fatalf("go reader session ended: %v", err)
	}
	for i := range r.medias {
		checkLine(t, fmt.Sprintf("track %d", i), r.packets(i))
	}
	if ff.p.Exited() {
		t.Fatalf("ffmpeg reader ended: %s", ff.p.Tail(2000))
	}
}

// TestBackupDemoFallback: a camera backed up by meshgw's demo stream (same track layout: H.264
// video, AAC audio at 48 kHz): when the camera dies the reader goes on with the demo's pictures,
// on the same RTP line.
func TestBackupDemoFallback(t *testing.T) {
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startGateway(t, pullConfig(cam.URL(), "    backup: demo\n    backup_mode: switch\n    backup_stall: 500ms\n"))
	r := startGoReader(t, g.URL+"cam", "tcp")
	video := r.track("video")
	r.waitCount(video, 100, 20*time.Second)
	if st := sourceStats(t, g, "cam").Backup; st.Active != "primary" || st.Mode != "switch" {
		t.Fatalf("before the kill: %+v", st)
	}
	cam.Proc().Kill()
	waitStats(t, g, "cam", "switch to the demo", 20*time.Second, func(b node.BackupStats) bool { return b.Active == "backup" })
	r.waitCount(video, len(r.packets(video))+200, 20*time.Second)
	for i := range r.medias {
		checkLine(t, fmt.Sprintf("track %d", i), r.packets(i))
	}
}

// TestBackupMergeHitless: a route takes one stream (an upstream gateway's, whose readers all get
// one RTP line) over two paths, the primary through a TCP proxy that the test cuts. Auto mode
// finds the legs identical and merges them, as merge mode does from the start; the reader loses
// no packet while the primary path is down and comes back.
func TestBackupMergeHitless(t *testing.T) {
	peertest.Require(t, "ffprobe")
	for _, mode := range []string{"auto", "merge"} {
		t.Run(mode, func(t *testing.T) { testBackupMerge(t, mode) })
	}
}

func testBackupMerge(t *testing.T, mode string) {
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	up := startGateway(t, pullConfig(cam.URL(), ""))
	upURL := up.URL + "cam"
	waitPublished(t, upURL, 20*time.Second)
	proxy := startCutProxy(t, strings.TrimSuffix(strings.TrimPrefix(up.URL, "rtsp://"), "/"))
	g := startGateway(t, fmt.Sprintf(`
rtsp:
  listen: LISTEN
routes:
  m:
    source: rtsp://%s/cam
    backup: %s
    backup_mode: %s
    source_transport: tcp
    reconnect_min: 200ms
    reconnect_max: 500ms
`, proxy.Addr(), upURL, mode))
	url := g.URL + "m"
	r := startGoReader(t, url, "tcp")
	video := r.track("video")
	r.waitCount(video, 100, 20*time.Second)
	st := waitStats(t, g, "m", "merge decision", 10*time.Second, func(b node.BackupStats) bool { return b.Mode != "auto" })
	if st.Mode != "merge" || st.Active != "both" {
		t.Fatalf("two copies of one stream: backup stats %+v, want merge", st)
	}

	for cut := range 2 {
		before := sourceStats(t, g, "m").Backup
		n := len(r.packets(video))
		proxy.Cut()
		r.waitCount(video, n+150, 20*time.Second) // ~3 s of video on the backup path alone
		during := sourceStats(t, g, "m").Backup
		proxy.Restore()
		// the primary reconnects and delivers again
		waitStats(t, g, "m", "primary delivering again", 20*time.Second, func(b node.BackupStats) bool {
			return b.PrimaryPackets > during.PrimaryPackets+100
		})
		t.Logf("cut %d: primary packets %d -> %d (during the cut) ; backup %d -> %d", cut, before.PrimaryPackets, during.PrimaryPackets, before.BackupPackets, during.BackupPackets)
		if during.BackupPackets <= before.BackupPackets+100 {
			t.Errorf("cut %d: the backup delivered %d packets during the cut", cut, during.BackupPackets-before.BackupPackets)
		}
	}
	r.waitCount(video, len(r.packets(video))+100, 20*time.Second)
	if err := r.Err(); err != nil {
		t.Fatalf("reader session ended: %v", err)
	}
	for i := range r.medias {
		if bad := checkLine(t, fmt.Sprintf("track %d", i), r.packets(i)); bad > 0 {
			t.Errorf("track %d: %d discontinuities across two cuts of the primary path, want none", i, bad)
		}
	}
	if st := sourceStats(t, g, "m").Backup; st.Lost != 0 || st.Switches != 0 || st.Mode != "merge" {
		t.Errorf("stats after the cuts %+v, want merge with nothing lost", st)
	}
	// A hub renumbers across a new source epoch, which would hide lost packets from the reader's
	// sequence line: in merge mode there is none, so every number the reader missed was lost.
	for _, f := range g.Node.Flows() {
		if f.Meta["route"] != "m" || f.Backup() == nil {
			continue
		}
		for i := range r.medias {
			hub, err := g.Node.Hub(f.Stream, i)
			if err != nil {
				t.Fatal(err)
			}
			if e := hub.Stats().Epochs; e != 0 {
				t.Errorf("track %d: the hub began %d new epochs, want 0 in merge mode", i, e)
			}
		}
	}
}

// cutProxy forwards TCP connections to a target until Cut, which drops every connection and
// refuses new ones until Restore: a network path that goes down and comes back.
type cutProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut drops every connection and refuses new ones.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore accepts connections again.
func (p *cutProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
