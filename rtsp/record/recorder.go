package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/rtptime"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	prtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/depack"
)

// Opener opens a reader of a route (the control's OpenRead).
type Opener interface {
	OpenRead(ctx context.Context, c rtsp.ConnInfo, path string) (rtsp.ReadStream, error)
}

// Config configures a Recorder.
type Config struct {
	// Route is the route recorded.
	Route string
	// Dir is where the route's files go (created when missing).
	Dir string
	// Segment is the least duration of a file; a new one starts at the next keyframe. Zero: 1h.
	Segment time.Duration
	// Part is the least duration of a fragment, the unit written at once. Zero: 1 s.
	Part time.Duration
	// Handler opens the recorder's reader.
	Handler Opener
	// Retry is the wait before reading the route again after the reader ended or failed. Zero: 2 s.
	Retry  time.Duration
	Logger *slog.Logger
}

// Stats are a recorder's counters since it started.
type Stats struct {
	Route string
	// Recording is true while a file is open.
	Recording bool
	// Segments is the files started, Parts the fragments written, BytesWritten their bytes.
	Segments, Parts, BytesWritten uint64
	// Errors counts failed writes and sessions that ended with an error; LastError is the last.
	Errors    uint64
	LastError string
	// Dropped is the packets lost because the recorder's queue was full.
	Dropped uint64
	// Gaps counts the files ended at a gap of more than 2 s in the route's media (a source
	// restart): the gap lies between two files.
	Gaps uint64
}

// Recorder records one route until Close.
type Recorder struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	recording                                   atomic.Bool
	segments, parts, bytes, errs, dropped, gaps atomic.Uint64
	mu                                          sync.Mutex
	lastErr                                     string
}

// Start starts recording cfg.Route on a goroutine of its own.
func Start(cfg Config) *Recorder {
	if cfg.Segment <= 0 {
		cfg.Segment = time.Hour
	}
	if cfg.Part <= 0 {
		cfg.Part = time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{cfg: cfg, log: cfg.Logger.With("route", cfg.Route, "record", cfg.Dir), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go r.run()
	return r
}

// Close stops recording, finishing the part being collected, and waits.
func (r *Recorder) Close() {
	r.cancel()
	<-r.done
}

// Stats reports the recorder's counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	last := r.lastErr
	r.mu.Unlock()
	return Stats{Route: r.cfg.Route, Recording: r.recording.Load(), Segments: r.segments.Load(), Parts: r.parts.Load(),
		BytesWritten: r.bytes.Load(), Errors: r.errs.Load(), LastError: last, Dropped: r.dropped.Load(), Gaps: r.gaps.Load()}
}

func (r *Recorder) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
	r.log.Error("recording stopped; retrying", "err", err, "retry", r.cfg.Retry)
}

func (r *Recorder) run() {
	defer close(r.done)
	for {
		if err := r.session(); err != nil && r.ctx.Err() == nil {
			r.fail(err)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(r.cfg.Retry):
		}
	}
}

