package demo

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	pionrtp "github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/rtp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// needFFmpeg skips without ffmpeg, unless CI demands its peers
// (MESHGW_REQUIRE_PEERS=1): then a missing ffmpeg is a failure.
func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("MESHGW_REQUIRE_PEERS") == "1" {
			t.Fatalf("ffmpeg required (MESHGW_REQUIRE_PEERS=1): %v", err)
		}
		t.Skip("ffmpeg not installed")
	}
}

func mustLoad(t testing.TB) *Clip {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestEmbeddedClipSize(t *testing.T) {
	if n := len(clipTS); n >= 450*1000 {
		t.Fatalf("clip.ts is %d bytes; the budget is < 450 KB", n)
	}
}

func TestLoad(t *testing.T) {
	c := mustLoad(t)
	tr := c.Tracks()
	if len(tr) != 2 {
		t.Fatalf("tracks = %+v, want video+audio", tr)
	}
	if tr[0].Media != "video" || tr[0].ClockRate != 90000 || tr[0].PayloadType != 96 {
		t.Errorf("video track = %+v", tr[0])
	}
	if tr[1].Media != "audio" || tr[1].ClockRate != 48000 || tr[1].PayloadType != 97 {
		t.Errorf("audio track = %+v", tr[1])
	}
	// 9.6 s is the shortest multiple of 640 ms (the LCM of a 40 ms video
	// frame and a 1024/48000 s AAC frame) near 10 s
	if d := c.Duration(); d != 9600*time.Millisecond {
		t.Errorf("duration = %v, want 9.6s", d)
	}
	if c.loopTS[0] != 864000 || c.loopTS[1] != 460800 {
		t.Errorf("loop timestamps = %v, want [864000 460800]", c.loopTS)
	}
	// every frame of both tracks at k*step from the loop start: 240 video
	// frames, and the 450 AAC frames of the loop without the encoder's
	// priming and padding frames, one packet each
	frames := [2]uint32{}
	audioPkts := 0
	for _, p := range c.pkts {
		step := uint32(3600)
		if p.track == 1 {
			step = 1024
			audioPkts++
		}
		if n := frames[p.track]; p.ts == (n-1)*step && n > 0 {
			continue // another packet of the frame
		} else if p.ts != n*step {
			t.Fatalf("track %d frame %d: timestamp %d, want %d", p.track, n, p.ts, n*step)
		}
		frames[p.track]++
	}
	if frames != [2]uint32{240, 450} || audioPkts != 450 || c.loopSeq[1] != 450 {
		t.Errorf("frames = %v, audio packets = %d (loopSeq %d), want [240 450], 450",
			frames, audioPkts, c.loopSeq[1])
	}
	if err := c.checkSeamless(); err != nil {
		t.Errorf("checkSeamless: %v", err)
	}
	for i, p := range c.pkts {
		if i > 0 && p.at < c.pkts[i-1].at {
			t.Fatalf("packet %d scheduled before its predecessor", i)
		}
		if p.at >= c.duration {
			t.Fatalf("packet %d at %v is past the loop end %v", i, p.at, c.duration)
		}
	}
}

func TestSDPParsesBack(t *testing.T) {
	c := mustLoad(t)
	var ss sdp.SessionDescription
	if err := ss.Unmarshal(c.SDP()); err != nil {
		t.Fatalf("SDP does not parse: %v\n%s", err, c.SDP())
	}
	var desc description.Session
	if err := desc.Unmarshal(&ss); err != nil {
		t.Fatalf("description: %v", err)
	}
	if len(desc.Medias) != 2 {
		t.Fatalf("medias = %d", len(desc.Medias))
	}
	for i, m := range desc.Medias {
		if want := "trackID=" + string(rune('0'+i)); m.Control != want {
			t.Errorf("media %d control = %q, want %q", i, m.Control, want)
		}
	}
	h, ok := desc.Medias[0].Formats[0].(*format.H264)
	if !ok || len(h.SPS) == 0 || len(h.PPS) == 0 || h.PacketizationMode != 1 {
		t.Fatalf("video format = %#v, want H.264 with sprop SPS/PPS", desc.Medias[0].Formats[0])
	}
	var sps h264.SPS
	if err := sps.Unmarshal(h.SPS); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if sps.Width() != 640 || sps.Height() != 360 {
		t.Errorf("size = %dx%d", sps.Width(), sps.Height())
	}
	a, ok := desc.Medias[1].Formats[0].(*format.MPEG4Audio)
	if !ok || a.Config.SampleRate != 48000 || a.SizeLength != 13 {
		t.Fatalf("audio format = %#v, want AAC-hbr 48 kHz", desc.Medias[1].Formats[0])
	}
	if !strings.Contains(string(c.SDP()), "mode=AAC-hbr") {
		t.Errorf("SDP lacks mode=AAC-hbr:\n%s", c.SDP())
	}
}

// fakeClock runs a Player as fast as the CPU allows: waiting advances the
// clock instead of sleeping. Only the player goroutine touches it.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }
func (f *fakeClock) wait(d time.Duration, done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
	}
	f.t = f.t.Add(d)
	return true
}

