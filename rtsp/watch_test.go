package rtsp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/meshgw/meshgw/rtp"
)

// endingHandler serves one-track streams over UDP whose readers share their route's Done channel,
// as the control's readers do.
type endingHandler struct {
	refusingHandler
	done map[string]chan struct{}
}

func (h endingHandler) OpenRead(_ context.Context, _ ConnInfo, path string) (ReadStream, error) {
	return fakeStream{done: h.done[path]}, nil
}

type fakeStream struct{ done chan struct{} }

func (fakeStream) SDP() []byte { return nil }
func (fakeStream) Tracks() []rtp.Track {
	return []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}}
}
func (fakeStream) Play(context.Context) ([]TrackPosition, error) { return nil, nil }
func (fakeStream) Pause(context.Context) error                   { return nil }
func (fakeStream) LastActivity() time.Time                       { return time.Time{} }
func (f fakeStream) Done() <-chan struct{}                       { return f.done }
func (fakeStream) Close()                                        {}
func (fakeStream) SetupUDP(context.Context, int, netip.AddrPort, netip.AddrPort) (UDPSetup, error) {
	return UDPSetup{RTPPort: 5000, RTCPPort: 5001}, nil
}
func (fakeStream) SetupMulticast(context.Context, int) (MulticastSetup, error) {
	return MulticastSetup{}, Errorf(base.StatusUnsupportedTransport, "no multicast")
}
func (fakeStream) SetupTCP(context.Context, int) (*rtp.Hub, error) {
	return nil, Errorf(base.StatusUnsupportedTransport, "no TCP")
}

// playUDP sets up and plays path over UDP on a new connection.
func playUDP(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br := bufio.NewReader(nc)
	do := func(req string) string {
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		var res base.Response
		if err := res.Unmarshal(br); err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != base.StatusOK {
			t.Fatalf("%s: %d %s", strings.Fields(req)[0], res.StatusCode, res.StatusMessage)
		}
		if h := res.Header["Session"]; len(h) == 1 {
			return strings.Split(h[0], ";")[0]
		}
		return ""
	}
	u := fmt.Sprintf("rtsp://%s/%s", addr, path)
	id := do("SETUP " + u + "/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=7000-7001\r\n\r\n")
	do("PLAY " + u + " RTSP/1.0\r\nCSeq: 2\r\nSession: " + id + "\r\n\r\n")
	return nc
}

// TestStreamEndEndsItsSessions: the readers of a stream that ends are disconnected at once, through
// one goroutine for all of them; readers of another stream stay, and a stream's goroutine ends with
// its last session.
func TestStreamEndEndsItsSessions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := endingHandler{done: map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}}
	s, err := NewServer(ServerConfig{Listener: ln, Handler: h, AllowUDP: true, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	addr := s.Addr().String()

	a1, a2, b := playUDP(t, addr, "a"), playUDP(t, addr, "a"), playUDP(t, addr, "b")
	groups := func() int {
		s.watch.mu.Lock()
		defer s.watch.mu.Unlock()
		return len(s.watch.groups)
	}
	if n := groups(); n != 2 {
		t.Fatalf("%d watch groups for 3 sessions of 2 streams, want 2", n)
	}

	close(h.done["a"])
	for _, nc := range []net.Conn{a1, a2} {
		readUntilClosed(t, nc, 10*time.Second)
	}
	_ = b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := b.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("reader of the other stream: %v, want it kept", err)
	}

	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for groups() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d watch groups left after every session ended", groups())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
