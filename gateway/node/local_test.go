package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/rtp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recEvents struct {
	mu     sync.Mutex
	ready  []string
	tracks map[string][]rtp.Track // the latest of each stream
}

func (e *recEvents) SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ready = append(e.ready, stream)
	if e.tracks == nil {
		e.tracks = map[string][]rtp.Track{}
	}
	e.tracks[stream] = tracks
}
func (e *recEvents) SourceDown(string, error) {}

func newLocal(t *testing.T, ev Events) *Local {
	t.Helper()
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"}, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestValidate(t *testing.T) {
	ap := netip.MustParseAddrPort("127.0.0.1:5000")
	cases := map[string]Flow{
		"no ID":            {Stream: "s", Spec: DemoSource{}},
		"no stream":        {ID: "f", Spec: DemoSource{}},
		"pull w/o URL":     {ID: "f", Stream: "s", Spec: PullSource{}},
		"pub w/o trks":     {ID: "f", Stream: "s", Spec: PublisherSource{}},
		"sink w/o dst":     {ID: "f", Stream: "s", Spec: UDPSink{}},
		"neg track":        {ID: "f", Stream: "s", Spec: UDPSink{Track: -1, RTP: ap, RTCP: ap}},
		"no spec":          {ID: "f", Stream: "s"},
		"relay w/o tracks": {ID: "f", Stream: "s", Spec: RelaySource{SSRCs: []uint32{1}, RTP: ap, RTCP: ap}},
		"relay SSRC count": {ID: "f", Stream: "s", Spec: RelaySource{Tracks: make([]rtp.Track, 2), SSRCs: []uint32{1}, RTP: ap, RTCP: ap}},
		"relay SSRC 0":     {ID: "f", Stream: "s", Spec: RelaySource{Tracks: make([]rtp.Track, 1), SSRCs: []uint32{0}, RTP: ap, RTCP: ap}},
		"relay SSRC twice": {ID: "f", Stream: "s", Spec: RelaySource{Tracks: make([]rtp.Track, 2), SSRCs: []uint32{5, 5}, RTP: ap, RTCP: ap}},
		"relay w/o addr":   {ID: "f", Stream: "s", Spec: RelaySource{Tracks: make([]rtp.Track, 1), SSRCs: []uint32{1}, RTP: ap}},
	}
	for name, f := range cases {
		if err := f.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := Flow{ID: "f", Stream: "s", Spec: RelaySource{Tracks: make([]rtp.Track, 2), SSRCs: []uint32{5, 6}, RTP: ap, RTCP: ap}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid relay refused: %v", err)
	}
}

func TestSinkOnUnknownStreamIsNotFound(t *testing.T) {
	n := newLocal(t, nil)
	ap := netip.MustParseAddrPort("127.0.0.1:5000")
	_, err := n.Apply(context.Background(), Flow{ID: "r", Stream: "nope", Spec: UDPSink{RTP: ap, RTCP: ap}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if err := n.Delete(context.Background(), "never-created"); err != nil {
		t.Fatalf("deleting an unknown flow must be a no-op: %v", err)
	}
}

// TestDemoToUDPSink runs the demo source into a paused sink, plays it, pauses it and deletes it,
// with a real UDP socket as the reader.
func TestDemoToUDPSink(t *testing.T) {
	ev := &recEvents{}
	n := newLocal(t, ev)
	ctx := context.Background()
	if _, err := n.Apply(ctx, Flow{ID: "src", Stream: "s", Spec: DemoSource{}}); err != nil {
		t.Fatal(err)
	}
	// the same command again is harmless
	if _, err := n.Apply(ctx, Flow{ID: "src", Stream: "s", Spec: DemoSource{}}); err != nil {
		t.Fatalf("re-applying a source: %v", err)
	}
	ev.mu.Lock()
	if len(ev.ready) != 1 || ev.ready[0] != "s" {
		t.Fatalf("SourceReady events = %v", ev.ready)
	}
	ev.mu.Unlock()

	rd, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	dst := rd.LocalAddr().(*net.UDPAddr).AddrPort()
	f := Flow{ID: "rd", Version: 1, Stream: "s", Spec: UDPSink{Track: 0, RTP: dst, RTCP: netip.AddrPortFrom(dst.Addr(), dst.Port()+1), Paused: true}}
	st, err := n.Apply(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if st.RTPPort != n.UDP().RTPPort() || st.RTCPPort != st.RTPPort+1 || st.SSRC == 0 {
		t.Fatalf("status = %+v", st)
	}
	if got := recvCount(rd, 300*time.Millisecond); got != 0 {
		t.Fatalf("a paused sink sent %d packets", got)
	}
	f, f.Version = f.WithPaused(false), 2
	if _, err := n.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got := recvCount(rd, 500*time.Millisecond); got < 5 {
		t.Fatalf("playing sink sent %d packets in 500ms", got)
	}
	// a stale command (older version) does not undo the newer state
	stale := f
	stale, stale.Version = stale.WithPaused(true), 1
	if _, err := n.Apply(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if got := recvCount(rd, 300*time.Millisecond); got == 0 {
		t.Fatal("a stale pause command stopped the sink")
	}
	bad := f
	bad = with(bad, func(s *UDPSink) { s.Track = 1 })
	if _, err := n.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "only Paused may change") {
		t.Fatalf("changing a fixed field: err = %v", err)
	}
	stats, err := n.Stats("rd")
	if err != nil || stats.Packets == 0 {
		t.Fatalf("stats = %+v, %v", stats, err)
	}
	if err := n.Delete(ctx, "rd"); err != nil {
		t.Fatal(err)
	}
	recvCount(rd, 100*time.Millisecond) // drain what was in flight
	if got := recvCount(rd, 300*time.Millisecond); got != 0 {
		t.Fatalf("deleted sink still sent %d packets", got)
	}
	if err := n.Delete(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Hub("s", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stream survives its source with no sinks: %v", err)
	}
}

func recvCount(c *net.UDPConn, d time.Duration) int {
	buf := make([]byte, 2048)
	n := 0
	deadline := time.Now().Add(d)
	for {
		_ = c.SetReadDeadline(deadline)
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return n
		}
		n++
	}
}

// TestPublisherHubsSurviveForSinks: a publisher source deleted while a sink hangs on the stream
// keeps the hubs, and a returning publisher with the same tracks continues them.
func TestPublisherHubsSurviveForSinks(t *testing.T) {
	n := newLocal(t, nil)
	ctx := context.Background()
	tracks := []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}}
	if _, err := n.Apply(ctx, Flow{ID: "pub", Version: 1, Stream: "p", Spec: PublisherSource{Tracks: tracks}}); err != nil {
		t.Fatal(err)
	}
	h1, err := n.Hub("p", 0)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort("127.0.0.1:9")
	if _, err := n.Apply(ctx, Flow{ID: "rd", Stream: "p", Spec: UDPSink{RTP: ap, RTCP: ap}}); err != nil {
		t.Fatal(err)
	}
	// the same publisher flow updated for a new publisher with the same tracks keeps the hub
	if _, err := n.Apply(ctx, Flow{ID: "pub", Version: 2, Stream: "p", Spec: PublisherSource{Tracks: tracks}}); err != nil {
		t.Fatal(err)
	}
	h2, err := n.Hub("p", 0)
	if err != nil || h2 != h1 {
		t.Fatalf("hub replaced for the same layout: %v", err)
	}
	if err := n.Delete(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	if h3, err := n.Hub("p", 0); err != nil || h3 != h1 {
		t.Fatalf("hub gone while a sink hangs on it: %v", err)
	}
	// the last sink of a stream without source takes the stream with it
	if err := n.Delete(ctx, "rd"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Hub("p", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("orphan stream kept: %v", err)
	}
}

// with returns f with its spec, of type S, changed by mod.
func with[S Spec](f Flow, mod func(*S)) Flow {
	s := f.Spec.(S)
	mod(&s)
	f.Spec = s
	return f
}

// TestFlowKeyRedacted: a flow printed in any form, as a log line would, never shows its SRTP key.
func TestFlowKeyRedacted(t *testing.T) {
	key := []byte("0123456789abcdefghijklmnopqrst")
	f := Flow{ID: "rd1", Stream: "s", Spec: UDPSink{SRTPKey: key}}
	for _, s := range []string{fmt.Sprint(f), fmt.Sprintf("%v %+v %#v %s", f, f, f, f), fmt.Sprint(&f)} {
		if strings.Contains(s, "0123456789") || strings.Contains(s, fmt.Sprint(key[:4])) || !strings.Contains(s, "redacted") {
			t.Fatalf("flow printed as %q", s)
		}
	}
	if string(f.Spec.(UDPSink).SRTPKey) != string(key) {
		t.Fatal("printing changed the flow's key")
	}
}
