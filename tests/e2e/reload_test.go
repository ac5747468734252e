package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/internal/peertest"
)

// reloadConfig is the test's config file; routes is its routes: section.
func reloadConfig(port int, routes string) string {
	return fmt.Sprintf("log_level: info\nrtsp:\n  listen: 127.0.0.1:%d\n  rtp_port: 0\nroutes:\n%s", port, routes)
}

// saveAs writes content the way editors save: a new file renamed over the old one.
func saveAs(t *testing.T, file, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(file), ".meshgw.yaml.swp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestReload drives `meshgw run -c FILE` through four reloads while real readers play: a SIGHUP
// of the same file, a save (rename over the file) that changes two routes' sources, removes one
// route and adds one, a save of an invalid file, and a save that puts a valid file back.
//   - Two independent readers (gortsplib, UDP and TCP) of an unchanged route keep one unbroken
//     line through all of it.
//   - A route whose source changes from the demo (640x360) to a pull of an ffmpeg publisher
//     (320x240), whose H.264 parameter sets travel only in its description: the ffmpeg reader
//     there sees its session end, and a new ffprobe sees the new source.
//   - A route that pulls the publisher and changes only its transport (TCP to UDP) gets a new pull
//     with the same description: its gortsplib reader stays on one unbroken line.
//   - The removed route's reader sees its session end; the added route is served.
//   - The invalid file is refused with its FILE:LINE errors logged, and the old config serves on.
func TestReload(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	port := peertest.FreePort(t)
	url := fmt.Sprintf("rtsp://127.0.0.1:%d/", port)
	file := filepath.Join(t.TempDir(), "meshgw.yaml")
	retune := "  retune: {source: \"" + url + "pub\", source_transport: %s, reconnect_min: 300ms, reconnect_max: 1s}\n"
	first := "  keep: {source: demo}\n  gone: {source: demo}\n  pub: {source: publisher}\n  change: {source: demo}\n" +
		fmt.Sprintf(retune, "tcp")
	if err := os.WriteFile(file, []byte(reloadConfig(port, first)), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", file)
	t.Cleanup(func() { _ = gw.Stop(5 * time.Second) })
	if _, err := gw.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 15*time.Second); err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := ffmpegPublisher(ctx, t, "tcp", url+"pub", "320x240", 40)
	waitPublished(t, url+"pub", 15*time.Second)

	keepUDP := startGoReader(t, url+"keep", "udp")
	keepTCP := startGoReader(t, url+"keep", "tcp")
	gone := startGoReader(t, url+"gone", "tcp")
	waitPublished(t, url+"retune", 15*time.Second)
	retuneGo := startGoReader(t, url+"retune", "tcp")
	ff := peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-rtsp_transport", "tcp", "-i", url+"change",
		"-map", "0:v", "-vf", "showinfo", "-f", "null", "-")
	if _, err := ff.WaitForOutput(regexp.MustCompile(`s:640x360`), 15*time.Second); err != nil {
		t.Fatalf("ffmpeg reader of the demo: %v\n%s", err, tail(ff.Output()))
	}
	keepTCP.waitCount(0, 50, 10*time.Second)

	reloaded := func(n int, what string) {
		t.Helper()
		if !waitCond(ctx, 10*time.Second, func() bool { return strings.Count(gw.Output(), `msg="config reloaded"`) >= n }) {
			t.Fatalf("%s: no reload #%d logged\n%s", what, n, tail(gw.Output()))
		}
	}

	// 1. SIGHUP, nothing changed
	if err := gw.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloaded(1, "SIGHUP")

	// 2. a save: change's source becomes the publisher's stream, gone goes, added comes
	second := "  keep: {source: demo}\n  pub: {source: publisher}\n  change: {source: \"" + url + "pub\"}\n" +
		fmt.Sprintf(retune, "udp") + "  added: {source: demo}\n"
	saveAs(t, file, reloadConfig(port, second))
	reloaded(2, "save")
	if !waitCond(ctx, 10*time.Second, func() bool { return gone.Err() != nil }) {
		t.Errorf("the removed route's reader is still playing")
	} else {
		t.Logf("the removed route's reader: %v", gone.Err())
	}
	select {
	case <-ff.Done():
		t.Logf("the changed route's ffmpeg reader ended with its session: %s", lastLine(ff.Output()))
	case <-time.After(10 * time.Second):
		t.Errorf("the changed route's ffmpeg reader still runs 10 s after its source changed\n%s", tail(ff.Output()))
	}
	if st := probeStreams(t, "tcp", url+"change"); len(st) == 0 || st[0]["width"] != "320" {
		t.Errorf("the changed route serves %v, want the publisher's 320x240", st)
	}
	if !describeOK(url + "added") {
		t.Errorf("the added route is not served")
	}

	// 3. an invalid save is refused, logged with FILE:LINE, and the running config stays
	saveAs(t, file, reloadConfig(port, second+"  bad: {source: \"ftp://x\"}\n  worse: {max_readers: -1}\n"))
	if _, err := gw.WaitForOutput(regexp.MustCompile(`msg="config reload refused`), 10*time.Second); err != nil {
		t.Fatalf("invalid file: %v", err)
	}
	for _, line := range []int{11, 12} {
		if !strings.Contains(gw.Output(), fmt.Sprintf("%s:%d: ", file, line)) {
			t.Errorf("no error logged for %s:%d\n%s", file, line, tail(gw.Output()))
		}
	}
	if !describeOK(url+"added") || describeOK(url+"gone") {
		t.Errorf("after a refused reload the running routes changed")
	}

	// 4. a valid save again (and keep's readers still see no gap)
	saveAs(t, file, reloadConfig(port, second))
	reloaded(3, "save after the refused one")
	time.Sleep(time.Second)

	for _, r := range []struct {
		name string
		r    *goReader
	}{{"keep/udp", keepUDP}, {"keep/tcp", keepTCP}, {"retune/tcp", retuneGo}} {
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
	if n := strings.Count(gw.Output(), `msg="source replaced" route=`); n != 2 {
		t.Errorf("%d sources replaced in the log, want 2 (change, retune)", n)
	}
	pub.Kill()
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	out = strings.TrimRight(out, "\n")
	return out[strings.LastIndexByte(out, '\n')+1:]
}

// TestReloadAuthAndLimits: a reload changes users, anonymous access and the rtsp limits in place.
// A removed user is refused and an added one let in at once, anonymous reads open up, and a new
// cap on unauthenticated connections per address refuses the next one (503), all without a
// restart; hand-driven RTSP requests check each status.
func TestReloadAuthAndLimits(t *testing.T) {
	users := func(name, pw string) string {
		return authUser(t, name, pw, "argon2id", true, "      read: [demo]\n")
	}
	yaml := func(limits, anon, user string) string {
		return "rtsp:\n  listen: LISTEN\n" + limits + "auth:\n  realm: " + authRealm + "\n" + anon + "  users:\n" + user +
			"routes:\n  demo: {source: demo}\n  open: {source: demo}\n"
	}
	g := startGateway(t, yaml("", "", users("viewer", "view-pw")))
	host := hostOf(g)
	url := g.URL + "demo"
	describe := func(local, user, pw, u string) int {
		t.Helper()
		c := dialFrom(t, host, local)
		r := c.do(authReq("DESCRIBE", u, 1, ""))
		if r.status != 401 || user == "" {
			return r.status
		}
		return c.do(authReq("DESCRIBE", u, 2, digestAnswer(t, r, "DESCRIBE", u, user, pw, headers.AuthAlgorithmMD5))).status
	}
	if s := describe("127.0.0.41", "viewer", "view-pw", url); s != 200 {
		t.Fatalf("viewer before the reload: %d", s)
	}
	if s := describe("127.0.0.42", "", "", g.URL+"open"); s != 401 {
		t.Fatalf("anonymous before the reload: %d", s)
	}

	next := yaml("  max_unauthenticated_per_address: 1\n", "  anonymous: {read: [open]}\n", users("newbie", "new-pw"))
	next = strings.Replace(strings.ReplaceAll(next, "LISTEN", host), "rtsp:\n", "rtsp:\n  rtp_port: 0\n", 1)
	cfg, err := config.Parse("reloaded.yaml", []byte(next))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if s := describe("127.0.0.43", "viewer", "view-pw", url); s != 401 {
		t.Errorf("a removed user after the reload: %d, want 401", s)
	}
	if s := describe("127.0.0.44", "newbie", "new-pw", url); s != 200 {
		t.Errorf("an added user after the reload: %d, want 200", s)
	}
	if s := describe("127.0.0.45", "", "", g.URL+"open"); s != 200 {
		t.Errorf("anonymous read of open after the reload: %d, want 200", s)
	}
	a := dialFrom(t, host, "127.0.0.46")
	a.expect(authReq("OPTIONS", url, 1, ""), 200) // unauthenticated, and held open
	b := dialFrom(t, host, "127.0.0.46")
	b.expect(authReq("OPTIONS", url, 1, ""), 503)
}

// TestClusterReload reloads a cluster's control (control and two nodes in network namespaces) by
// saving its file while ffmpeg players read: the nodes follow through their flows. A player of an
// unchanged route (ingested on node-a) and one of a route whose pacing changed (node-b swaps its
// source in place) play through to the end; a player of a removed route (on node-b) sees its
// session end. Then node-b's own file is saved with another client network: its reload names
// node.client_networks as needing a restart.
func TestClusterReload(t *testing.T) {
	c := newCluster(t, func(*cluster) string {
		return "  gone: {source: demo, node: node-b}\n  swap: {source: demo, node: node-b}\n"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := strings.TrimSuffix(c.url, "demo")
	// player 1 is served by node-a, which ingests demo; player 2 by node-b, which ingests the others
	keep := c.p1.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", c.url, 10)...)
	swap := c.p2.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", base+"swap", 10)...)
	gone := c.p2.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", base+"gone", 60)...)
	for _, p := range []*peertest.Proc{keep, swap, gone} {
		if _, err := p.WaitForOutput(regexp.MustCompile(`Output #0`), 20*time.Second); err != nil {
			t.Fatalf("%s did not start playing: %v", p, err)
		}
	}
	time.Sleep(2 * time.Second)
	old, err := os.ReadFile(c.controlCfgPath)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(old), "  gone: {source: demo, node: node-b}\n", "", 1)
	next = strings.Replace(next, "  swap: {source: demo, node: node-b}\n",
		"  swap: {source: demo, node: node-b, pacing: 2}\n  added: {source: demo, node: node-a}\n", 1)
	saveAs(t, c.controlCfgPath, next)
	c.waitLog(c.ctlP, `msg="config reloaded".* added=\[added\] removed=\[gone\] changed=\[swap\]`, 10*time.Second)
	c.waitLog(c.bP, `msg="source replaced".*kind=source.demo`, 10*time.Second)
	c.waitLog(c.ctlP, `msg="source started" route=added .*node=node-a`, 10*time.Second)
	select {
	case <-gone.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("the removed route's player still runs 10 s after the reload")
	}
	// a node's own file: its keys need a restart, and the reload says so by name
	nodeFile := filepath.Join(c.dir, "node-b.yaml")
	nb, err := os.ReadFile(nodeFile)
	if err != nil {
		t.Fatal(err)
	}
	saveAs(t, nodeFile, strings.Replace(string(nb), "client_networks: [", "client_networks: [192.0.2.0/24, ", 1))
	c.waitLog(c.bP, `msg="config reload: these keys changed but take effect only after a restart.*keys=\[node.client_networks\]`, 10*time.Second)
	c.waitLog(c.bP, `msg="config reloaded"`, 10*time.Second)
	playCheckFFmpeg(t, "ffmpeg on the unchanged route", keep, 30*time.Second, 200)
	playCheckFFmpeg(t, "ffmpeg on the re-paced route", swap, 30*time.Second, 200)
}

// TestReloadRTSPSFiles: a reload that names another certificate and key serves them at the next
// TLS handshake; one whose pair does not load is refused as a whole, and the old pair stays.
func TestReloadRTSPSFiles(t *testing.T) {
	g := startSecureGateway(t, rtspsYAML, "  demo: {source: demo}\n")
	addr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test compares the leaf itself
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(g.cert) {
		t.Fatal("the gateway does not serve its first certificate")
	}
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "renamed")
	reloadWith := func(cert, key string) error {
		yaml := fmt.Sprintf("rtsp:\n  listen: %s\n  rtp_port: 0\nrtsps:\n  listen: %s\n  cert: %s\n  key: %s\nroutes:\n  demo: {source: demo}\n",
			hostOf(g.gw), addr, cert, key)
		cfg, err := config.Parse("reloaded.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return g.Reload(context.Background(), cfg)
	}
	// a key that is not the certificate's: refused, the old pair stays
	if err := reloadWith(certFile, g.keyFile); err == nil {
		t.Error("a reload with a mismatched certificate and key was accepted")
	}
	if !served().Equal(g.cert) {
		t.Error("a refused reload changed the certificate served")
	}
	if err := reloadWith(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if !served().Equal(cert) {
		t.Error("the reloaded certificate is not served")
	}
}
