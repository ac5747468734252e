package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/internal/peertest"
)

// playDemoConfig is the smallest config serving the built-in demo stream.
const playDemoConfig = `rtsp:
  listen: LISTEN
routes:
  demo:
    source: demo
`

// playTrackStats follows one track of a Go reader: what arrived and how well it hangs together.
type playTrackStats struct {
	kind  string // "video" or "audio"
	clock int

	packets int
	frames  int // timestamp changes (+1 for the first packet)
	ssrcs   map[uint32]int

	seqGaps   int // packets missing between consecutive arrivals
	seqBad    int // duplicates or steps backwards
	tsBack    int // timestamp steps backwards
	maxTSStep int64

	tsSpan          int64 // unwrapped timestamp distance first..last
	firstAt, lastAt time.Time

	havePrev bool
	prevSeq  uint16
	prevTS   uint32
	notes    []string // the first few anomalies, for the log
}

func (s *playTrackStats) note(format string, args ...any) {
	if len(s.notes) < 10 {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

func (s *playTrackStats) add(p *pionrtp.Packet, now time.Time) {
	s.packets++
	s.ssrcs[p.SSRC]++
	s.lastAt = now
	if !s.havePrev {
		s.havePrev, s.firstAt = true, now
		s.prevSeq, s.prevTS = p.SequenceNumber, p.Timestamp
		s.frames = 1
		return
	}
	if d := p.SequenceNumber - s.prevSeq; d != 1 {
		if d == 0 || d > 0x8000 {
			s.seqBad++
			s.note("%s seq %d after %d", s.kind, p.SequenceNumber, s.prevSeq)
		} else {
			s.seqGaps += int(d) - 1
			s.note("%s seq gap %d -> %d (%d missing)", s.kind, s.prevSeq, p.SequenceNumber, d-1)
		}
	}
	step := int64(int32(p.Timestamp - s.prevTS))
	switch {
	case step < 0:
		s.tsBack++
		s.note("%s timestamp back %d -> %d (%d ticks) at seq %d", s.kind, s.prevTS, p.Timestamp, step, p.SequenceNumber)
	case step > 0:
		s.frames++
		s.tsSpan += step
		if step > s.maxTSStep {
			s.maxTSStep = step
		}
	}
	s.prevSeq, s.prevTS = p.SequenceNumber, p.Timestamp
}

// playReader is an independent Go RTSP player (gortsplib's client) reading every track of a URL.
type playReader struct {
	name   string
	c      *gortsplib.Client
	start  time.Time // before the RTSP connection was opened
	medias []*description.Media

	mu      sync.Mutex
	stats   map[*description.Media]*playTrackStats
	total   int
	firstAt time.Time
	changed chan struct{} // closed and replaced on every packet
}

// startPlayReader connects, sets up every track and plays. Call it from the test goroutine.
func startPlayReader(t testing.TB, name, url string, transport gortsplib.Transport) *playReader {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := &playReader{name: name, stats: map[*description.Media]*playTrackStats{}, changed: make(chan struct{})}
	tr := transport
	r.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, ReadTimeout: 10 * time.Second}
	r.start = time.Now()
	if err := r.c.Start2(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	t.Cleanup(r.c.Close)
	desc, _, err := r.c.Describe(u)
	if err != nil {
		t.Fatalf("%s: DESCRIBE: %v", name, err)
	}
	r.medias = desc.Medias
	for _, m := range desc.Medias {
		clock := 0
		if len(m.Formats) > 0 {
			clock = m.Formats[0].ClockRate()
		}
		r.stats[m] = &playTrackStats{kind: string(m.Type), clock: clock, ssrcs: map[uint32]int{}}
	}
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("%s: SETUP: %v", name, err)
	}
	r.c.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *pionrtp.Packet) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if st := r.stats[m]; st != nil {
			st.add(p, now)
		}
		if r.total == 0 {
			r.firstAt = now
		}
		r.total++
		close(r.changed)
		r.changed = make(chan struct{})
	})
	if _, err := r.c.Play(nil); err != nil {
		t.Fatalf("%s: PLAY: %v", name, err)
	}
	return r
}

