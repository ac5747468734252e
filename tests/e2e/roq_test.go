package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// roqCert writes a throwaway certificate for 127.0.0.1 and its key as PEM files.
func roqCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	tc, _ := peertest.SelfSignedTLS(t)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c := tc.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startRoQGateway runs a gateway with the demo route and a quic: listener on a free port.
func startRoQGateway(t *testing.T) (g *gw, addr, cert string) {
	t.Helper()
	cert, key := roqCert(t)
	g = startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nquic:\n  listen: 127.0.0.1:0\n  cert: %s\n  key: %s\nroutes:\n  demo:\n    source: demo\n", cert, key))
	return g, g.RoQ.Addr().String(), cert
}

var (
	roqPeerOnce sync.Once
	roqPeerBin  string
	roqPeerErr  error
)

// roqPeer builds tests/roqpeer, the mengelbart/roq v0.2.0 client, a Go module of its own (it
// needs quic-go v0.44.0). A module that cannot be fetched makes the peer missing.
func roqPeer(t *testing.T) string {
	t.Helper()
	roqPeerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshgw-roqpeer")
		if err != nil {
			roqPeerErr = err
			return
		}
		roqPeerBin = filepath.Join(dir, "roqpeer")
		cmd := exec.Command("go", "build", "-o", roqPeerBin, ".")
		cmd.Dir = "../roqpeer"
		cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/mengelbart/roq", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			roqPeerErr = fmt.Errorf("go build tests/roqpeer: %v\n%s", err, out)
		}
	})
	if roqPeerErr != nil {
		if peertest.StrictPeers() {
			t.Fatalf("peer mengelbart/roq: %v (%s=1 is set)", roqPeerErr, peertest.RequirePeersEnv)
		}
		t.Skipf("peer mengelbart/roq not available: %v", roqPeerErr)
	}
	return roqPeerBin
}

// roqPlayerPorts finds an even port with the three after it free, below the kernel's ephemeral
// range, so that neither another test's socket nor one of `meshgw roq pull`'s own (ephemeral)
// sockets can take the ports a player binds for two tracks.
func roqPlayerPorts(t *testing.T) int {
	t.Helper()
	for range 200 {
		base := 20000 + 2*rand.IntN(5000)
		var conns []*net.UDPConn
		for p := base; p < base+4; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
		if len(conns) == 4 {
			return base
		}
	}
	t.Fatal("no four free UDP ports")
	return 0
}

var roqPeerLine = regexp.MustCompile(`(?m)^flow (\d+) packets (\d+) valid (\d+) ssrc (\d+)$`)

// TestRoQMengelbartPeer: the independent RoQ implementation github.com/mengelbart/roq v0.2.0
// receives the demo route from meshgw's quic: listener over datagrams and over streams, and
// its RTCP receiver reports reach meshgw's reception statistics.
func TestRoQMengelbartPeer(t *testing.T) {
	bin := roqPeer(t)
	g, addr, cert := startRoQGateway(t)
	for _, tc := range []struct{ mode, alpn string }{{"datagram", "roq-14"}, {"stream", "roq-09"}} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			p := peertest.Run(ctx, t, bin, "-addr", addr, "-path", "/demo", "-mode", tc.mode, "-ca", cert, "-alpn", tc.alpn, "-t", "3s")
			// the peer's reports show up in the open session's stats while it runs
			reports := uint64(0)
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !p.Exited(); time.Sleep(100 * time.Millisecond) {
				for _, st := range g.RoQ.Stats() {
					if len(st.Reception) > 0 && st.Reception[0].Reports > reports {
						reports = st.Reception[0].Reports
					}
				}
			}
			out := p.MustSucceed(30 * time.Second)
			m := roqPeerLine.FindAllStringSubmatch(out, -1)
			if len(m) != 2 {
				t.Fatalf("peer output:\n%s", out)
			}
			for _, f := range m {
				packets, _ := strconv.Atoi(f[2])
				valid, _ := strconv.Atoi(f[3])
				// 3 s of the demo: 25 fps video in several packets a frame, AAC at 48 kHz
				if packets < 50 || valid != packets {
					t.Errorf("flow %s: %d packets, %d valid RTP; want ≥50, all valid\n%s", f[1], packets, valid, out)
				}
			}
			if reports == 0 {
				t.Errorf("no receiver report of the peer reached meshgw\n%s", out)
			}
			t.Logf("%s (%s): %s %s; reports seen by meshgw %d", tc.mode, tc.alpn, m[0][0], m[1][0], reports)
		})
	}
}

