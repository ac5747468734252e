package pull

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is an rtp.SourceHandler that remembers events; tests wait on conditions
// over it rather than on time.
type recorder struct {
	mu        sync.Mutex
	events    []string // "ready", "disconnect"
	disc      []error
	sdp       []byte
	tracks    []rtp.Track
	rtp       [2]int
	rtcp      int
	early     int // packets outside OnReady..OnDisconnect
	inSession bool
	refuse    int // refuse this many OnReady calls
	changed   chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) OnReady(sdp []byte, tracks []rtp.Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.poke()
	if r.refuse > 0 {
		r.refuse--
		r.events = append(r.events, "refused")
		return errors.New("not now")
	}
	r.events = append(r.events, "ready")
	r.sdp, r.tracks, r.inSession = sdp, tracks, true
	return nil
}

func (r *recorder) WriteRTP(track int, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inSession {
		r.early++
	}
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		panic("not RTP")
	}
	r.rtp[track]++
	r.poke()
}

func (r *recorder) WriteRTCP(track int, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := rtcp.Unmarshal(pkt); err != nil {
		panic(err)
	}
	r.rtcp++
	r.poke()
}

func (r *recorder) OnDisconnect(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "disconnect")
	r.disc = append(r.disc, err)
	r.inSession = false
	r.poke()
}

// waitFor waits until cond holds; the deadline only turns a hang into a
// failure, the test asserts on events.
func (r *recorder) waitFor(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; events %v, rtp %v", what, r.events, r.rtp)
		}
	}
}

func (r *recorder) count(ev string) int {
	n := 0
	for _, e := range r.events {
		if e == ev {
			n++
		}
	}
	return n
}

func checkTracks(t *testing.T, r *recorder) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}, {Media: "audio", PayloadType: 97, ClockRate: 48000}}
	if len(r.tracks) != 2 || r.tracks[0] != want[0] || r.tracks[1] != want[1] {
		t.Errorf("tracks = %+v, want %+v", r.tracks, want)
	}
	if !strings.Contains(string(r.sdp), "H264/90000") || !strings.Contains(string(r.sdp), "mpeg4-generic/48000") {
		t.Errorf("SDP is not upstream's:\n%s", r.sdp)
	}
	if r.early != 0 {
		t.Errorf("%d packets delivered outside OnReady..OnDisconnect", r.early)
	}
}

func playAndClose(t *testing.T, up *upstream, transport, wantTransport string) {
	t.Helper()
	up.start()
	defer up.stop()
	rec := newRecorder()
	p := New(Config{URL: up.url(), Transport: transport, ReconnectMin: 20 * time.Millisecond, TLSConfig: nil}, rec)
	if up.tlsCfg != nil {
		p.cfg.TLSConfig = clientTLS(t, up)
	}
	p.Start()
	rec.waitFor(t, "video and audio packets", func(r *recorder) bool { return r.rtp[0] >= 40 && r.rtp[1] >= 20 })
	checkTracks(t, rec)
	st := p.State()
	if st.Status != StatusPlaying || st.Transport != wantTransport || st.Sessions != 1 {
		t.Errorf("state = %+v, want playing over %s", st, wantTransport)
	}

	// upstream RTCP reaches WriteRTCP
	if err := up.stream.WritePacketRTCP(up.desc.Medias[0], &rtcp.SenderReport{SSRC: 1, NTPTime: 2, RTPTime: 3}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "RTCP", func(r *recorder) bool { return r.rtcp >= 1 })

	p.Close()
	p.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := strings.Join(rec.events, ","); got != "ready,disconnect" {
		t.Errorf("events = %s", got)
	}
	if !errors.Is(rec.disc[0], ErrClosed) {
		t.Errorf("disconnect reason = %v, want ErrClosed", rec.disc[0])
	}
	if s := p.State().Status; s != StatusClosed {
		t.Errorf("status after Close = %v", s)
	}
}

func TestPlayUDP(t *testing.T) {
	playAndClose(t, &upstream{t: t, udp: true}, "udp", "udp")
}

func TestPlayTCP(t *testing.T) {
	playAndClose(t, &upstream{t: t, udp: true}, "tcp", "tcp")
}

