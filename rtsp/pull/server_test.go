package pull

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/demo"
)

// upstream is the independent peer of these tests: gortsplib's own server
// streaming the demo clip (H.264 + AAC) in real time.
type upstream struct {
	t      *testing.T
	addr   string // host:port of RTSP
	udp    bool   // offer UDP transport
	user   string // require these credentials when set
	pass   string
	tlsCfg *tls.Config    // serve RTSPS with this
	roots  *x509.CertPool // that trust tlsCfg

	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	desc   *description.Session
	player *demo.Player
	mu     sync.Mutex
	pkt    pionrtp.Packet
}

func testClip(t *testing.T) *demo.Clip {
	t.Helper()
	c, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start (re)starts the server on u.addr; it is safe after stop.
func (u *upstream) start() {
	t := u.t
	t.Helper()
	clip := testClip(t)
	var ss sdp.SessionDescription
	if err := ss.Unmarshal(clip.SDP()); err != nil {
		t.Fatal(err)
	}
	u.desc = &description.Session{}
	if err := u.desc.Unmarshal(&ss); err != nil {
		t.Fatal(err)
	}
	if u.addr == "" {
		u.addr = freeTCPAddr(t)
	}
	var err error
	for range 20 {
		u.srv = &gortsplib.Server{Handler: u, RTSPAddress: u.addr, TLSConfig: u.tlsCfg}
		if u.udp {
			p := 20000 + 2*mrand.IntN(20000)
			u.srv.UDPRTPAddress = fmt.Sprintf("127.0.0.1:%d", p)
			u.srv.UDPRTCPAddress = fmt.Sprintf("127.0.0.1:%d", p+1)
		}
		if err = u.srv.Start(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // port still in TIME_WAIT or taken
	}
	if err != nil {
		t.Fatalf("upstream start: %v", err)
	}
	stream := &gortsplib.ServerStream{Server: u.srv, Desc: u.desc}
	if err := stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	u.stream = stream
	u.mu.Unlock()
	u.player = demo.NewPlayer(clip, u, nil)
	u.player.Start()
}

// stop kills the server; a second stop without start does nothing.
func (u *upstream) stop() {
	if u.player == nil {
		return
	}
	defer func() { u.player = nil }()
	u.player.Close()
	u.stream.Close()
	u.srv.Close()
}

func (u *upstream) url() string {
	scheme := "rtsp"
	if u.tlsCfg != nil {
		scheme = "rtsps"
	}
	return scheme + "://" + u.addr + "/cam"
}

// WriteRTP feeds the demo player's packets to the server's readers.
// The upstream plays the demo clip into its server stream as an
// rtp.SourceHandler.
func (u *upstream) OnReady([]byte, []rtp.Track) error { return nil }
func (u *upstream) WriteRTCP(int, []byte)             {}
func (u *upstream) OnDisconnect(error)                {}

func (u *upstream) WriteRTP(track int, b []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.pkt.Unmarshal(b); err != nil {
		return
	}
	p := u.pkt
	p.Payload = append([]byte(nil), u.pkt.Payload...)
	_ = u.stream.WritePacketRTP(u.desc.Medias[track], &p)
}

func (u *upstream) auth(ctx *gortsplib.ServerConn, req *base.Request) (*base.Response, bool) {
	if u.user == "" || ctx.VerifyCredentials(req, u.user, u.pass) {
		return nil, true
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, false
}

func (u *upstream) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, ok := u.auth(ctx.Conn, ctx.Request); !ok {
		return res, nil, liberrors.ErrServerAuth{}
	}
	return &base.Response{StatusCode: base.StatusOK}, u.getStream(), nil
}

// getStream locks: the stream is created after the server starts and the
// race detector cannot see the ordering through the socket.
func (u *upstream) getStream() *gortsplib.ServerStream {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stream
}

func (u *upstream) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, ok := u.auth(ctx.Conn, ctx.Request); !ok {
		return res, nil, liberrors.ErrServerAuth{}
	}
	return &base.Response{StatusCode: base.StatusOK}, u.getStream(), nil
}

func (u *upstream) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}
