package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/srtp"
	"github.com/meshgw/meshgw/rtsp"
)

// srtpCamRoute is a route "cam" pulling cam with the given srtp policy.
func srtpCamRoute(cam *peertest.Camera, mode string) string {
	return fmt.Sprintf("  cam:\n    source: %s\n    srtp: %s\n", cam.URL(), mode)
}

// TestSRTPReadFFmpegSDES: FFmpeg takes the a=crypto key from the RTSPS DESCRIBE, asks for RTP/AVP
// and decodes the SRTP meshgw sends it.
//
//	ffmpeg -nostats -rtsp_transport tcp -i rtsps://127.0.0.1:PORT/cam -t 4 -f null -
func TestSRTPReadFFmpegSDES(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startSecureGateway(t, rtspsYAML, srtpCamRoute(cam, "required"))
	checkReader(t, "tcp", g.SURL+"cam")
}

// TestSRTPReadRtspsrcMIKEY: rtspsrc reads RTP/SAVP keyed by MIKEY, interleaved and over UDP.
//
//	gst-launch-1.0 rtspsrc location=rtsps://127.0.0.1:PORT/cam protocols=tcp|udp tls-validation-flags=0 ...
func TestSRTPReadRtspsrcMIKEY(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:srtpdec", "gst:avdec_h264", "gst:avdec_aac", "gst:rtpmp4gdepay")
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startSecureGateway(t, rtspsYAML, srtpCamRoute(cam, "required"))
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			gstReadArgs(t, g.SURL+"cam", "protocols="+proto, "tls-validation-flags=0")
		})
	}
}

// TestSRTPPublishRtspclientsinkMIKEY: rtspclientsink publishes RTP/SAVP keyed by MIKEY over RTSPS,
// interleaved and over UDP; meshgw unprotects it and an FFmpeg reader (SDES) decodes it.
//
//	gst-launch-1.0 videotestsrc ... ! x264enc ... ! rtspclientsink location=rtsps://127.0.0.1:PORT/pub
//	    protocols=tcp|udp profiles=savp tls-validation-flags=0
func TestSRTPPublishRtspclientsinkMIKEY(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspclientsink", "gst:srtpenc", "gst:x264enc", "gst:videotestsrc")
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			g := startSecureGateway(t, rtspsYAML, "  pub:\n    source: publisher\n    srtp: required\n")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := rtspclientsinkArgs(g.SURL+"pub", proto, 30, false)
			args = append(args, "profiles=savp", "tls-validation-flags=0")
			pub := peertest.Run(ctx, t, "gst-launch-1.0", args...)
			if !waitCond(ctx, 20*time.Second, func() bool { return g.RTSP.SessionCount() > 0 && describeOKTLS(g) }) {
				t.Fatalf("publisher never became readable\n%s", tail(pub.Output()))
			}
			checkReader(t, "tcp", g.SURL+"pub")
			pub.Kill()
		})
	}
}

// describeOKTLS reports whether the publisher's stream can be described over RTSPS.
func describeOKTLS(g *secureGW) bool {
	addr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	st, _ := tryRTSPS(addr, g, "DESCRIBE "+g.SURL+"pub RTSP/1.0\r\nCSeq: 1\r\n\r\n")
	return st == 200
}

func tryRTSPS(addr string, g *secureGW, req string) (int, error) {
	c, err := tlsDialQuiet(addr, g)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprint(c, req)
	var st int
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	_, err = fmt.Sscanf(line, "RTSP/1.0 %d", &st)
	return st, err
}