type sent struct {
	track int
	at    time.Duration // fake time since start
	pkt   pionrtp.Packet
}

// recorder keeps the first limit packets, then reports full.
type recorder struct {
	clock *fakeClock
	start time.Time
	limit int
	// refuse is what OnReady answers
	refuse error

	mu          sync.Mutex
	got         []sent
	full        chan struct{}
	ready, down int
	downErr     error
}

func (r *recorder) OnReady(sdp []byte, tracks []rtp.Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready++
	return r.refuse
}

func (r *recorder) OnDisconnect(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down++
	r.downErr = err
}

func (r *recorder) WriteRTCP(int, []byte) {}

func (r *recorder) WriteRTP(track int, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) >= r.limit {
		return
	}
	var p pionrtp.Packet
	if err := p.Unmarshal(append([]byte(nil), b...)); err != nil {
		panic(err)
	}
	var at time.Duration
	if r.clock != nil {
		at = r.clock.t.Sub(r.start)
	}
	r.got = append(r.got, sent{track: track, at: at, pkt: p})
	if len(r.got) == r.limit {
		close(r.full)
	}
}

// playFast plays loops (plus one packet) of c on a fake clock and returns
// what was written.
func playFast(t *testing.T, c *Clip, loops int) []sent {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	rec := &recorder{clock: clk, start: clk.t, limit: loops*len(c.pkts) + 1, full: make(chan struct{})}
	p := NewPlayer(c, rec, nil)
	p.now, p.wait = clk.now, clk.wait
	p.Start()
	select {
	case <-rec.full:
	case <-time.After(30 * time.Second):
		t.Fatal("player did not produce the packets")
	}
	p.Close()
	return rec.got
}