// session records from one reader of the route until it ends, a write fails or Close.
func (r *Recorder) session() error {
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	rs, err := r.cfg.Handler.OpenRead(ctx, rtsp.ConnInfo{}, r.cfg.Route)
	cancel()
	if err != nil {
		return fmt.Errorf("read route: %w", err)
	}
	defer rs.Close()
	formats, err := depack.Formats(rs.SDP())
	if err != nil {
		return err
	}
	w := &writer{r: r}
	for i, f := range formats {
		if f == nil {
			continue
		}
		t, err := newTrack(i, f)
		if err != nil {
			r.log.Warn("track not recorded", "why", err)
			continue
		}
		if t.video && w.video != nil {
			r.log.Warn("track not recorded", "why", fmt.Sprintf("track %d: a second video track", i))
			continue
		}
		t.id = len(w.tracks) + 1
		if t.video {
			w.video = t
		}
		w.tracks = append(w.tracks, t)
	}
	if len(w.tracks) == 0 {
		return fmt.Errorf("no track of the route can be recorded (H.264, H.265, AAC and Opus can)")
	}
	q := depack.NewQueue(8192)
	hubs := make([]*rtp.Hub, len(w.tracks))
	sinks := make([]rtp.Sink, len(w.tracks))
	for i, t := range w.tracks {
		if hubs[i], err = rs.SetupTCP(r.ctx, t.Index); err != nil {
			return fmt.Errorf("track %d: %w", t.Index, err)
		}
		sinks[i] = q.Sink(i)
	}
	if _, err := rs.Play(r.ctx); err != nil {
		return err
	}
	for i, h := range hubs {
		h.AddSink(sinks[i])
	}
	defer func() {
		for i, h := range hubs {
			h.RemoveSink(sinks[i])
		}
		q.Close()
		r.dropped.Add(q.Dropped())
	}()
	defer w.close()
	var dec rtptime.GlobalDecoder2
	dec.Initialize()
	batch := make([]depack.Queued, 0, 64)
	stall := time.NewTicker(5 * time.Second)
	defer stall.Stop()
	last := time.Now()
	for {
		select {
		case <-r.ctx.Done():
			return nil
		case <-rs.Done():
			return errors.New("the route's stream ended")
		case <-stall.C:
			if time.Since(last) > 10*time.Second {
				return errors.New("no media for 10s")
			}
		case <-q.Wake():
			last = time.Now()
			for batch = q.Take(batch); len(batch) > 0; batch = q.Take(batch) {
				for i, e := range batch {
					b := append([]byte(nil), e.P.Bytes()...) // depacketizers keep slices of earlier packets
					e.P.Release()
					batch[i] = depack.Queued{}
					if err := w.packet(&dec, w.tracks[e.Track], b); err != nil {
						return err
					}
				}
			}
		}
	}
}

// track is one recorded track.
type track struct {
	*depack.Track
	id    int
	video bool
	rate  int64
	codec mp4.Codec
	dtsx  func(au [][]byte, pts int64) (int64, error)

	pending *fmp4.Sample // the last sample, whose duration the next one gives
	pendDTS int64
	lastDur uint32         // the duration of the sample before it
	samples []*fmp4.Sample // of the part being collected
	base    int64          // DTS of samples[0]
}

func newTrack(index int, f format.Format) (*track, error) {
	d, err := depack.New(index, f)
	if err != nil {
		return nil, err
	}
	t := &track{Track: d, video: d.IsVideo(), rate: int64(f.ClockRate())}
	switch f := f.(type) {
	case *format.H264:
		t.codec = &mp4.CodecH264{SPS: f.SPS, PPS: f.PPS}
		var x h264.DTSExtractor
		x.Initialize()
		t.dtsx = x.Extract
	case *format.H265:
		t.codec = &mp4.CodecH265{VPS: f.VPS, SPS: f.SPS, PPS: f.PPS}
		var x h265.DTSExtractor
		x.Initialize()
		t.dtsx = x.Extract
	case *format.MPEG4Audio:
		t.codec = &mp4.CodecMPEG4Audio{Config: *f.Config}
	case *format.Opus:
		ch := f.ChannelCount
		if ch == 0 {
			ch = 2
		}
		t.codec = &mp4.CodecOpus{ChannelCount: ch}
	}
	return t, nil
}

// writer writes one session's segments.
type writer struct {
	r      *Recorder
	tracks []*track
	video  *track // nil for audio-only routes: then the first track leads

	f        *os.File
	segStart float64 // seconds on the session's common timeline (GlobalDecoder2's)
	partEnd  float64
	seq      uint32
	buf      seekablebuffer.Buffer
	last     float64 // the latest sample time seen (seconds)
}

func secs(dts, rate int64) float64 { return float64(dts) / float64(rate) }

// packet takes one RTP packet of t.
func (w *writer) packet(dec *rtptime.GlobalDecoder2, t *track, b []byte) error {
	var pkt prtp.Packet
	if err := pkt.Unmarshal(b); err != nil {
		return nil // not RTP: the hub checked it, so this cannot happen; skip rather than stop
	}
	pts, ok := dec.Decode(t.Format, &pkt)
	if !ok {
		return nil
	}
	units, err := t.Decode(&pkt)
	if err != nil || units == nil {
		return nil // a broken access unit is skipped, as a player would
	}
	if t.video {
		return w.sample(t, units, pts)
	}
	// audio: one sample per unit; the AAC units of one packet are 1024 samples apart (an Opus
	// packet is one unit)
	for i, u := range units {
		if err := w.sampleAudio(t, u, pts+int64(i)*1024); err != nil {
			return err
		}
	}
	return nil
}