// TestSRTPPullCamera: meshgw pulls a GstRtspServer camera that serves RTSPS and RTP/SAVP only
// (MIKEY), verified against the camera's certificate, over TCP and UDP; plain RTSP readers decode it.
func TestSRTPPullCamera(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst:srtpenc")
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "camera")
	cam := peertest.StartCamera(t, peertest.CameraOpts{TLSCert: certFile, TLSKey: keyFile, SRTP: true})
	if !strings.HasPrefix(cam.URL(), "rtsps://") {
		t.Fatalf("camera URL %s is not rtsps://", cam.URL())
	}
	for _, tr := range []string{"tcp", "udp"} {
		t.Run(tr, func(t *testing.T) {
			g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nroutes:\n  cam:\n    source: %s\n    source_transport: %s\n    source_tls_ca: %s\n", cam.URL(), tr, certFile))
			checkReader(t, "tcp", g.URL+"cam")
			// the replay filter on the pull refused nothing of a healthy camera
			pulls := 0
			for _, f := range g.Node.Flows() {
				if f.Kind() != node.SourcePull {
					continue
				}
				pulls++
				st, err := g.Node.Stats(f.ID)
				if err != nil || st.Packets == 0 || st.Errors != 0 {
					t.Errorf("pull flow stats %+v, %v: want packets and no refusals", st, err)
				}
			}
			if pulls != 1 {
				t.Errorf("%d pull flows on the node, want 1", pulls)
			}
		})
	}
}