// count returns the packets received so far.
func (r *playReader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// waitCount waits until at least n packets arrived; false on timeout.
func (r *playReader) waitCount(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		total, changed := r.total, r.changed
		r.mu.Unlock()
		if total >= n {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// snapshot copies the per-track stats, video first.
func (r *playReader) snapshot() []playTrackStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []playTrackStats
	for _, m := range r.medias {
		st := *r.stats[m]
		st.ssrcs = map[uint32]int{}
		for k, v := range r.stats[m].ssrcs {
			st.ssrcs[k] = v
		}
		st.notes = append([]string(nil), st.notes...)
		out = append(out, st)
	}
	return out
}

// track returns the stats of the first track of the kind.
func playTrack(sts []playTrackStats, kind string) *playTrackStats {
	for i := range sts {
		if sts[i].kind == kind {
			return &sts[i]
		}
	}
	return nil
}

// playStillFlowing checks that a reader keeps receiving: at least n more packets within timeout.
func playStillFlowing(t testing.TB, r *playReader, n int, timeout time.Duration) {
	t.Helper()
	before := r.count()
	if !r.waitCount(before+n, timeout) {
		t.Errorf("%s: stopped receiving: %d packets before, %d after %v", r.name, before, r.count(), timeout)
	}
}

// playCheckDecodes verifies what a Go reader got over a stretch of time: both tracks, about
// 25 video frames per second and unbroken sequence numbers when strict.
func playCheckDecodes(t testing.TB, r *playReader, secs float64, strictSeq bool) {
	t.Helper()
	sts := r.snapshot()
	v, a := playTrack(sts, "video"), playTrack(sts, "audio")
	if v == nil || a == nil {
		t.Errorf("%s: tracks %v, want video and audio", r.name, sts)
		return
	}
	if want := int(secs * 25 * 0.8); v.frames < want {
		t.Errorf("%s: %d video frames (%d packets) in %.1f s, want >= %d", r.name, v.frames, v.packets, secs, want)
	}
	if want := int(secs * 10); a.packets < want {
		t.Errorf("%s: %d audio packets in %.1f s, want >= %d", r.name, a.packets, secs, want)
	}
	for _, st := range []*playTrackStats{v, a} {
		if len(st.ssrcs) != 1 {
			t.Errorf("%s: %s SSRCs %v, want one", r.name, st.kind, st.ssrcs)
		}
		if strictSeq && (st.seqGaps != 0 || st.seqBad != 0) {
			t.Errorf("%s: %s %d missing, %d out of order: %q", r.name, st.kind, st.seqGaps, st.seqBad, st.notes)
		} else if st.seqGaps != 0 || st.seqBad != 0 {
			t.Logf("%s: %s %d missing, %d out of order (UDP): %q", r.name, st.kind, st.seqGaps, st.seqBad, st.notes)
		}
	}
}

// playFFmpegArgs reads url for secs seconds into the null muxer.
func playFFmpegArgs(transport, url string, secs int, extra ...string) []string {
	args := append([]string{"-hide_banner", "-nostdin", "-nostats"}, extra...)
	return append(args, "-rtsp_transport", transport, "-i", url, "-t", fmt.Sprint(secs), "-f", "null", "-")
}

// playCheckFFmpeg judges a finished ffmpeg reader: at least min frames and no decode errors.
func playCheckFFmpeg(t testing.TB, name string, p *peertest.Proc, timeout time.Duration, min int) {
	t.Helper()
	err := p.Wait(timeout)
	out := p.Output()
	n, ok := peertest.FFmpegFrames(out)
	if err != nil || !ok || n < min {
		t.Errorf("%s: %d frames (exit %v), want >= %d\n%s", name, n, err, min, playTail(out, 3000))
	}
	if bad := peertest.FFmpegErrorLines(out); len(bad) > 0 {
		t.Errorf("%s: decode errors: %q", name, bad)
	}
}

// playGstArgs plays url with rtspsrc and decodes both tracks until each has passed n buffers.
func playGstArgs(url, protocols string, n int) []string {
	eos := fmt.Sprintf("eos-after=%d", n)
	return []string{"rtspsrc", "location=" + url, "protocols=" + protocols, "latency=100", "name=s",
		"s.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
		"!", "identity", eos, "!", "fakesink",
		"s.", "!", "application/x-rtp,media=audio", "!", "rtpmp4gdepay", "!", "avdec_aac",
		"!", "identity", eos, "!", "fakesink"}
}

func playTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func TestPlayDemoFFprobe(t *testing.T) {
	peertest.Require(t, "ffprobe")
	g := startGateway(t, playDemoConfig)
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			out := peertest.Run(context.Background(), t, "ffprobe", "-v", "error", "-rtsp_transport", tr,
				"-show_entries", "stream=codec_name,width,height,sample_rate", "-of", "compact", g.URL+"demo").
				MustSucceed(30 * time.Second)
			s := peertest.FFprobeStreams(out)
			var video, audio map[string]string
			for _, st := range s {
				switch st["codec_name"] {
				case "h264":
					video = st
				case "aac":
					audio = st
				}
			}
			if len(s) != 2 || video == nil || audio == nil {
				t.Fatalf("streams %v, want h264 and aac\n%s", s, out)
			}
			if video["width"] != "640" || video["height"] != "360" {
				t.Errorf("video %sx%s, want 640x360", video["width"], video["height"])
			}
			if audio["sample_rate"] != "48000" {
				t.Errorf("audio sample rate %s, want 48000", audio["sample_rate"])
			}
		})
	}
}