func TestAutoPrefersUDP(t *testing.T) {
	playAndClose(t, &upstream{t: t, udp: true}, "auto", "udp")
}

// TestAutoFallsBackToTCP: the server answers a UDP SETUP with 461.
func TestAutoFallsBackToTCP(t *testing.T) {
	playAndClose(t, &upstream{t: t, udp: false}, "", "tcp")
}

func TestCredentials(t *testing.T) {
	up := &upstream{t: t, udp: true, user: "cam", pass: "s3cret"}
	up.start()
	defer up.stop()

	bad := newRecorder()
	pb := New(Config{URL: "rtsp://cam:wrong@" + up.addr + "/cam", Transport: "tcp", ReconnectMin: time.Hour}, bad)
	pb.Start()
	var st State
	for i := 0; ; i++ {
		if st = pb.State(); st.Status == StatusBackoff || i > 400 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	pb.Close()
	if st.Status != StatusBackoff || st.Err == nil || !strings.Contains(st.Err.Error(), "401") {
		t.Errorf("wrong password: state %+v, want backoff with a 401", st)
	}
	if strings.Contains(st.Err.Error(), "wrong") {
		t.Errorf("error leaks the password: %v", st.Err)
	}

	good := newRecorder()
	p := New(Config{URL: "rtsp://cam:s3cret@" + up.addr + "/cam", Transport: "tcp"}, good)
	p.Start()
	good.waitFor(t, "packets with credentials", func(r *recorder) bool { return r.rtp[0] > 10 })
	p.Close()
}

func clientTLS(t *testing.T, up *upstream) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: up.roots, ServerName: "127.0.0.1"}
}

func TestRTSPS(t *testing.T) {
	srvCfg, roots := peertest.SelfSignedTLS(t)
	playAndClose(t, &upstream{t: t, tlsCfg: srvCfg, roots: roots}, "tcp", "tcp")
}

func TestInvalidConfigFailsOnce(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "http://example.com/x"},
		{URL: "rtsp://127.0.0.1:1/x", Transport: "carrier-pigeon"},
	} {
		rec := newRecorder()
		p := New(cfg, rec)
		p.Start()
		for i := 0; p.State().Status != StatusFailed && i < 500; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		if st := p.State(); st.Status != StatusFailed || st.Err == nil {
			t.Errorf("%+v: state %+v, want failed", cfg, st)
		}
		p.Close()
	}
}

// TestReconnect kills the upstream, keeps it down for several attempts,
// then brings it back on the same address.
func TestReconnect(t *testing.T) {
	up := &upstream{t: t, udp: true}
	up.start()
	rec := newRecorder()
	const minB, maxB = 10 * time.Millisecond, 40 * time.Millisecond
	p := New(Config{URL: up.url(), Transport: "tcp", ReconnectMin: minB, ReconnectMax: maxB}, rec)
	var bmu sync.Mutex
	var backoffs []time.Duration
	p.onBackoff = func(d time.Duration) {
		bmu.Lock()
		backoffs = append(backoffs, d)
		bmu.Unlock()
		rec.poke()
	}
	p.Start()
	defer p.Close()
	rec.waitFor(t, "first session", func(r *recorder) bool { return r.rtp[0] > 10 })

	up.stop()
	rec.waitFor(t, "disconnect", func(r *recorder) bool { return r.count("disconnect") == 1 })
	rec.waitFor(t, "six failed attempts", func(*recorder) bool {
		bmu.Lock()
		defer bmu.Unlock()
		return len(backoffs) >= 6
	})
	bmu.Lock()
	got := append([]time.Duration(nil), backoffs...)
	bmu.Unlock()
	want := []time.Duration{minB, 2 * minB, maxB, maxB, maxB, maxB}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("backoff sequence %v, want it to start %v (doubling, capped)", got, want)
		}
	}

	rec.mu.Lock()
	before := rec.rtp[0]
	rec.mu.Unlock()
	up.start()
	defer up.stop()
	rec.waitFor(t, "second session with packets", func(r *recorder) bool {
		return r.count("ready") == 2 && r.rtp[0] > before+10
	})
	if st := p.State(); st.Status != StatusPlaying || st.Sessions != 2 || st.Err != nil {
		t.Errorf("state after reconnect = %+v", st)
	}
	rec.mu.Lock()
	if got := strings.Join(rec.events, ","); got != "ready,disconnect,ready" {
		t.Errorf("events = %s", got)
	}
	if rec.disc[0] == nil || errors.Is(rec.disc[0], ErrClosed) {
		t.Errorf("first disconnect reason = %v, want the upstream failure", rec.disc[0])
	}
	rec.mu.Unlock()
}