// sample handles one video access unit: it starts files at keyframes, closes parts and files.
func (w *writer) sample(t *track, au [][]byte, pts int64) error {
	key, picture := false, false
	switch c := t.codec.(type) {
	case *mp4.CodecH264:
		key = h264.IsRandomAccess(au)
		for _, n := range au {
			switch typ := h264.NALUType(n[0] & 0x1f); typ {
			case h264.NALUTypeSPS:
				c.SPS = n
			case h264.NALUTypePPS:
				c.PPS = n
			default:
				picture = picture || (typ >= h264.NALUTypeNonIDR && typ <= h264.NALUTypeIDR)
			}
		}
	case *mp4.CodecH265:
		key = h265.IsRandomAccess(au)
		for _, n := range au {
			switch typ := h265.NALUType((n[0] >> 1) & 0x3f); typ {
			case h265.NALUType_VPS_NUT:
				c.VPS = n
			case h265.NALUType_SPS_NUT:
				c.SPS = n
			case h265.NALUType_PPS_NUT:
				c.PPS = n
			default:
				picture = picture || typ < h265.NALUType_VPS_NUT
			}
		}
	}
	if !picture {
		// parameter sets or delimiters on their own (a camera's packets around a restart): they
		// updated the codec above, and a sample without a picture is no frame to a player
		return nil
	}
	if w.f == nil && !key {
		return nil // a file starts at a keyframe
	}
	dts, err := t.dtsx(au, pts)
	if err != nil {
		return nil
	}
	now := secs(dts, t.rate)
	if w.f != nil && t.pending != nil && now-secs(t.pendDTS, t.rate) > maxGap.Seconds() {
		// the route's media stopped and came back (a source restart, a backup switch): the file
		// ends at its last sample and the next one starts at the next keyframe, so the gap is a
		// file boundary, not a frame held for seconds
		if err := w.endAtGap(time.Duration((now - secs(t.pendDTS, t.rate)) * float64(time.Second))); err != nil {
			return err
		}
		if !key {
			return nil
		}
	}
	w.last = max(w.last, now)
	if w.f == nil || (key && now-w.segStart >= w.r.cfg.Segment.Seconds()) {
		if err := w.rotate(now); err != nil {
			return err
		}
	} else if now >= w.partEnd {
		if err := w.flush(now); err != nil {
			return err
		}
	}
	s := &fmp4.Sample{IsNonSyncSample: !key}
	var ferr error
	if _, ok := t.codec.(*mp4.CodecH264); ok {
		ferr = s.FillH264(int32(pts-dts), au)
	} else {
		ferr = s.FillH265(int32(pts-dts), au)
	}
	if ferr != nil {
		return nil
	}
	t.push(s, dts)
	return nil
}

// sampleAudio handles one audio unit; an audio-only route's first track leads the files.
func (w *writer) sampleAudio(t *track, u []byte, dts int64) error {
	now := secs(dts, t.rate)
	if w.f != nil && t.pending != nil && now-secs(t.pendDTS, t.rate) > maxGap.Seconds() {
		// audio may come back before video: the gap ends the file here too
		if err := w.endAtGap(time.Duration((now - secs(t.pendDTS, t.rate)) * float64(time.Second))); err != nil {
			return err
		}
	}
	w.last = max(w.last, now)
	if w.video == nil && t == w.tracks[0] {
		if w.f == nil || now-w.segStart >= w.r.cfg.Segment.Seconds() {
			if err := w.rotate(now); err != nil {
				return err
			}
		} else if now >= w.partEnd {
			if err := w.flush(now); err != nil {
				return err
			}
		}
	}
	if w.f == nil || now < w.segStart {
		return nil // before the first keyframe of the file
	}
	t.push(&fmp4.Sample{Payload: u}, dts)
	return nil
}

// maxGap is the jump in a video track's timestamps taken as a gap in the route's media.
const maxGap = 2 * time.Second

// endAtGap ends the file at a gap of d in the media: each track's last sample keeps the duration
// of the one before it.
func (w *writer) endAtGap(d time.Duration) error {
	for _, t := range w.tracks {
		if t.pending != nil {
			t.push(nil, t.pendDTS+int64(max(t.lastDur, 1)))
		}
	}
	if err := w.flush(w.last); err != nil {
		return err
	}
	w.r.gaps.Add(1)
	w.r.log.Warn("gap in the route's media: the file ends here, the next starts at a keyframe", "gap", d.Round(time.Millisecond))
	return w.closeFile()
}

