package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and localhost (its own CA)
// and its key as PEM files in dir, named after name.
func selfSigned(t testing.TB, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "meshgw test " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile, cert
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	// write and rename, so a reloading reader never sees half a file
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// secureGW is a gateway with an RTSPS listener.
type secureGW struct {
	*gw
	// SURL is "rtsps://127.0.0.1:PORT/".
	SURL     string
	certFile string
	keyFile  string
	cert     *x509.Certificate
}

// startSecureGateway runs a gateway whose config is rtspYAML (an rtsp: section, may use LISTEN)
// plus an rtsps: section on a free port with a fresh self-signed certificate, plus routes.
func startSecureGateway(t testing.TB, rtspYAML, routes string) *secureGW {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "server")
	addr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	yaml := rtspYAML + fmt.Sprintf("rtsps:\n  listen: %s\n  cert: %s\n  key: %s\nroutes:\n%s", addr, certFile, keyFile, routes)
	g := startGateway(t, yaml)
	return &secureGW{gw: g, SURL: "rtsps://" + addr + "/", certFile: certFile, keyFile: keyFile, cert: cert}
}

// rtspsYAML keeps plain RTSP on as well.
const rtspsYAML = "rtsp:\n  listen: LISTEN\n"

// TestRTSPSRead: players read over RTSPS as over RTSP: ffmpeg (always interleaved over TLS) and
// rtspsrc with TCP and with UDP media.
func TestRTSPSRead(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:avdec_h264", "gst:avdec_aac", "gst:rtpmp4gdepay")
	cam := peertest.StartCamera(t, peertest.CameraOpts{})
	g := startSecureGateway(t, rtspsYAML, "  cam:\n    source: "+cam.URL()+"\n")
	checkReader(t, "tcp", g.SURL+"cam")
	for _, proto := range []string{"tcp", "udp"} {
		t.Run("rtspsrc-"+proto, func(t *testing.T) {
			gstReadArgs(t, g.SURL+"cam", "protocols="+proto, "tls-validation-flags=0")
		})
	}
}

// gstReadArgs plays url with rtspsrc and extra properties and wants EOS after 50 decoded video
// frames and 50 decoded audio buffers, and a clean exit. Like gstRead it gives rtspsrc a second
// try and logs the first failure: in 2 of 20 stress runs over RTSPS+TCP with SRTP, rtspsrc never
// linked its audio pad ("Delayed linking failed ... rtpmp4gdepay", the rtspsrc flake gstRead
// describes for UDP) while the gateway served the whole session normally.
func gstReadArgs(t testing.TB, url string, props ...string) {
	t.Helper()
	out, ok := gstReadArgsOnce(t, url, props...)
	if ok {
		return
	}
	t.Logf("rtspsrc %s %v: first try failed, retrying once; its output:\n%s", url, props, tail(out))
	if out, ok = gstReadArgsOnce(t, url, props...); !ok {
		t.Errorf("rtspsrc %s %v: failed twice\n%s", url, props, tail(out))
	}
}

func gstReadArgsOnce(t testing.TB, url string, props ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	args := append([]string{"rtspsrc", "location=" + url, "latency=100", "name=s"}, props...)
	args = append(args,
		"s.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
		"!", "identity", "eos-after=50", "!", "fakesink",
		"s.", "!", "application/x-rtp,media=audio", "!", "rtpmp4gdepay", "!", "avdec_aac",
		"!", "identity", "eos-after=50", "!", "fakesink")
	p := peertest.Run(ctx, t, "gst-launch-1.0", args...)
	err := p.Wait(40 * time.Second)
	return p.Output(), peertest.GstPlayedThrough(p.Output(), err) == nil
}

// TestRTSPSPublishFFmpeg: ffmpeg publishes over RTSPS; a reader over plain RTSP decodes it.
func TestRTSPSPublishFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startSecureGateway(t, rtspsYAML, "  pub:\n    source: publisher\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ffmpegPublisher(ctx, t, "tcp", g.SURL+"pub", "640x360", 30)
	waitPublished(t, g.URL+"pub", 20*time.Second)
	checkReader(t, "tcp", g.URL+"pub")
}

