package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestClusterSRTPReaderOnNode: an SRTP reader (rtspsrc, MIKEY, UDP) whose network node-b serves
// gets its packets from node-b, which can encrypt them only with the key the control drew and
// handed over in the reader's flow; node-b itself is fed by an encrypted relay from node-a. The
// player decodes (so the key arrived intact) and a capture on its host shows every RTP packet
// coming from node-b.
//
//	gst-launch-1.0 rtspsrc location=rtsps://10.99.0.1:8322/demo protocols=udp tls-validation-flags=0 ...
func TestClusterSRTPReaderOnNode(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:srtpdec", "gst:avdec_h264", "gst:avdec_aac")
	c := newClusterSecure(t)
	ctx := context.Background()
	cp := captureOn(ctx, t, c.p2, 10*time.Second)
	time.Sleep(time.Second) // tshark needs a moment to open the interface
	surl := fmt.Sprintf("rtsps://%s:8322/demo", c.ctl.Addr)
	args := playGstArgs(surl, "udp", 60)
	// rtspsrc's own property, so it goes right after the element
	args = append([]string{args[0], "tls-validation-flags=0"}, args[1:]...)
	// srtpdec warns about every packet it cannot authenticate or decrypt
	gst := c.p2.Run(ctx, t, "env", append([]string{"GST_DEBUG=srtpdec:2", "GST_DEBUG_NO_COLOR=1", "gst-launch-1.0"}, args...)...)
	gout := gst.MustPlayGst(40 * time.Second)
	if !peertest.GstGotEOS(gout) {
		t.Fatalf("rtspsrc (SRTP) on player 2 did not reach EOS:\n%s", playTail(gout, 3000))
	}
	srcs, _, _, _ := lineReport(t, parseCapture(result(cp, 30*time.Second)))
	t.Logf("player 2 received RTP from %v", srcs)
	want := c.b.Addr.String()
	if srcs[want] < 100 {
		t.Errorf("%d RTP packets from node-b (%s), want >= 100 (senders %v)", srcs[want], want, srcs)
	}
	for src, n := range srcs {
		if src != want {
			t.Errorf("%d RTP packets from %s, want none but from node-b", n, src)
		}
	}
	if n := strings.Count(c.ctlP.Output(), `msg="relay up"`); n != 1 {
		t.Errorf("%d relays built, want 1", n)
	}
}

// newClusterSecure is newCluster with RTSPS on the control (a fresh self-signed certificate)
// and srtp: required on the demo route.
func newClusterSecure(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t)
	certFile, keyFile, _ := selfSigned(t, c.dir, "rtsps")
	cfg := fmt.Sprintf(`control: {listen: "%[1]s:8443", node_timeout: 5s, startup_grace: 2s}
node: {name: control, data_address: %[1]s}
rtsp: {listen: "%[1]s:8554", rtp_port: 8000}
rtsps: {listen: "%[1]s:8322", cert: %[2]s, key: %[3]s}
identity: {trust_domain: meshgw.test, cert: %[4]s, key: %[5]s, bundle: %[6]s}
routes:
  demo: {source: demo, node: node-a, srtp: required}
`, c.ctl.Addr, certFile, keyFile, filepath.Join(c.dir, "control.pem"), filepath.Join(c.dir, "control.key"), filepath.Join(c.dir, "ca.pem"))
	c.write("control.yaml", cfg)
	// restart the control on the secure config; the nodes re-attach to it
	if err := c.ctlP.Stop(10 * time.Second); err != nil {
		t.Logf("stopping the first control: %v", err)
	}
	c.ctlP = c.startControl()
	c.waitLog(c.ctlP, `msg="node attached".*node=node-a`, 20*time.Second)
	c.waitLog(c.ctlP, `msg="node attached".*node=node-b`, 20*time.Second)
	c.waitLog(c.ctlP, `rtsps=`+c.ctl.Addr.String()+`:8322`, 5*time.Second)
	return c
}

// TestClusterSRTPReaderFailover: an SRTP reader (rtspsrc, MIKEY, UDP) served by node-b keeps
// decrypting while node-b is killed, its reader moved to node-a, and node-b restarted and the
// reader moved back: each new sink goes on from the last sender state the old node reported
// (rollover counter, SRTCP index), under the reader's one key.
func TestClusterSRTPReaderFailover(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:srtpdec", "gst:avdec_h264", "gst:avdec_aac")
	c := newClusterSecure(t)
	ctx := context.Background()
	cp := captureOn(ctx, t, c.p2, 18*time.Second)
	time.Sleep(time.Second) // tshark needs a moment to open the interface
	surl := fmt.Sprintf("rtsps://%s:8322/demo", c.ctl.Addr)
	args := playGstArgs(surl, "udp", 300) // 12 s of video
	args = append([]string{args[0], "tls-validation-flags=0"}, args[1:]...)
	// srtpdec warns about every packet it cannot authenticate or decrypt
	gst := c.p2.Run(ctx, t, "env", append([]string{"GST_DEBUG=srtpdec:2", "GST_DEBUG_NO_COLOR=1", "gst-launch-1.0"}, args...)...)
	time.Sleep(3 * time.Second)
	_ = c.bP.Signal(syscall.SIGKILL)
	c.waitLog(c.ctlP, `msg="reader moved".*from=node-b`, 10*time.Second)
	time.Sleep(3 * time.Second)
	c.bP = c.startNode("node-b", c.b)
	c.waitLog(c.ctlP, `msg="reader moved".*to=node-b`, 15*time.Second)
	out := gst.MustPlayGst(40 * time.Second)
	if n := strings.Count(out, "srtpdec"); n > 0 {
		t.Errorf("srtpdec refused packets %d times:\n%s", n, playTail(out, 3000))
	}
	srcs, gap, missing, ssrcs := lineReport(t, parseCapture(result(cp, 40*time.Second)))
	t.Logf("SRTP reader across node-b's kill and return: packets from %v, %d SSRCs, largest silence %v, %d missing", srcs, ssrcs, gap.Round(time.Millisecond), missing)
	if srcs[c.a.Addr.String()] == 0 || srcs[c.b.Addr.String()] == 0 {
		t.Errorf("senders %v: want node-b, then node-a, then node-b again", srcs)
	}
	if ssrcs != 2 {
		t.Errorf("player saw %d SSRCs, want 2", ssrcs)
	}
}