// TestStableSessionResetsBackoff: after a session that played long enough
// the next wait starts again at ReconnectMin.
func TestStableSessionResetsBackoff(t *testing.T) {
	up := &upstream{t: t, udp: true}
	up.start()
	rec := newRecorder()
	p := New(Config{URL: up.url(), Transport: "tcp", ReconnectMin: 10 * time.Millisecond, ReconnectMax: time.Second}, rec)
	p.stableAfter = 0
	var bmu sync.Mutex
	var backoffs []time.Duration
	p.onBackoff = func(d time.Duration) {
		bmu.Lock()
		backoffs = append(backoffs, d)
		bmu.Unlock()
		rec.poke()
	}
	p.Start()
	defer p.Close()
	rec.waitFor(t, "first session", func(r *recorder) bool { return r.rtp[0] > 5 })
	up.stop()
	rec.waitFor(t, "three attempts", func(*recorder) bool {
		bmu.Lock()
		defer bmu.Unlock()
		return len(backoffs) >= 3
	})
	up.start()
	defer up.stop()
	rec.waitFor(t, "second session", func(r *recorder) bool { return r.count("ready") == 2 })
	bmu.Lock()
	n := len(backoffs)
	if backoffs[n-1] <= 10*time.Millisecond {
		t.Errorf("backoffs %v: the test needs the backoff to have grown", backoffs)
	}
	bmu.Unlock()
	up.stop()
	rec.waitFor(t, "second disconnect", func(r *recorder) bool { return r.count("disconnect") == 2 })
	rec.waitFor(t, "backoff after second session", func(*recorder) bool {
		bmu.Lock()
		defer bmu.Unlock()
		return len(backoffs) > n
	})
	bmu.Lock()
	defer bmu.Unlock()
	if backoffs[n] != 10*time.Millisecond {
		t.Errorf("backoffs %v: after a stable session want %v at index %d", backoffs, 10*time.Millisecond, n)
	}
}

func TestRefusedSessionIsRetried(t *testing.T) {
	up := &upstream{t: t, udp: true}
	up.start()
	defer up.stop()
	rec := newRecorder()
	rec.refuse = 2
	p := New(Config{URL: up.url(), Transport: "udp", ReconnectMin: 10 * time.Millisecond}, rec)
	p.Start()
	rec.waitFor(t, "packets after two refusals", func(r *recorder) bool { return r.count("ready") == 1 && r.rtp[0] > 10 })
	p.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := strings.Join(rec.events, ","); got != "refused,refused,ready,disconnect" {
		t.Errorf("events = %s", got)
	}
	if rec.early != 0 {
		t.Errorf("%d packets of refused sessions reached the handler", rec.early)
	}
}

func TestCloseDuringBackoffIsPrompt(t *testing.T) {
	rec := newRecorder()
	p := New(Config{URL: "rtsp://" + freeTCPAddr(t) + "/nothing", ReconnectMin: time.Hour}, rec)
	p.Start()
	for i := 0; p.State().Status != StatusBackoff; i++ {
		if i > 1000 {
			t.Fatalf("never reached backoff: %+v", p.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.State(); st.Err == nil || st.Retry <= 0 || st.Retry > time.Hour {
		t.Errorf("backoff state = %+v", st)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close during an hour of backoff did not return")
	}
	if len(rec.events) != 0 {
		t.Errorf("events %v for a session that never started", rec.events)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	p := New(Config{URL: "rtsp://127.0.0.1:1/x"}, newRecorder())
	p.Close()
	p.Start()
	p.Close()
	if s := p.State().Status; s != StatusClosed {
		t.Errorf("status = %v", s)
	}
}