// TestRTSPSPublishRtspclientsink: rtspclientsink publishes plain RTP over RTSPS, media over UDP
// and interleaved; a plain RTSP reader decodes it.
//
//	gst-launch-1.0 ... ! rtspclientsink location=rtsps://127.0.0.1:PORT/pub protocols=udp|tcp tls-validation-flags=0
func TestRTSPSPublishRtspclientsink(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspclientsink", "gst:x264enc", "gst:videotestsrc")
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			g := startSecureGateway(t, rtspsYAML, "  pub:\n    source: publisher\n")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append(rtspclientsinkArgs(g.SURL+"pub", proto, 30, false), "tls-validation-flags=0")
			pub := peertest.Run(ctx, t, "gst-launch-1.0", args...)
			if !waitCond(ctx, 20*time.Second, func() bool { return describeOK(g.URL + "pub") }) {
				t.Fatalf("publisher never became readable\n%s", tail(pub.Output()))
			}
			checkReader(t, "tcp", g.URL+"pub")
			pub.Kill()
		})
	}
}

// TestRTSPSPlainOff: rtsp.listen "" leaves only the TLS listener; its address answers RTSPS and a
// plain RTSP request sent to it gets no RTSP answer (the TLS handshake fails).
func TestRTSPSPlainOff(t *testing.T) {
	g := startSecureGateway(t, "rtsp:\n  listen: \"\"\n", "  demo:\n    source: demo\n")
	if g.RTSP.TLSAddr() == nil || g.RTSP.Addr().String() != g.RTSP.TLSAddr().String() {
		t.Fatalf("plain RTSP still listening at %v (TLS at %v)", g.RTSP.Addr(), g.RTSP.TLSAddr())
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	if st := rtspsStatus(t, addr, g.cert, "OPTIONS rtsps://"+addr+"/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n"); st != 200 {
		t.Fatalf("OPTIONS over TLS: status %d", st)
	}
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "OPTIONS rtsp://%s/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n", addr)
	line, _ := bufio.NewReader(nc).ReadString('\n')
	if strings.HasPrefix(line, "RTSP/1.0") {
		t.Fatalf("plain RTSP answered on the TLS port: %q", line)
	}
}

// rtspsStatus sends one raw request over TLS (verifying against ca) and returns the status.
func rtspsStatus(t testing.TB, addr string, ca *x509.Certificate, req string) int {
	t.Helper()
	c := dialRTSPS(t, addr, ca)
	defer c.Close()
	fmt.Fprint(c, req)
	st, _, _ := readResponse(t, bufio.NewReader(c))
	return st
}

func dialRTSPS(t testing.TB, addr string, ca *x509.Certificate) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// readResponse reads one RTSP response: status, headers (canonical keys as sent) and body.
func readResponse(t testing.TB, br *bufio.Reader) (int, map[string]string, string) {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read status line: %v", err)
	}
	var st int
	if _, err := fmt.Sscanf(line, "RTSP/1.0 %d", &st); err != nil {
		t.Fatalf("status line %q: %v", line, err)
	}
	h := map[string]string{}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read header: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	var body string
	if n := h["content-length"]; n != "" {
		var cl int
		fmt.Sscan(n, &cl)
		b := make([]byte, cl)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatalf("read body: %v", err)
		}
		body = string(b)
	}
	return st, h, body
}

// TestRTSPSCertReload: replacing the certificate files changes the certificate new handshakes
// see, without a restart.
func TestRTSPSCertReload(t *testing.T) {
	g := startSecureGateway(t, rtspsYAML, "  demo:\n    source: demo\n")
	addr := strings.TrimSuffix(strings.TrimPrefix(g.SURL, "rtsps://"), "/")
	first := peerSerial(t, addr)
	if first.Cmp(g.cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", first, g.cert.SerialNumber)
	}
	dir := t.TempDir()
	newCert, newKey, c2 := selfSigned(t, dir, "renewed")
	for _, f := range [][2]string{{newCert, g.certFile}, {newKey, g.keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		tmp := f[1] + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f[1]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := peerSerial(t, addr)
		if got.Cmp(c2.SerialNumber) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v after the files changed, want %v", got, c2.SerialNumber)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func peerSerial(t testing.TB, addr string) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate, trusts nothing
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}
