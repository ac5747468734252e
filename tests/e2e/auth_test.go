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
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/internal/gwtest"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/access"
)

// authRealm is the realm of the auth tests' configs; HA1 values are made for it.
const authRealm = "meshgw-test"

// authUser renders one auth.users entry (as `meshgw passwd` prints it) plus its permissions.
func authUser(t testing.TB, name, pw, kind string, digest bool, perms string) string {
	t.Helper()
	e, err := config.UserEntry(name, authRealm, pw, kind, digest)
	if err != nil {
		t.Fatal(err)
	}
	return e + perms
}

// authConfig has a viewer (reads demo), a publisher (reads everything, publishes pub), a user
// who may read only "other", anonymous reads of "open", and extra auth: keys.
func authConfig(t testing.TB, extra string) string {
	return `rtsp:
  listen: LISTEN
auth:
  realm: ` + authRealm + `
` + extra + `  anonymous: {read: [open]}
  users:
` + authUser(t, "viewer", "view-pw", "argon2id", true, "      read: [demo, \"pub\"]\n") +
		authUser(t, "pubber", "pub:pw", "bcrypt", true, "      read: [\"*\"]\n      publish: [pub]\n") +
		authUser(t, "other", "other-pw", "argon2id", true, "      read: [\"~^oth\"]\n") + `routes:
  demo: {source: demo}
  open: {source: demo}
  other: {source: demo}
  pub: {source: publisher}
`
}

// hostOf is host:port of a gateway URL.
func hostOf(g *gw) string { return strings.TrimSuffix(strings.TrimPrefix(g.URL, "rtsp://"), "/") }

// dialFrom opens a hand-driven RTSP connection from a chosen loopback address, so that what one
// test client does to its address (failures, bans, limits) does not touch the others.
func dialFrom(t testing.TB, host, local string) *protoConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", host, local, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &protoConn{t: t, nc: nc, br: bufio.NewReader(nc), host: host}
}

// authReq is a request with an optional Authorization header.
func authReq(method, url string, cseq int, auth string) string {
	s := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, cseq)
	if auth != "" {
		s += "Authorization: " + auth + "\r\n"
	}
	return s + "\r\n"
}

// digestAnswer computes the Authorization of user/pw for the Digest challenge of res with alg.
func digestAnswer(t testing.TB, res *protoResp, method, url, user, pw string, alg headers.AuthAlgorithm) string {
	t.Helper()
	for _, v := range authChallenges(res) {
		var h headers.Authenticate
		if err := h.Unmarshal(base.HeaderValue{v}); err != nil || h.Method != headers.AuthMethodDigest || h.Algorithm == nil || *h.Algorithm != alg {
			continue
		}
		name := access.MD5
		if alg == headers.AuthAlgorithmSHA256 {
			name = access.SHA256
		}
		resp := access.DigestHash(name, access.DigestHA1(name, user, h.Realm, pw)+":"+h.Nonce+":"+access.DigestHash(name, method+":"+url))
		return headers.Authorization{Method: headers.AuthMethodDigest, Username: user, Realm: h.Realm, Nonce: h.Nonce, URI: url, Response: resp, Algorithm: &alg}.Marshal()[0]
	}
	t.Fatalf("no digest challenge for %v in %q", alg, authChallenges(res))
	return ""
}