func TestPlayDemoFFmpeg(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, playDemoConfig)
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			p := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs(tr, g.URL+"demo", 5)...)
			playCheckFFmpeg(t, "ffmpeg "+tr, p, 30*time.Second, 100)
			if strings.Contains(p.Output(), "concealing") {
				t.Errorf("ffmpeg %s concealed errors", tr)
			}
		})
	}
}

func TestPlayDemoGStreamer(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtspsrc", "gst:rtph264depay", "gst:avdec_h264", "gst:rtpmp4gdepay", "gst:avdec_aac")
	g := startGateway(t, playDemoConfig)
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			start := time.Now()
			out := peertest.Run(context.Background(), t, "gst-launch-1.0", playGstArgs(g.URL+"demo", proto, 50)...).
				MustPlayGst(30 * time.Second)
			if !peertest.GstGotEOS(out) {
				t.Errorf("no EOS from gst-launch:\n%s", playTail(out, 3000))
			}
			t.Logf("rtspsrc %s: 50 video + 50 audio buffers in %v", proto, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestPlayDemoConcurrentReaders plays the demo to ten readers at once: ffmpeg and Go players over
// UDP and TCP.
func TestPlayDemoConcurrentReaders(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, playDemoConfig)
	url := g.URL + "demo"
	const secs = 5
	type ff struct {
		name string
		p    *peertest.Proc
	}
	var ffs []ff
	for i, tr := range []string{"udp", "tcp", "udp", "tcp", "udp", "tcp"} {
		name := fmt.Sprintf("ffmpeg-%d-%s", i, tr)
		ffs = append(ffs, ff{name, peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs(tr, url, secs)...)})
	}
	var gos []*playReader
	for i, tr := range []gortsplib.Transport{gortsplib.TransportUDP, gortsplib.TransportTCP, gortsplib.TransportUDP, gortsplib.TransportTCP} {
		gos = append(gos, startPlayReader(t, fmt.Sprintf("go-%d-%s", i, tr), url, tr))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, f := range ffs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			playCheckFFmpeg(t, f.name, f.p, 40*time.Second, 100)
		}()
	}
	// the Go readers play as long as the ffmpeg readers need
	time.Sleep(time.Until(start.Add(secs * time.Second)))
	for _, r := range gos {
		playCheckDecodes(t, r, secs, r.c.Transport != nil && *r.c.Transport == gortsplib.TransportTCP)
	}
	wg.Wait()
	for _, r := range gos {
		playStillFlowing(t, r, 20, 3*time.Second)
	}
}

