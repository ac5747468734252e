package hls

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/rtptime"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	prtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/depack"
)

// stallTimeout closes a muxer whose route sent no packet for this long, which also answers the
// playlist requests gohlslib holds while it waits for media.
const stallTimeout = 10 * time.Second

// drainBatch is how many queued packets the muxer takes per lock.
const drainBatch = 64

// muxer is one route's HLS muxer: a reader of the route feeding a gohlslib.Muxer.
type muxer struct {
	s    *Server
	path string
	log  *slog.Logger

	ready chan struct{} // closed once started or failed
	err   error         // why it failed to start; set before ready closes

	// set before ready closes, then read-only
	hls     *gohlslib.Muxer
	rs      rtsp.ReadStream
	q       *depack.Queue
	tracks  []*muxTrack
	hubs    []*rtp.Hub
	sinks   []rtp.Sink
	variant string
	since   time.Time

	lastReq    atomic.Int64 // unix nanoseconds of the last request
	inflight   atomic.Int64
	lastPacket int64 // owned by the muxer's goroutine
	t0         time.Time
	timeDec    rtptime.GlobalDecoder2

	requests, playlists, segments, parts, inits, bytes, errs, warnings atomic.Uint64

	clientsMu sync.Mutex
	clients   map[string]int64 // remote address -> unix nanoseconds of its last request
}

// muxTrack is one route track the muxer carries.
type muxTrack struct {
	*depack.Track
	hls   *gohlslib.Track
	write func(m *muxer, units [][]byte, ntp time.Time, pts int64) error
}

func newMuxer(s *Server, path string) *muxer {
	m := &muxer{s: s, path: path, log: s.log.With("route", path), ready: make(chan struct{}),
		variant: s.cfg.Variant, clients: map[string]int64{}}
	m.lastReq.Store(time.Now().UnixNano())
	m.timeDec.Initialize()
	return m
}

// run starts the muxer, serves it until it is idle, stalled or its stream ends, and tears it
// down. It runs on its own goroutine, owned by the server.
func (m *muxer) run(ci rtsp.ConnInfo) {
	defer m.s.wg.Done()
	if err := m.open(ci); err != nil {
		m.err = err
		m.s.remove(m)
		close(m.ready)
		m.s.startErrors.Add(1)
		m.log.Warn("hls muxer not started", "err", err)
		return
	}
	close(m.ready)
	m.s.started.Add(1)
	m.log.Info("hls muxer started", "variant", m.variant, "tracks", len(m.tracks))
	why := m.loop()
	m.s.remove(m)
	m.close()
	m.s.retire(m)
	m.log.Info("hls muxer stopped", "why", why, "requests", m.requests.Load(), "bytes", m.bytes.Load())
}

// open reads the route, picks the tracks HLS can carry and starts the gohlslib muxer.
func (m *muxer) open(ci rtsp.ConnInfo) error {
	ctx, cancel := context.WithTimeout(m.s.ctx, 60*time.Second)
	defer cancel()
	rs, err := m.s.cfg.Handler.OpenRead(ctx, ci, m.path)
	if err != nil {
		return err
	}
	if err := m.pickTracks(rs); err != nil {
		rs.Close()
		return err
	}
	m.rs = rs
	m.q = depack.NewQueue(m.s.cfg.QueueLen)
	for _, t := range m.tracks {
		hub, err := rs.SetupTCP(ctx, t.Index)
		if err != nil {
			rs.Close()
			return fmt.Errorf("track %d: %w", t.Index, err)
		}
		m.hubs = append(m.hubs, hub)
		m.sinks = append(m.sinks, m.q.Sink(len(m.sinks)))
	}
	if _, err := rs.Play(ctx); err != nil {
		rs.Close()
		return err
	}
	ht := make([]*gohlslib.Track, len(m.tracks))
	for i, t := range m.tracks {
		ht[i] = t.hls
	}
	m.hls = &gohlslib.Muxer{
		Tracks:             ht,
		Variant:            muxerVariant(m.variant),
		SegmentCount:       m.s.cfg.SegmentCount,
		SegmentMinDuration: m.s.cfg.SegmentDuration,
		PartMinDuration:    m.s.cfg.PartDuration,
		OnEncodeError:      m.targetChanged,
	}
	if err := m.hls.Start(); err != nil {
		rs.Close()
		return &rtsp.Error{Status: rtsp.StatusUnsupportedMedia, Msg: "HLS muxer", Err: err}
	}
	m.since = time.Now()
	m.lastPacket = rtp.Now()
	for i, h := range m.hubs {
		h.AddSink(m.sinks[i])
	}
	return nil
}