// push queues s (DTS dts); the previous sample gets its duration and joins the part. A nil s
// only ends the previous sample at dts.
func (t *track) push(s *fmp4.Sample, dts int64) {
	if p := t.pending; p != nil {
		d := dts - t.pendDTS
		if d <= 0 || d > math.MaxUint32 {
			d = 1
		}
		p.Duration = uint32(d)
		t.lastDur = uint32(d)
		if len(t.samples) == 0 {
			t.base = t.pendDTS
		}
		t.samples = append(t.samples, p)
	}
	t.pending, t.pendDTS = s, dts
	if s == nil {
		t.pendDTS = 0
	}
}

// settle ends each track's pending sample at now (seconds), so it goes into the part being
// collected: before a file ends, whose last samples would otherwise open the next file.
func (w *writer) settle(now float64) {
	for _, t := range w.tracks {
		if t.pending == nil {
			continue
		}
		end := int64(now * float64(t.rate))
		if end <= t.pendDTS {
			end = t.pendDTS + 1
		}
		t.push(nil, end)
	}
}

// rotate ends the current file and starts one at now (seconds) with an initialization section.
func (w *writer) rotate(now float64) error {
	if w.f != nil {
		w.settle(now)
		if err := w.flush(now); err != nil {
			return err
		}
		if err := w.closeFile(); err != nil {
			return err
		}
	}
	dir := w.r.cfg.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record dir: %w", err)
	}
	name := filepath.Join(dir, time.Now().UTC().Format("2006-01-02_15-04-05.000000")+".mp4")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("record file: %w", err)
	}
	init := fmp4.Init{}
	for _, t := range w.tracks {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: uint32(t.rate), Codec: t.codec})
	}
	w.buf.Reset()
	if err := init.Marshal(&w.buf); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("fMP4 init: %w", err)
	}
	w.f, w.segStart, w.partEnd = f, now, now+w.r.cfg.Part.Seconds()
	for _, t := range w.tracks {
		t.samples = t.samples[:0]
	}
	if err := w.write(); err != nil {
		return err
	}
	w.r.segments.Add(1)
	w.r.recording.Store(true)
	w.r.log.Info("recording to a new file", "file", name)
	return nil
}

// flush writes the samples collected as one fragment and starts the next part at now.
func (w *writer) flush(now float64) error {
	w.partEnd = now + w.r.cfg.Part.Seconds()
	part := fmp4.Part{SequenceNumber: w.seq}
	for _, t := range w.tracks {
		if len(t.samples) == 0 {
			continue
		}
		base := t.base - int64(w.segStart*float64(t.rate))
		if base < 0 {
			base = 0
		}
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.id, BaseTime: uint64(base), Samples: t.samples})
	}
	if len(part.Tracks) == 0 {
		return nil
	}
	w.seq++
	w.buf.Reset()
	if err := part.Marshal(&w.buf); err != nil {
		return fmt.Errorf("fMP4 part: %w", err)
	}
	for _, t := range w.tracks {
		t.samples = nil
	}
	if err := w.write(); err != nil {
		return err
	}
	w.r.parts.Add(1)
	return nil
}

func (w *writer) write() error {
	n, err := w.f.Write(w.buf.Bytes())
	w.r.bytes.Add(uint64(n))
	if err != nil {
		w.f.Close()
		w.f = nil
		w.r.recording.Store(false)
		return fmt.Errorf("record: %w", err) // err names the file
	}
	return nil
}

func (w *writer) closeFile() error {
	err := w.f.Close()
	w.f = nil
	w.r.recording.Store(false)
	return err
}

// close writes what was collected and closes the file.
func (w *writer) close() {
	if w.f == nil {
		return
	}
	w.settle(w.last)
	if err := w.flush(w.partEnd); err != nil {
		w.r.fail(err)
		return
	}
	if err := w.closeFile(); err != nil {
		w.r.fail(err)
	}
}

// RouteDir is the directory of a route's files under a record path: the route's name with "/"
// kept as subdirectories and anything that could leave the path refused.
func RouteDir(root, route string) (string, error) {
	for _, el := range strings.Split(route, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("route %q cannot name a directory", route)
		}
	}
	return filepath.Join(root, filepath.FromSlash(route)), nil
}
