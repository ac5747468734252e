package demo

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
)

// clipServer serves one Player through gortsplib's server: not the gateway's
// front door, just enough to let real players judge the packets.
type clipServer struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	desc   *description.Session
	mu     sync.Mutex
	pkt    pionrtp.Packet
}

// getStream takes the lock because the stream is created after the server
// starts, and the race detector cannot see the ordering through the socket.
func (s *clipServer) getStream() *gortsplib.ServerStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

func (s *clipServer) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, s.getStream(), nil
}

func (s *clipServer) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, s.getStream(), nil
}

func (s *clipServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *clipServer) OnReady([]byte, []rtp.Track) error { return nil }
func (s *clipServer) WriteRTCP(int, []byte)             {}
func (s *clipServer) OnDisconnect(error)                {}

func (s *clipServer) WriteRTP(track int, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pkt.Unmarshal(b); err != nil {
		return
	}
	// the server queues the packet; give it its own payload
	p := s.pkt
	p.Payload = append([]byte(nil), s.pkt.Payload...)
	_ = s.stream.WritePacketRTP(s.desc.Medias[track], &p)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestFFmpegDecodesDemo is the user's view: ffmpeg pulls the demo over RTSP
// (TCP) for a few seconds and must decode it without a single error.
func TestFFmpegDecodesDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time e2e test")
	}
	needFFmpeg(t)
	c := mustLoad(t)
	var ss sdp.SessionDescription
	if err := ss.Unmarshal(c.SDP()); err != nil {
		t.Fatal(err)
	}
	cs := &clipServer{desc: &description.Session{}}
	if err := cs.desc.Unmarshal(&ss); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cs.srv = &gortsplib.Server{Handler: cs, RTSPAddress: addr}
	if err := cs.srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer cs.srv.Close()
	stream := &gortsplib.ServerStream{Server: cs.srv, Desc: cs.desc}
	if err := stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	cs.mu.Lock()
	cs.stream = stream
	cs.mu.Unlock()

	p := NewPlayer(c, cs, nil)
	p.Start()
	defer p.Close()

	// MESHGW_LONG_E2E=1 plays across the loop seam (12 s)
	dur := "2.5"
	if os.Getenv("MESHGW_LONG_E2E") == "1" {
		dur = "12"
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-nostdin",
		"-rtsp_transport", "tcp", "-i", "rtsp://"+addr+"/demo",
		"-t", dur, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("ffmpeg reported problems:\n%s", s)
	}
}