// authChallenges are the WWW-Authenticate values of a response, in order.
func authChallenges(r *protoResp) []string { return r.multi["www-authenticate"] }

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// TestAuthStatuses drives the authentication rules by hand and checks each status: no
// credentials 401 with both Digest challenges and no Basic over plain RTSP, wrong password 401,
// right password without permission 403, Basic refused over plain RTSP, anonymous reads where
// allowed, and publishing refused without the publish permission.
func TestAuthStatuses(t *testing.T) {
	g := startGateway(t, authConfig(t, ""))
	host := hostOf(g)
	url := g.URL + "demo"
	c := dialFrom(t, host, "127.0.0.21")

	r := c.expect(authReq("DESCRIBE", url, 1, ""), 401)
	ch := strings.Join(authChallenges(r), " | ")
	if !strings.Contains(ch, `algorithm="SHA-256"`) || !strings.Contains(ch, `algorithm="MD5"`) || strings.Contains(ch, "Basic") {
		t.Errorf("challenge over plain RTSP %q: want Digest SHA-256 and MD5, no Basic", ch)
	}
	c.expect(authReq("OPTIONS", url, 2, ""), 200) // OPTIONS needs no credentials
	c.expect(authReq("DESCRIBE", url, 3, digestAnswer(t, r, "DESCRIBE", url, "viewer", "wrong", headers.AuthAlgorithmMD5)), 401)
	for _, alg := range []headers.AuthAlgorithm{headers.AuthAlgorithmMD5, headers.AuthAlgorithmSHA256} {
		ok := c.expect(authReq("DESCRIBE", url, 4, digestAnswer(t, r, "DESCRIBE", url, "viewer", "view-pw", alg)), 200)
		if !strings.Contains(ok.body, "m=video") {
			t.Errorf("DESCRIBE answered without a session description: %q", ok.body)
		}
	}
	otherURL := g.URL + "other"
	c.expect(authReq("DESCRIBE", otherURL, 5, digestAnswer(t, r, "DESCRIBE", otherURL, "viewer", "view-pw", headers.AuthAlgorithmMD5)), 403)
	c.expect(authReq("DESCRIBE", otherURL, 6, digestAnswer(t, r, "DESCRIBE", otherURL, "other", "other-pw", headers.AuthAlgorithmSHA256)), 200)
	// Basic with the right password is still refused over plain RTSP, with a Digest challenge
	rb := c.expect(authReq("DESCRIBE", url, 7, basicAuth("viewer", "view-pw")), 401)
	if ch := strings.Join(authChallenges(rb), " | "); !strings.Contains(ch, "Digest") || strings.Contains(ch, "Basic") {
		t.Errorf("challenge after Basic over plain RTSP: %q", ch)
	}
	c.expect(authReq("DESCRIBE", g.URL+"open", 8, ""), 200)
	// a SETUP that skips DESCRIBE is authorized too
	setup := "SETUP " + url + "/trackID=0 RTSP/1.0\r\nCSeq: 9\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
	c.expect(setup, 401)
	// ANNOUNCE needs the publish permission
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
	pubURL := g.URL + "pub"
	ann := func(cseq int, auth string) string {
		return fmt.Sprintf("ANNOUNCE %s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: %s\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", pubURL, cseq, auth, len(sdp), sdp)
	}
	c.expect(ann(10, digestAnswer(t, r, "ANNOUNCE", pubURL, "viewer", "view-pw", headers.AuthAlgorithmMD5)), 403)
	c.expect(ann(11, digestAnswer(t, r, "ANNOUNCE", pubURL, "pubber", "pub:pw", headers.AuthAlgorithmMD5)), 200)
}

// TestAuthBan fails three logins from one address and checks that it is then refused with 403
// (even with the right password, and on a new connection) while another address plays.
func TestAuthBan(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, authConfig(t, "  max_failures: 3\n  failure_window: 1m\n  ban_time: 1m\n"))
	host := hostOf(g)
	url := g.URL + "demo"
	// a session set up before the ban from the same address
	early := dialFrom(t, host, "127.0.0.22")
	er := early.expect(authReq("DESCRIBE", url, 1, ""), 401)
	setup := "SETUP " + url + "/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nAuthorization: " +
		digestAnswer(t, er, "SETUP", url+"/trackID=0", "viewer", "view-pw", headers.AuthAlgorithmMD5) + "\r\n\r\n"
	sess := early.expect(setup, 200).get("Session")
	sess, _, _ = strings.Cut(sess, ";")

	c := dialFrom(t, host, "127.0.0.22")
	r := c.expect(authReq("DESCRIBE", url, 1, ""), 401)
	for i := range 3 {
		c.expect(authReq("DESCRIBE", url, 2+i, digestAnswer(t, r, "DESCRIBE", url, "viewer", fmt.Sprint("guess", i), headers.AuthAlgorithmMD5)), 401)
	}
	br := c.expect(authReq("DESCRIBE", url, 9, digestAnswer(t, r, "DESCRIBE", url, "viewer", "view-pw", headers.AuthAlgorithmMD5)), 403)
	if !strings.Contains(br.reason, "banned") {
		t.Errorf("ban answered %d %q", br.status, br.reason)
	}
	if _, closed := c.closedWithin(5 * time.Second); !closed {
		t.Error("banned connection left open")
	}
	c2 := dialFrom(t, host, "127.0.0.22")
	c2.expect(authReq("OPTIONS", url, 1, ""), 403)
	if _, closed := c2.closedWithin(5 * time.Second); !closed {
		t.Error("banned address's new connection left open")
	}
	// the session made before the ban goes on; a new login on its connection is refused
	early.expect("GET_PARAMETER "+url+" RTSP/1.0\r\nCSeq: 3\r\nSession: "+sess+"\r\n\r\n", 200)
	early.expect(authReq("DESCRIBE", url, 4, digestAnswer(t, er, "DESCRIBE", url, "viewer", "view-pw", headers.AuthAlgorithmMD5)), 403)
	// another address is not affected
	n, out := ffmpegFrames(t, "tcp", "rtsp://viewer:view-pw@"+host+"/demo", 3)
	if n < 50 {
		t.Errorf("ffmpeg from another address decoded %d frames while 127.0.0.22 is banned\n%s", n, tail(out))
	}
}