func TestLoopsAreContinuous(t *testing.T) {
	c := mustLoad(t)
	got := playFast(t, c, 2)
	n := len(c.pkts)

	type state struct {
		seen  bool
		seq   uint16
		ts    uint32
		ssrc  uint32
		count int
	}
	st := make([]state, len(c.tracks))
	for i, s := range got {
		ts := &st[s.track]
		if ts.seen {
			if s.pkt.SequenceNumber != ts.seq+1 {
				t.Fatalf("packet %d track %d: seq %d after %d", i, s.track, s.pkt.SequenceNumber, ts.seq)
			}
			d := int32(s.pkt.Timestamp - ts.ts)
			if d < 0 {
				t.Fatalf("packet %d track %d: timestamp went back by %d", i, s.track, -d)
			}
			if s.pkt.SSRC != ts.ssrc {
				t.Fatalf("SSRC changed")
			}
		}
		ts.seen, ts.seq, ts.ts, ts.ssrc = true, s.pkt.SequenceNumber, s.pkt.Timestamp, s.pkt.SSRC
		ts.count++
	}

	// the seam: per track, the step between the last packet of loop 0 and
	// the first of loop 1 must equal a normal frame step
	for tr := range c.tracks {
		var loop0, loop1 []sent
		for i, s := range got {
			if s.track != tr {
				continue
			}
			if i < n {
				loop0 = append(loop0, s)
			} else if i < 2*n {
				loop1 = append(loop1, s)
			}
		}
		if len(loop0) != len(loop1) || len(loop0) < 2 {
			t.Fatalf("track %d: %d vs %d packets per loop", tr, len(loop0), len(loop1))
		}
		wantTS := c.loopTS[tr]
		for i := range loop0 {
			if d := loop1[i].pkt.Timestamp - loop0[i].pkt.Timestamp; d != wantTS {
				t.Fatalf("track %d packet %d: loop ts step %d, want %d", tr, i, d, wantTS)
			}
			if d := loop1[i].at - loop0[i].at; d != c.duration {
				t.Fatalf("track %d packet %d: sent %v after its twin, want %v", tr, i, d, c.duration)
			}
		}
		// the frame step across the seam equals the typical step
		last := loop0[len(loop0)-1].pkt.Timestamp
		seam := loop1[0].pkt.Timestamp - last
		step := uint32(3600)
		if tr == 1 {
			step = 1024
		}
		if seam != step {
			t.Errorf("track %d: timestamp step across the loop seam = %d, want %d", tr, seam, step)
		}
		// and so is the step just before it: the seam looks like any frame
		if prev := last - loop0[len(loop0)-2].pkt.Timestamp; tr == 1 && prev != step {
			t.Errorf("audio: step before the seam = %d, want %d", prev, step)
		}
		// a loop is 9.6 s: 864000 ticks of 90 kHz, 460800 of 48 kHz
		if want := [2]uint32{864000, 460800}[tr]; wantTS != want {
			t.Errorf("track %d loop ts = %d, want %d", tr, wantTS, want)
		}
	}
}

func TestOneLoopDecodesTo240Frames(t *testing.T) {
	c := mustLoad(t)
	got := playFast(t, c, 1)
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	frames, idrs, idrWithParams := 0, 0, 0
	for _, s := range got[:len(got)-1] {
		if s.track != 0 {
			continue
		}
		au, err := dec.Decode(&s.pkt)
		if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			continue
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if frames == 0 && !h264.IsRandomAccess(au) {
			t.Errorf("the loop starts with a non-IDR frame")
		}
		frames++
		if h264.IsRandomAccess(au) {
			idrs++
			hasSPS, hasPPS := false, false
			for _, n := range au {
				switch h264.NALUType(n[0] & 0x1f) {
				case h264.NALUTypeSPS:
					hasSPS = true
				case h264.NALUTypePPS:
					hasPPS = true
				}
			}
			if hasSPS && hasPPS {
				idrWithParams++
			}
		}
	}
	if frames != 240 {
		t.Errorf("decoded %d frames, want 240", frames)
	}
	if idrs != 10 || idrWithParams != idrs {
		t.Errorf("IDRs = %d (with SPS/PPS: %d), want 10 all with parameters", idrs, idrWithParams)
	}
}

// TestSession checks the player drives its handler as a source: OnReady
// once before the packets, OnDisconnect with rtp.ErrClosed at Close, and
// nothing at all after a refused OnReady.
func TestSession(t *testing.T) {
	c := mustLoad(t)
	rec := &recorder{limit: 3, full: make(chan struct{})}
	p := NewPlayer(c, rec, nil)
	p.Start()
	<-rec.full
	p.Close()
	p.Close()
	rec.mu.Lock()
	if rec.ready != 1 || rec.down != 1 || !errors.Is(rec.downErr, rtp.ErrClosed) {
		t.Errorf("OnReady %d, OnDisconnect %d (%v); want 1, 1 (rtp.ErrClosed)", rec.ready, rec.down, rec.downErr)
	}
	rec.mu.Unlock()

	rec = &recorder{limit: 1, refuse: errors.New("no"), full: make(chan struct{})}
	p = NewPlayer(c, rec, nil)
	p.Start()
	p.Close()
	if rec.ready != 1 || rec.down != 0 || len(rec.got) != 0 {
		t.Errorf("refused: OnReady %d, OnDisconnect %d, %d packets; want 1, 0, 0", rec.ready, rec.down, len(rec.got))
	}
}