// TestSRTPRequiredRefusesPlain: a route with srtp: required answers a plain transport with 461,
// over plain RTSP (where no key can be handed out) and over RTSPS without the keys of a DESCRIBE.
func TestSRTPRequiredRefusesPlain(t *testing.T) {
	logs := &peertest.LogBuffer{}
	g := startSecureGatewayLog(t, rtspsYAML, "  demo:\n    source: demo\n    srtp: required\n  open:\n    source: demo\n", logs.Logger())
	plainAddr := strings.TrimSuffix(strings.TrimPrefix(g.URL, "rtsp://"), "/")
	tlsAddr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	rtpPort, _ := peertest.FreeUDPPair(t)
	setup := func(scheme, addr, route, transport string) string {
		return fmt.Sprintf("SETUP %s://%s/%s/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: %s\r\n\r\n", scheme, addr, route, transport)
	}
	udp := fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", rtpPort, rtpPort+1)

	// plain RTSP, UDP and TCP
	for _, tr := range []string{udp, "RTP/AVP/TCP;unicast;interleaved=0-1"} {
		st, msg := plainStatus(t, plainAddr, setup("rtsp", plainAddr, "demo", tr))
		if st != 461 || !strings.Contains(msg, "SRTP") {
			t.Errorf("plain RTSP SETUP %s on srtp: required: %d %q, want 461 naming SRTP", tr, st, msg)
		}
	}
	// RTSPS without DESCRIBE: no key was handed out, so RTP/AVP would be plain
	c := dialRTSPS(t, tlsAddr, g.cert)
	defer c.Close()
	fmt.Fprint(c, setup("rtsps", tlsAddr, "demo", udp))
	if st, _, _ := readResponse(t, bufio.NewReader(c)); st != 461 {
		t.Errorf("RTSPS SETUP RTP/AVP without DESCRIBE on srtp: required: %d, want 461", st)
	}
	// RTP/SAVP on a route with srtp off
	c2 := dialRTSPS(t, tlsAddr, g.cert)
	defer c2.Close()
	fmt.Fprint(c2, setup("rtsps", tlsAddr, "open", strings.Replace(udp, "RTP/AVP", "RTP/SAVP", 1)))
	if st, _, _ := readResponse(t, bufio.NewReader(c2)); st != 461 {
		t.Errorf("RTSPS SETUP RTP/SAVP on srtp: off: %d, want 461", st)
	}
	// the plain route still serves plain RTP
	if st, _ := plainStatus(t, plainAddr, setup("rtsp", plainAddr, "open", udp)); st != 200 {
		t.Errorf("plain SETUP on srtp: off: %d, want 200", st)
	}
	// every refusal is logged with its status and reason
	refused := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="rtsp request refused"`) && strings.Contains(l, "status=461") && strings.Contains(l, "SRTP") {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d log lines for the 4 refused SETUPs:\n%s", refused, logs.String())
	}
}

// startSecureGatewayLog is startSecureGateway with the gateway's log going to log (startGateway
// logs only warnings, and refusals are info).
func startSecureGatewayLog(t testing.TB, rtspYAML, routes string, log *slog.Logger) *secureGW {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "server")
	addr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	plain := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	yaml := strings.ReplaceAll(rtspYAML, "LISTEN", plain) + "  rtp_port: 0\n" +
		fmt.Sprintf("rtsps:\n  listen: %s\n  cert: %s\n  key: %s\nroutes:\n%s", addr, certFile, keyFile, routes)
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
	})
	return &secureGW{gw: &gw{Gateway: g, URL: "rtsp://" + plain + "/"}, SURL: "rtsps://" + addr + "/", certFile: certFile, keyFile: keyFile, cert: cert}
}

// plainStatus sends one request over plain TCP and returns the status and its reason phrase.
func plainStatus(t testing.TB, addr, req string) (int, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(nc, req)
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var st int
	fmt.Sscanf(line, "RTSP/1.0 %d", &st)
	return st, strings.TrimSpace(line)
}

// TestSRTPWireEncrypted is the capture check: a raw UDP reader that took the SDES key from an
// RTSPS DESCRIBE receives packets whose payload is not the plain payload, which authenticate and
// decrypt with that key (and fail with another one).
func TestSRTPWireEncrypted(t *testing.T) {
	g := startSecureGateway(t, rtspsYAML, "  demo:\n    source: demo\n    srtp: optional\n")
	tlsAddr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	port := u.LocalAddr().(*net.UDPAddr).Port

	c := dialRTSPS(t, tlsAddr, g.cert)
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "DESCRIBE %sdemo RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", g.SURL)
	st, _, sdp := readResponse(t, br)
	if st != 200 {
		t.Fatalf("DESCRIBE: %d", st)
	}
	key := firstCrypto(t, sdp)
	if !strings.Contains(sdp, "RTP/SAVP") || !strings.Contains(sdp, "a=key-mgmt:mikey ") {
		t.Fatalf("secure DESCRIBE lacks RTP/SAVP or MIKEY:\n%s", sdp)
	}
	fmt.Fprintf(c, "SETUP %sdemo/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=%d-%d\r\n\r\n", g.SURL, port, port+1)
	st, h, _ := readResponse(t, br)
	if st != 200 {
		t.Fatalf("SETUP: %d", st)
	}
	sess, _, _ := strings.Cut(h["session"], ";")
	fmt.Fprintf(c, "PLAY %sdemo RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\n\r\n", g.SURL, sess)
	if st, _, _ := readResponse(t, br); st != 200 {
		t.Fatalf("PLAY: %d", st)
	}
	un, err := srtp.NewUnprotector(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := srtp.NewKey()
	wrong, _ := srtp.NewUnprotector(other, nil)
	buf := make([]byte, 2048)
	const want = 50
	got, differ := 0, 0
	_ = u.SetReadDeadline(time.Now().Add(20 * time.Second))
	for got < want {
		n, err := u.Read(buf)
		if err != nil {
			t.Fatalf("after %d packets: %v", got, err)
		}
		wire := bytes.Clone(buf[:n])
		if _, err := wrong.RTP(wire); err == nil {
			t.Fatal("a packet authenticated with a key nobody was given")
		}
		plain, err := un.RTP(wire)
		if err != nil {
			t.Fatalf("packet %d does not unprotect with the DESCRIBE key: %v", got, err)
		}
		if len(wire) != len(plain)+10 {
			t.Fatalf("packet %d: %d bytes on the wire, %d plain; want the 10-byte tag", got, len(wire), len(plain))
		}
		if !bytes.Equal(wire[12:len(plain)], plain[12:]) {
			differ++
		}
		got++
	}
	if differ != got {
		t.Fatalf("%d of %d packets carried their plain payload on the wire", got-differ, got)
	}
}

// firstCrypto returns the key of the first a=crypto line of an SDP.
func firstCrypto(t testing.TB, sdp string) srtp.Key {
	t.Helper()
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=crypto:"); ok {
			k, err := rtsp.ParseCrypto(v)
			if err != nil {
				t.Fatalf("a=crypto:%s: %v", v, err)
			}
			return k
		}
	}
	t.Fatalf("no a=crypto in\n%s", sdp)
	return srtp.Key{}
}

// tlsDialQuiet dials RTSPS trusting g's certificate, returning errors instead of failing.
func tlsDialQuiet(addr string, g *secureGW) (*tls.Conn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(g.cert)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

// TestSRTPWireCaptureTshark is the capture check with tshark: the video payloads an rtspsrc
// reader gets from meshgw over plain RTSP all start with H.264 NAL headers, and those an rtspsrc
// reader gets over RTSPS with MIKEY only as often as random bytes do (they are ciphertext), from
// the same camera.
//
//	tshark -n -i lo -a duration:6 -f "udp and src port RTP_PORT" -T fields -e udp.payload
func TestSRTPWireCaptureTshark(t *testing.T) {
	peertest.Require(t, "tshark", "gst-launch-1.0", "gst:rtspsrc", "gst:srtpdec", "gst:avdec_h264", "gst:avdec_aac", "gst:rtpmp4gdepay")
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startSecureGateway(t, rtspsYAML, fmt.Sprintf("  plain:\n    source: %s\n  sec:\n    source: %s\n    srtp: required\n", cam.URL(), cam.URL()))
	port := g.Node.UDP().RTPPort()
	for _, c := range []struct {
		name, url string
		secure    bool
	}{{"plain", g.URL + "plain", false}, {"srtp", g.SURL + "sec", true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cp := peertest.Run(ctx, t, "tshark", "-n", "-i", "lo", "-a", "duration:6", "-f", fmt.Sprintf("udp and src port %d", port),
				"-T", "fields", "-e", "udp.payload")
			time.Sleep(time.Second) // tshark needs a moment to open the interface
			gstReadArgs(t, c.url, "protocols=udp", "tls-validation-flags=0")
			_ = cp.Wait(30 * time.Second)
			video, nal := 0, 0
			for _, l := range strings.Split(cp.Output(), "\n") {
				b, err := hex.DecodeString(strings.TrimSpace(strings.ReplaceAll(l, ":", "")))
				if err != nil || len(b) < 12+10+1 || b[0]>>6 != 2 || b[1]&0x7f != 96 || b[0]&0x3f != 0 {
					continue // not a plain-header video packet without CSRCs/extension
				}
				video++
				if h264NALHeader(b[12]) {
					nal++
				}
			}
			t.Logf("%s: %d video packets captured, %d start with an H.264 NAL header", c.name, video, nal)
			if video < 30 {
				t.Fatalf("captured %d video packets from port %d, want >= 30", video, port)
			}
			frac := float64(nal) / float64(video)
			// ciphertext passes the header test ~39 % of the time (see h264NALHeader); plain RTP always
			if c.secure && frac > 0.7 {
				t.Errorf("%.0f %% of the SRTP payloads look like H.264 NAL headers: the payload is not encrypted", 100*frac)
			}
			if !c.secure && frac < 0.95 {
				t.Errorf("only %.0f %% of the plain payloads start with an H.264 NAL header; the check is blind", 100*frac)
			}
		})
	}
}

// h264NALHeader reports whether b is a NAL unit header rtph264pay writes first: forbidden bit
// clear and a single NAL (1-23), STAP-A (24) or FU-A (28). A random byte passes with
// probability 1/2 * 25/32, about 39 %.
func h264NALHeader(b byte) bool {
	typ := b & 0x1f
	return b&0x80 == 0 && typ >= 1 && (typ <= 24 || typ == 28)
}