// TestAuthDigestFFmpeg plays with ffmpeg's Digest (it answers the MD5 challenge) over UDP and
// TCP, and checks that a wrong password and a missing permission make ffmpeg fail.
func TestAuthDigestFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, authConfig(t, ""))
	host := hostOf(g)
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			p := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs(tr, "rtsp://viewer:view-pw@"+host+"/demo", 5)...)
			playCheckFFmpeg(t, "ffmpeg digest "+tr, p, 40*time.Second, 100)
		})
	}
	for _, c := range []struct{ url, want string }{
		{"rtsp://viewer:nope@" + host + "/demo", "401"},
		{"rtsp://viewer:view-pw@" + host + "/other", "403"},
		{"rtsp://" + host + "/demo", "401"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p := peertest.Run(ctx, t, "ffmpeg", playFFmpegArgs("tcp", c.url, 2)...)
		err := p.Wait(30 * time.Second)
		cancel()
		if err == nil || !strings.Contains(p.Output(), c.want) {
			t.Errorf("ffmpeg %s: exit %v, want a failure naming %s\n%s", c.url, err, c.want, tail(p.Output()))
		}
	}
}

// TestAuthDigestGStreamer plays with rtspsrc's user-id/user-pw (Digest).
func TestAuthDigestGStreamer(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:rtph264depay", "gst:avdec_h264", "gst:rtpmp4gdepay", "gst:avdec_aac")
	g := startGateway(t, authConfig(t, ""))
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			// user-id/user-pw are properties of rtspsrc: they go right after its name=s
			args := slices.Insert(playGstArgs(g.URL+"demo", proto, 50), 5, "user-id=viewer", "user-pw=view-pw")
			out := peertest.Run(context.Background(), t, "gst-launch-1.0", args...).MustPlayGst(40 * time.Second)
			if !peertest.GstGotEOS(out) {
				t.Errorf("rtspsrc with credentials: no EOS\n%s", tail(out))
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := slices.Insert(playGstArgs(g.URL+"demo", "tcp", 50), 5, "user-id=viewer", "user-pw=bad")
	p := peertest.Run(ctx, t, "gst-launch-1.0", args...)
	if err := p.Wait(30 * time.Second); err == nil || peertest.GstGotEOS(p.Output()) {
		t.Errorf("rtspsrc with a wrong password played (exit %v)\n%s", err, tail(p.Output()))
	}
}

// TestAuthPublishFFmpeg publishes with credentials: allowed with the publish permission (and read
// back by a reader with credentials), refused without it.
func TestAuthPublishFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, authConfig(t, ""))
	host := hostOf(g)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	denied := ffmpegPublisher(ctx, t, "tcp", "rtsp://viewer:view-pw@"+host+"/pub", "320x240", 3)
	if err := denied.Wait(30 * time.Second); err == nil || !strings.Contains(denied.Output(), "403") {
		t.Errorf("publishing without permission: exit %v\n%s", err, tail(denied.Output()))
	}
	pub := ffmpegPublisher(ctx, t, "tcp", "rtsp://pubber:pub:pw@"+host+"/pub", "320x240", 8)
	readURL := "rtsp://viewer:view-pw@" + host + "/pub"
	waitPublished(t, readURL, 15*time.Second)
	checkReader(t, "udp", readURL)
	waitExit(t, pub, 30*time.Second, "ffmpeg publisher with credentials")
}

// tlsListener wraps a loopback listener in TLS with a fresh self-signed certificate.
func tlsListener(t testing.TB) net.Listener {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
}

// TestAuthBasicTLS runs a TLS front door on the gateway's control (RTSPS proper is configured by
// the rtsps: section; here the listener is wrapped by hand) with a user that has only a bcrypt
// hash: the challenge offers Basic, Basic is accepted, and ffmpeg plays over rtsps:// with it.
func TestAuthBasicTLS(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, authConfig(t, ""))
	tlsUser := authUser(t, "tlsonly", "tls-pw", "bcrypt", false, "      read: [demo]\n")
	cfg, err := config.Parse("tls.yaml", []byte("auth:\n  realm: "+authRealm+"\n  users:\n"+tlsUser+"routes: {demo: {source: demo}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rtsp.NewServer(rtsp.ServerConfig{
		Listener: tlsListener(t), Handler: g.Control, Logger: gwtest.Logger(t), AllowTCP: true, AllowUDP: true,
		Auth: cfg.Auth.Policy(nil), Bans: access.NewBans(access.BanConfig{MaxFailures: 5, Window: time.Minute, BanTime: time.Minute}, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close() })
	host := srv.Addr().String()
	url := "rtsps://" + host + "/demo"

	nc, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &protoConn{t: t, nc: nc, br: bufio.NewReader(nc), host: host}
	r := c.expect(authReq("DESCRIBE", url, 1, ""), 401)
	if ch := strings.Join(authChallenges(r), " | "); ch != `Basic realm="`+authRealm+`"` {
		t.Errorf("TLS challenge for a Basic-only user list: %q", ch)
	}
	c.expect(authReq("DESCRIBE", url, 2, basicAuth("tlsonly", "wrong")), 401)
	c.expect(authReq("DESCRIBE", url, 3, basicAuth("tlsonly", "tls-pw")), 200)

	p := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("tcp", "rtsps://tlsonly:tls-pw@"+host+"/demo", 4)...)
	playCheckFFmpeg(t, "ffmpeg rtsps basic", p, 40*time.Second, 75)
}