// TestRoQPullFFmpeg: `meshgw roq pull` relays the demo route from the quic: listener as
// RTP/UDP with an SDP, and ffmpeg decodes it without errors.
func TestRoQPullFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	bin := meshgwBinary(t)
	_, addr, cert := startRoQGateway(t)
	for _, mode := range []string{"datagram", "stream"} {
		t.Run(mode, func(t *testing.T) {
			rtpPort := roqPlayerPorts(t)
			sdpFile := filepath.Join(t.TempDir(), "roq.sdp")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pull := peertest.Run(ctx, t, bin, "roq", "pull", "-ca", cert, "-mode", mode, "-rtp", fmt.Sprintf("127.0.0.1:%d", rtpPort),
				"-sdp", sdpFile, "-t", "12s", "quic://"+addr+"/demo")
			if _, err := pull.WaitForOutput(regexp.MustCompile(`RTP to`), 15*time.Second); err != nil {
				t.Fatalf("roq pull: %v\n%s", err, pull.Output())
			}
			ff := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-protocol_whitelist", "file,udp,rtp", "-i", sdpFile, "-t", "4", "-f", "null", "-")
			_ = ff.Wait(40 * time.Second)
			out := ff.Output()
			n, _ := peertest.FFmpegFrames(out)
			// 4 s of 25 fps, less what passes before the first keyframe reaches ffmpeg
			if n < 40 {
				t.Errorf("ffmpeg decoded %d frames, want ≥40\n%s\nroq pull: %s", n, out, pull.Output())
			}
			if regexp.MustCompile(`(?i)(error while decoding|corrupt|concealing)`).MatchString(out) {
				t.Errorf("ffmpeg reports decode errors\n%s", out)
			}
			_ = pull.Stop(5 * time.Second)
			t.Logf("%s: ffmpeg decoded %d frames; %s", mode, n, lastLineOf(pull.Output()))
		})
	}
}

func lastLineOf(s string) string {
	m := regexp.MustCompile(`relayed .*`).FindString(s)
	return m
}

// TestRoQSource: a second gateway pulls the demo route from the first one's quic: listener
// (source: roq://) and ffmpeg decodes it from the second over RTSP.
func TestRoQSource(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	_, addr, cert := startRoQGateway(t)
	far := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  far:\n    source: roq://%s/demo\n    source_tls_ca: %s\n", addr, cert))
	var n int
	var out string
	for range 3 { // the pull may still be connecting on the first attempt
		if n, out = ffmpegFrames(t, "tcp", far.URL+"far", 4); n >= 40 {
			break
		}
		time.Sleep(time.Second)
	}
	if n < 40 {
		t.Fatalf("ffmpeg decoded %d frames through the roq:// source, want ≥40\n%s", n, out)
	}
	if regexp.MustCompile(`(?i)(error while decoding|corrupt|concealing)`).MatchString(out) {
		t.Errorf("ffmpeg reports decode errors\n%s", out)
	}
	t.Logf("ffmpeg decoded %d frames of roq://%s/demo through a second gateway", n, addr)
}