// TestPlayDemoContinuity reads the demo over UDP and TCP for longer than one loop of the clip:
// one SSRC per track, sequence numbers +1 without a gap, and timestamps that never step back and
// keep pace with the wall clock across the loop point.
func TestPlayDemoContinuity(t *testing.T) {
	g := startGateway(t, playDemoConfig)
	url := g.URL + "demo"
	readers := []*playReader{
		startPlayReader(t, "go-udp", url, gortsplib.TransportUDP),
		startPlayReader(t, "go-tcp", url, gortsplib.TransportTCP),
	}
	for _, r := range readers {
		if !r.waitCount(1, 5*time.Second) {
			t.Fatalf("%s: no RTP packet within 5 s", r.name)
		}
		r.mu.Lock()
		t.Logf("%s: first RTP packet %v after connecting", r.name, r.firstAt.Sub(r.start).Round(time.Microsecond))
		r.mu.Unlock()
	}
	const span = 12 * time.Second
	time.Sleep(time.Until(readers[0].start.Add(span)))
	for _, r := range readers {
		for _, st := range r.snapshot() {
			wall := st.lastAt.Sub(st.firstAt)
			media := time.Duration(float64(st.tsSpan) / float64(st.clock) * float64(time.Second))
			t.Logf("%s %s: %d packets, %d frames, ssrc %v, wall %v, media %v, largest step %d ticks",
				r.name, st.kind, st.packets, st.frames, st.ssrcs, wall.Round(time.Millisecond), media.Round(time.Millisecond), st.maxTSStep)
			if wall < 11*time.Second {
				t.Errorf("%s %s: packets over %v only, want >= 11 s", r.name, st.kind, wall)
			}
			if len(st.ssrcs) != 1 {
				t.Errorf("%s %s: SSRCs %v, want one", r.name, st.kind, st.ssrcs)
			}
			if st.seqGaps != 0 || st.seqBad != 0 {
				t.Errorf("%s %s: %d packets missing, %d out of order: %q", r.name, st.kind, st.seqGaps, st.seqBad, st.notes)
			}
			if st.tsBack != 0 {
				t.Errorf("%s %s: timestamp stepped back %d times: %q", r.name, st.kind, st.tsBack, st.notes)
			}
			// one frame is 40 ms of video or ~21 ms of audio; a seam that restarts or skips time shows here
			if maxStep := int64(st.clock / 5); st.maxTSStep > maxStep {
				t.Errorf("%s %s: timestamp jumped forward %d ticks (%v) at once",
					r.name, st.kind, st.maxTSStep, time.Duration(st.maxTSStep)*time.Second/time.Duration(st.clock))
			}
			if d := media - wall; d > 500*time.Millisecond || d < -500*time.Millisecond {
				t.Errorf("%s %s: timestamps cover %v but packets arrived over %v", r.name, st.kind, media, wall)
			}
		}
	}
}

// TestPlayDemoPauseResume pauses Go players: packets stop, then resume on PLAY.
func TestPlayDemoPauseResume(t *testing.T) {
	g := startGateway(t, playDemoConfig)
	for _, tr := range []gortsplib.Transport{gortsplib.TransportUDP, gortsplib.TransportTCP} {
		t.Run(tr.String(), func(t *testing.T) {
			r := startPlayReader(t, "go-"+tr.String(), g.URL+"demo", tr)
			if !r.waitCount(50, 5*time.Second) {
				t.Fatalf("only %d packets before PAUSE", r.count())
			}
			if _, err := r.c.Pause(); err != nil {
				t.Fatalf("PAUSE: %v", err)
			}
			time.Sleep(300 * time.Millisecond) // packets already on their way
			paused := r.count()
			time.Sleep(1500 * time.Millisecond)
			if n := r.count(); n != paused {
				t.Errorf("%d packets arrived during 1.5 s of PAUSE", n-paused)
			}
			resumed := time.Now()
			if _, err := r.c.Play(nil); err != nil {
				t.Fatalf("PLAY after PAUSE: %v", err)
			}
			if !r.waitCount(r.count()+50, 5*time.Second) {
				t.Fatalf("packets did not resume after PLAY: %d", r.count())
			}
			t.Logf("50 packets %v after the second PLAY", time.Since(resumed).Round(time.Millisecond))
		})
	}
}

// TestPlayPacedRoute: a route with pacing spaces its keyframes out to UDP readers. Real players
// must decode it exactly as they decode the unpaced stream: ffmpeg with no concealment, rtspsrc
// to EOS on both tracks. The stream's rate is learnt in its first second; a short warm-up reader
// makes sure the measured readers come after that and see paced keyframes throughout.
func TestPlayPacedRoute(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:avdec_h264", "gst:rtpmp4gdepay", "gst:avdec_aac")
	g := startGateway(t, "rtsp:\n  listen: LISTEN\nroutes:\n  paced:\n    source: demo\n    pacing: 3\n")
	warm := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("udp", g.URL+"paced", 2)...)
	playCheckFFmpeg(t, "ffmpeg warm-up", warm, 30*time.Second, 25)
	p := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("udp", g.URL+"paced", 5)...)
	playCheckFFmpeg(t, "ffmpeg paced udp", p, 30*time.Second, 100)
	if strings.Contains(p.Output(), "concealing") {
		t.Errorf("ffmpeg concealed errors on the paced stream")
	}
	out := peertest.Run(context.Background(), t, "gst-launch-1.0", playGstArgs(g.URL+"paced", "udp", 50)...).
		MustPlayGst(30 * time.Second)
	if !peertest.GstGotEOS(out) {
		t.Errorf("no EOS from rtspsrc on the paced stream:\n%s", playTail(out, 3000))
	}
}