// TestAuthHTTPCallout sends an unknown user's Basic credentials (allowed over plain RTSP here)
// to an HTTP service, which allows one password; ffmpeg plays with it and fails with another.
func TestAuthHTTPCallout(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	var mu sync.Mutex
	var seen []access.CalloutRequest
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cr access.CalloutRequest
		if err := json.NewDecoder(r.Body).Decode(&cr); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen = append(seen, cr)
		mu.Unlock()
		if cr.User == "ext" && cr.Password == "ext-pw" && cr.Action == access.Read && cr.Path == "demo" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer svc.Close()
	g := startGateway(t, "rtsp:\n  listen: LISTEN\nauth:\n  allow_basic_plain: true\n  http: "+svc.URL+"\n  http_timeout: 5s\nroutes:\n  demo: {source: demo}\n")
	host := hostOf(g)
	p := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("tcp", "rtsp://ext:ext-pw@"+host+"/demo?token=1", 3)...)
	playCheckFFmpeg(t, "ffmpeg via callout", p, 40*time.Second, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := peertest.Run(ctx, t, "ffmpeg", playFFmpegArgs("tcp", "rtsp://ext:other@"+host+"/demo", 2)...)
	if err := bad.Wait(30 * time.Second); err == nil || !strings.Contains(bad.Output(), "401") {
		t.Errorf("callout refusal: exit %v\n%s", err, tail(bad.Output()))
	}
	mu.Lock()
	defer mu.Unlock()
	var ok bool
	for _, s := range seen {
		if s == (access.CalloutRequest{User: "ext", Password: "ext-pw", Action: access.Read, Path: "demo", IP: "127.0.0.1", Query: "token=1"}) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("the service never saw the expected request; it saw %+v", seen)
	}
}

// TestAuthAllowIPs checks the address allow lists: a route's allow_ips without an auth:
// section, and auth.allow_ips in front of credentials.
func TestAuthAllowIPs(t *testing.T) {
	g := startGateway(t, `rtsp:
  listen: LISTEN
routes:
  demo: {source: demo}
  lan: {source: demo, allow_ips: [127.0.0.50/32]}
`)
	host := hostOf(g)
	dialFrom(t, host, "127.0.0.51").expect(authReq("DESCRIBE", g.URL+"lan", 1, ""), 403)
	dialFrom(t, host, "127.0.0.50").expect(authReq("DESCRIBE", g.URL+"lan", 1, ""), 200)
	dialFrom(t, host, "127.0.0.51").expect(authReq("DESCRIBE", g.URL+"demo", 1, ""), 200)

	g2 := startGateway(t, authConfig(t, "  allow_ips: [127.0.0.52/32]\n"))
	host2 := hostOf(g2)
	// refused before credentials are looked at: no challenge, no failure counted
	r := dialFrom(t, host2, "127.0.0.53").expect(authReq("DESCRIBE", g2.URL+"open", 1, ""), 403)
	if len(authChallenges(r)) != 0 {
		t.Errorf("address refusal carries a challenge: %q", authChallenges(r))
	}
	dialFrom(t, host2, "127.0.0.52").expect(authReq("DESCRIBE", g2.URL+"open", 1, ""), 200)
}

// TestAuthPublishRtspclientsink publishes with GStreamer's rtspclientsink and its user-id/user-pw
// (Digest), and reads the stream back with credentials.
func TestAuthPublishRtspclientsink(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspclientsink", "gst:x264enc", "gst:videotestsrc")
	g := startGateway(t, authConfig(t, ""))
	host := hostOf(g)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pub := peertest.Run(ctx, t, "gst-launch-1.0", append(rtspclientsinkArgs(g.URL+"pub", "tcp", 8, false), "user-id=pubber", "user-pw=pub:pw")...)
	readURL := "rtsp://viewer:view-pw@" + host + "/pub"
	waitPublished(t, readURL, 15*time.Second)
	checkReader(t, "tcp", readURL)
	waitRtspclientsinkEnd(t, g, pub, "tcp")
}