// pickTracks keeps the route's tracks HLS can carry in the configured variant (one video track,
// the first; every audio track). A route with none is refused with 415 and the reason.
func (m *muxer) pickTracks(rs rtsp.ReadStream) error {
	formats, err := depack.Formats(rs.SDP())
	if err != nil {
		return err
	}
	var skipped []string
	video := false
	for i, f := range formats {
		if f == nil {
			continue
		}
		t, err := newMuxTrack(i, f, m.variant)
		switch {
		case err != nil:
			skipped = append(skipped, err.Error())
		case t.IsVideo() && video:
			skipped = append(skipped, fmt.Sprintf("track %d: a second video track (HLS carries one)", i))
		default:
			video = video || t.IsVideo()
			m.tracks = append(m.tracks, t)
		}
	}
	if len(m.tracks) == 0 {
		return rtsp.Errorf(rtsp.StatusUnsupportedMedia, "route %q has no track HLS (%s) can carry: %v", m.path, m.variant, skipped)
	}
	for _, why := range skipped {
		m.log.Info("hls leaves a track out", "why", why)
	}
	return nil
}

// newMuxTrack maps a route track's format to a gohlslib track and its depacketizer.
func newMuxTrack(index int, f format.Format, variant string) (*muxTrack, error) {
	ts := variant == VariantMPEGTS
	switch f.(type) {
	case *format.H265:
		if ts {
			return nil, fmt.Errorf("track %d: H.265 needs hls.variant lowLatency or fmp4", index)
		}
	case *format.Opus:
		if ts {
			return nil, fmt.Errorf("track %d: Opus needs hls.variant lowLatency or fmp4", index)
		}
	}
	d, err := depack.New(index, f)
	if err != nil {
		return nil, err
	}
	t := &muxTrack{Track: d}
	switch f := f.(type) {
	case *format.H264:
		c := &codecs.H264{SPS: f.SPS, PPS: f.PPS}
		t.hls = &gohlslib.Track{Codec: c, ClockRate: f.ClockRate()}
		t.write = func(m *muxer, au [][]byte, ntp time.Time, pts int64) error {
			if ts {
				au = withH264Params(au, c)
			}
			return m.hls.WriteH264(t.hls, ntp, pts, au)
		}
	case *format.H265:
		t.hls = &gohlslib.Track{Codec: &codecs.H265{VPS: f.VPS, SPS: f.SPS, PPS: f.PPS}, ClockRate: f.ClockRate()}
		t.write = func(m *muxer, au [][]byte, ntp time.Time, pts int64) error {
			return m.hls.WriteH265(t.hls, ntp, pts, au)
		}
	case *format.MPEG4Audio:
		t.hls = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: *f.Config}, ClockRate: f.ClockRate()}
		t.write = func(m *muxer, aus [][]byte, ntp time.Time, pts int64) error {
			return m.hls.WriteMPEG4Audio(t.hls, ntp, pts, aus)
		}
	case *format.Opus:
		ch := f.ChannelCount
		if ch == 0 {
			ch = 2
		}
		t.hls = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: ch}, ClockRate: f.ClockRate()}
		t.write = func(m *muxer, packets [][]byte, ntp time.Time, pts int64) error {
			return m.hls.WriteOpus(t.hls, ntp, pts, packets)
		}
	}
	return t, nil
}

// withH264Params puts the parameter sets in front of an IDR access unit that lacks them, for
// MPEG-TS segments, which carry no initialization section; it keeps the latest ones seen.
// gohlslib keeps c up to date from in-band parameter sets. Hand-written: neither gohlslib nor
// mediacommon prepends them.
func withH264Params(au [][]byte, c *codecs.H264) [][]byte {
	if !h264.IsRandomAccess(au) || c.SPS == nil || c.PPS == nil {
		return au
	}
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return au
		}
	}
	return append([][]byte{c.SPS, c.PPS}, au...)
}

func muxerVariant(v string) gohlslib.MuxerVariant {
	switch v {
	case VariantMPEGTS:
		return gohlslib.MuxerVariantMPEGTS
	case VariantFMP4:
		return gohlslib.MuxerVariantFMP4
	}
	return gohlslib.MuxerVariantLowLatency
}

// loop muxes queued packets until the muxer should stop, and says why.
func (m *muxer) loop() string {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	batch := make([]depack.Queued, 0, drainBatch)
	for {
		select {
		case <-m.q.Wake():
			for {
				batch = m.q.Take(batch)
				if len(batch) == 0 {
					break
				}
				for i := range batch {
					m.mux(batch[i])
					batch[i] = depack.Queued{}
				}
			}
		case <-tick.C:
			now := time.Now()
			if m.inflight.Load() == 0 && now.Sub(time.Unix(0, m.lastReq.Load())) > m.s.cfg.IdleStop {
				return "idle"
			}
			if time.Duration(rtp.Now()-m.lastPacket) > stallTimeout {
				return fmt.Sprintf("no media for %s", stallTimeout)
			}
		case <-m.rs.Done():
			return "stream ended"
		case <-m.s.ctx.Done():
			return "server closed"
		}
	}
}