func TestCloseBeforeStartAndTwice(t *testing.T) {
	c := mustLoad(t)
	p := NewPlayer(c, &recorder{limit: 0, full: make(chan struct{})}, nil)
	p.Close()
	p.Start() // must not start after Close
	p.Close()
}

// TestRealClockStartsAtOnce uses the real timer only to check that the first
// packets flow and Close ends the goroutine; it asserts nothing about timing.
func TestRealClockStartsAtOnce(t *testing.T) {
	c := mustLoad(t)
	rec := &recorder{limit: 5, full: make(chan struct{})}
	p := NewPlayer(c, rec, nil)
	p.Start()
	select {
	case <-rec.full:
	case <-time.After(20 * time.Second):
		t.Fatal("no packets from a real-clock player")
	}
	p.Close()
	p.Close()
}

// TestLoadTSFromFFmpeg checks LoadTS on a clip with other parameters
// (44.1 kHz stereo audio, Baseline, 30 fps) made on the fly.
func TestLoadTSFromFFmpeg(t *testing.T) {
	needFFmpeg(t)
	out := filepath.Join(t.TempDir(), "c.ts")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2",
		"-c:v", "libx264", "-profile:v", "baseline", "-g", "30", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-ac", "2", "-b:a", "64k", "-f", "mpegts", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadTS(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("LoadTS: %v", err)
	}
	tr := c.Tracks()
	if len(tr) != 2 || tr[1].ClockRate != 44100 {
		t.Fatalf("tracks = %+v", tr)
	}
	if d := c.Duration(); d < 1900*time.Millisecond || d > 2100*time.Millisecond {
		t.Errorf("duration = %v", d)
	}
	got := playFast(t, c, 1)
	frames := 0
	for _, s := range got[:len(got)-1] {
		if s.track == 0 && s.pkt.Marker {
			frames++
		}
	}
	if frames != 60 {
		t.Errorf("frames = %d, want 60", frames)
	}
	// 2 s of 44.1 kHz is 86.13 AAC frames: LoadTS plays it, but it cannot
	// loop seamlessly, and Load would refuse such a clip
	if err := c.checkSeamless(); err == nil || !strings.Contains(err.Error(), "track 1") {
		t.Errorf("checkSeamless = %v, want an error about the audio track", err)
	}
}

func TestLoadTSRejectsGarbage(t *testing.T) {
	if _, err := LoadTS(bytes.NewReader(bytes.Repeat([]byte{0x47, 1, 2, 3}, 1000))); err == nil {
		t.Fatal("LoadTS accepted garbage")
	}
}

type discard struct{}

func (discard) OnReady([]byte, []rtp.Track) error { return nil }
func (discard) WriteRTP(int, []byte)              {}
func (discard) WriteRTCP(int, []byte)             {}
func (discard) OnDisconnect(error)                {}

func TestEmitDoesNotAllocate(t *testing.T) {
	c := mustLoad(t)
	p := NewPlayer(c, discard{}, nil)
	allocs := testing.AllocsPerRun(3*len(c.pkts), func() { p.emit() })
	if allocs != 0 {
		t.Fatalf("emit allocates %.2f times per packet", allocs)
	}
}

// BenchmarkEmit measures the steady-state per-packet cost of the player,
// loop wrap-arounds included.
func BenchmarkEmit(b *testing.B) {
	c := mustLoad(b)
	p := NewPlayer(c, discard{}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.emit()
	}
}