// TestRoQPullGStreamer: GStreamer (sdpdemux, avdec_h264) decodes what `meshgw roq pull` relays.
func TestRoQPullGStreamer(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:sdpdemux", "gst:avdec_h264")
	bin := meshgwBinary(t)
	_, addr, cert := startRoQGateway(t)
	rtpPort := roqPlayerPorts(t)
	sdpFile := filepath.Join(t.TempDir(), "roq.sdp")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pull := peertest.Run(ctx, t, bin, "roq", "pull", "-ca", cert, "-rtp", fmt.Sprintf("127.0.0.1:%d", rtpPort), "-sdp", sdpFile, "-t", "12s", "quic://"+addr+"/demo")
	if _, err := pull.WaitForOutput(regexp.MustCompile(`RTP to`), 15*time.Second); err != nil {
		t.Fatalf("roq pull: %v\n%s", err, pull.Output())
	}
	gst := peertest.Run(ctx, t, "gst-launch-1.0", "filesrc", "location="+sdpFile, "!", "sdpdemux", "name=d", "d.", "!", "queue", "!",
		"rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "name=v", "silent=false", "-v")
	time.Sleep(5 * time.Second) // the pipeline plays until stopped
	_ = gst.Stop(2 * time.Second)
	out := gst.Output()
	frames := len(regexp.MustCompile(`(?m)/GstFakeSink:v: last-message = chain`).FindAllString(out, -1))
	// about 4 s of 25 fps once the pipeline is up
	if frames < 40 {
		t.Errorf("GStreamer decoded %d frames, want ≥40\n%s", frames, gst.Tail(30))
	}
	if strings.Contains(out, "ERROR") {
		t.Errorf("GStreamer reports errors\n%s", gst.Tail(30))
	}
	_ = pull.Stop(5 * time.Second)
	t.Logf("GStreamer decoded %d frames", frames)
}

// TestRoQPush: ffmpeg encodes a test picture as RTP/UDP, `meshgw roq push` publishes it over
// RoQ into a publisher route, and ffmpeg decodes the route over RTSP.
func TestRoQPush(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	bin := meshgwBinary(t)
	cert, key := roqCert(t)
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nquic:\n  listen: 127.0.0.1:0\n  cert: %s\n  key: %s\nroutes:\n  pub:\n    source: publisher\n", cert, key))
	addr := g.RoQ.Addr().String()
	for _, mode := range []string{"datagram", "stream"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			port, _ := peertest.FreeUDPPair(t)
			sdpFile := filepath.Join(t.TempDir(), "enc.sdp")
			enc := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-c:v", "libx264",
				"-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", "-t", "20",
				"-f", "rtp", "-sdp_file", sdpFile, fmt.Sprintf("rtp://127.0.0.1:%d?rtcpport=%d&pkt_size=1200", port, port+1))
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if b, err := os.ReadFile(sdpFile); err == nil && strings.Contains(string(b), "m=video") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ffmpeg wrote no SDP\n%s", enc.Output())
				}
			}
			push := peertest.Run(ctx, t, bin, "roq", "push", "-ca", cert, "-mode", mode, "-sdp", sdpFile, "-rtp", fmt.Sprintf("127.0.0.1:%d", port), "-t", "15s", "quic://"+addr+"/pub")
			if _, err := push.WaitForOutput(regexp.MustCompile(`RTP from`), 15*time.Second); err != nil {
				t.Fatalf("roq push: %v\n%s", err, push.Output())
			}
			n, out := ffmpegFrames(t, "tcp", g.URL+"pub", 4)
			if n < 40 {
				t.Fatalf("ffmpeg decoded %d frames of the RoQ publisher, want ≥40\n%s\npush: %s", n, out, push.Output())
			}
			if regexp.MustCompile(`(?i)(error while decoding|corrupt|concealing)`).MatchString(out) {
				t.Errorf("ffmpeg reports decode errors\n%s", out)
			}
			_ = push.Stop(5 * time.Second)
			enc.Kill()
			t.Logf("%s: ffmpeg decoded %d frames published over RoQ", mode, n)
		})
	}
}