// mux depacketizes one packet into the muxer. The packet is copied and released first:
// depacketizers keep slices of earlier packets of an access unit, and gohlslib keeps parameter
// sets, so the bytes must outlive the pool buffer.
func (m *muxer) mux(e depack.Queued) {
	b := append([]byte(nil), e.P.Bytes()...)
	e.P.Release()
	m.lastPacket = rtp.Now()
	var pkt prtp.Packet
	if err := pkt.Unmarshal(b); err != nil {
		m.errs.Add(1)
		return
	}
	t := m.tracks[e.Track]
	pts, ok := m.timeDec.Decode(t.Format, &pkt)
	if !ok {
		return
	}
	units, err := t.Decode(&pkt)
	if err != nil {
		m.encodeError(err)
		return
	}
	if units == nil {
		return
	}
	if m.t0.IsZero() {
		m.t0 = time.Now()
	}
	if err := t.write(m, units, m.t0.Add(ticksToDuration(pts, t.Format.ClockRate())), pts); err != nil {
		m.encodeError(err)
	}
}

// ticksToDuration converts a timestamp in clock-rate units without overflowing for long streams.
func ticksToDuration(v int64, rate int) time.Duration {
	r := int64(rate)
	return time.Duration(v/r)*time.Second + time.Duration(v%r*int64(time.Second)/r)
}

// encodeError counts an error of depacketizing or muxing; the first ones and then one in a
// thousand are logged.
func (m *muxer) encodeError(err error) {
	if n := m.errs.Add(1); n <= 5 || n%1000 == 0 {
		m.log.Warn("hls muxing error", "err", err, "errors", n)
	}
}

// targetChanged is gohlslib's OnEncodeError, which it calls only to warn that a segment or part
// outgrew the target duration announced (the route's keyframe interval does not fit
// hls.segment_duration, or it changed): the stream goes on, iOS players may stall.
func (m *muxer) targetChanged(err error) {
	if n := m.warnings.Add(1); n <= 5 || n%1000 == 0 {
		m.log.Warn("hls target duration changed; a keyframe interval that fits hls.segment_duration avoids it", "err", err, "warnings", n)
	}
}

// close detaches the muxer from the hubs, ends its reader and stops gohlslib, which answers
// the requests it holds.
func (m *muxer) close() {
	for i, h := range m.hubs {
		h.RemoveSink(m.sinks[i])
	}
	m.q.Close()
	m.rs.Close()
	m.hls.Close()
}

// serve answers one request for a file of the muxer.
func (m *muxer) serve(w http.ResponseWriter, r *http.Request, kind fileKind) {
	m.inflight.Add(1)
	defer func() {
		// a request that waited (a blocking reload, the first playlist) counts as activity until
		// it is answered
		m.lastReq.Store(time.Now().UnixNano())
		m.inflight.Add(-1)
	}()
	now := time.Now().UnixNano()
	m.lastReq.Store(now)
	m.requests.Add(1)
	m.clientsMu.Lock()
	m.clients[r.RemoteAddr] = now
	if len(m.clients) > maxClients {
		m.pruneClientsLocked(now)
	}
	m.clientsMu.Unlock()
	cw := &countingWriter{ResponseWriter: w}
	m.hls.Handle(cw, r)
	if !cw.wrote {
		// gohlslib writes nothing for a file it does not have (an old segment, a guessed name)
		http.Error(w, "no such HLS file (segments expire; reload the playlist)", http.StatusNotFound)
		return
	}
	m.bytes.Add(cw.n)
	m.s.bytes.Add(cw.n)
	if cw.status >= 500 {
		m.errs.Add(1)
	}
	if cw.status != http.StatusOK {
		return
	}
	switch kind {
	case filePlaylist:
		m.playlists.Add(1)
	case fileInit:
		m.inits.Add(1)
	case fileSegment:
		m.segments.Add(1)
	case filePart:
		m.parts.Add(1)
	}
}

// countingWriter counts what a response writes.
type countingWriter struct {
	http.ResponseWriter
	n      uint64
	status int
	wrote  bool
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.wrote {
		c.wrote, c.status = true, code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.wrote, c.status = true, http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += uint64(n)
	return n, err
}
