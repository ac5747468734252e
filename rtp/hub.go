package rtp

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// Track describes one RTP media of a stream.
type Track struct {
	Media       string // "video", "audio", "application"
	PayloadType uint8
	ClockRate   uint32
}

// HubConfig configures a Hub.
type HubConfig struct {
	Track  Track
	Pool   *Pool        // packet buffers; nil gives the hub a pool of its own
	Logger *slog.Logger // nil means slog.Default()
	// CNAME goes into the SDES of the hub's sender reports. Players group
	// tracks by CNAME for lip sync, so the tracks of one stream should share
	// one; empty means "meshgw-<ssrc>".
	CNAME string
	// SRInterval is the mean interval between sender reports (default 5s).
	SRInterval time.Duration
	// Pacing, when above 0, spaces the output line to UDP readers at no more
	// than Pacing times the stream's own average rate (keyframe bursts
	// leave over a frame interval or so, so readers with small socket
	// buffers lose nothing). 0 sends every packet at once.
	Pacing float64
	// SSRC, when not 0, is the output SSRC instead of a random one. A stream
	// relayed between nodes keeps its upstream SSRC so that a reader moved
	// from one node to another stays on the same line.
	SSRC uint32
	// Transparent makes the first source epoch pass sequence numbers and
	// timestamps through unchanged (output = input), so a relay hub fed by
	// another node's hub outputs exactly that hub's line. It needs SSRC
	// (the upstream hub's): without one the hub logs a warning and behaves
	// as a normal hub, as identity offsets under a random SSRC buy nothing.
	// Later epochs (SSRC change, seq jump, SourceRestarted) continue the line
	// as in a normal hub, since the upstream line itself was broken.
	Transparent bool
	// Continue, with SSRC set to Continue.SSRC, makes the hub carry on the
	// line of a hub that went away (its node died) instead of starting a
	// random one: its first packet gets a sequence number past
	// Continue.NextSeq by the packets the old line may have sent since At
	// (at Rate, with a margin), and Continue.NextTS advanced by the time
	// since At. Readers moved here see their SSRC go on with a forward jump,
	// as after a loss, never a line that goes back.
	Continue *LinePos
}

// LinePos is where a hub's output line stood at a moment: the basis for a
// hub on another node to continue it (HubConfig.Continue).
type LinePos struct {
	SSRC    uint32
	NextSeq uint16
	NextTS  uint32
	At      time.Time // wall clock: the position travels between hosts
	Rate    float64   // packets per second so far
}

// Continuing a line: the sequence numbers the old line may have used since
// its last known position are skipped, with this margin, and never more than
// readers take for a loss rather than a restart (RFC 3550 A.1's
// MAX_DROPOUT is 3000).
const (
	continueMargin  = 50
	continueMaxSkip = 2500
)

// HubStats are a hub's counters since it was created.
type HubStats struct {
	PacketsIn  uint64 // valid RTP packets accepted from the source
	BytesIn    uint64 // their bytes
	PacketsOut uint64 // RTP deliveries to sinks (one per packet per sink)
	Invalid    uint64 // packets rejected by validation
	Epochs     uint64 // source epochs begun after the first (restarts, SSRC changes, seq jumps)
}

// SinkStats are a sink's counters since it was created.
type SinkStats struct {
	Packets uint64 // packets sent
	Bytes   uint64 // bytes sent
	Dropped uint64 // packets dropped because the queue was full or the sink closed
	Errors  uint64 // packets lost to send errors
}

// Sink receives packets from hubs. Deliver must never block: a full sink
// drops and counts.
//
// A delivery that raced with RemoveSink or Hub.Close may still arrive after
// they return (the hub's fan-out reads its sink list without a lock), so a
// sink must accept, and release, packets after it has been closed.
type Sink interface {
	// DeliverRTP hands over one reference to p; the sink must eventually
	// Release it exactly once (also when it drops it).
	DeliverRTP(p *Packet)
	// DeliverRTCP hands over hub-generated RTCP (sender reports) for this
	// sink's track; same ownership rule as DeliverRTP.
	DeliverRTCP(p *Packet)
}

// RFC 3550 appendix A.1: how far a sequence number may move before we treat
// the stream as restarted rather than lossy or reordered.
const (
	maxDropout  = 3000
	maxMisorder = 100
)

// hubSink is one entry of the copy-on-write sink list. It is a pointer so
// that its needSR flag survives list copies.
type hubSink struct {
	s      Sink
	needSR atomic.Bool // no sender report sent to it yet
}

// srcState is the rewrite state. It is owned by the goroutine inside
// WriteRTP (one source at a time), so the per-packet path needs no lock.
type srcState struct {
	started bool
	inSSRC  uint32
	maxSeq  uint16 // highest input sequence number of this epoch
	seqOff  uint16 // out = in + off (mod 2^16)
	tsOff   uint32 // out = in + off (mod 2^32)

	lastSeq uint16 // highest output sequence number so far
	lastTS  uint32 // output timestamp of that packet
	lastAt  int64  // its arrival (monotonic, see Now)

	packets uint32 // sender report counters of the output line
	octets  uint32
	nextSR  int64 // monotonic time the next periodic report is due
}

// srcSR is the latest sender report of the source: its NTP<->RTP pair.
type srcSR struct {
	ok   bool
	ssrc uint32
	ntp  uint64
	rtp  uint32
	at   int64 // arrival (monotonic), for the DLSR of our receiver reports
}

// recvStats is the hub's receiver statistics of its input source (RFC 3550 A.1, A.8), for the
// receiver reports a node sends upstream. WriteRTP owns the plain fields and publishes the
// atomic ones for ReceptionReport, which runs on another goroutine.
type recvStats struct {
	started bool
	ssrc    uint32
	maxSeq  uint16
	cycles  uint32
	transit int32
	jitter  uint32 // scaled by 16 (A.8's integer form)

	pubSSRC   atomic.Uint32
	pubBase   atomic.Uint32 // extended sequence number of the source's first packet
	pubMax    atomic.Uint32 // extended highest sequence number
	pubCount  atomic.Uint64 // packets received from this source
	pubJitter atomic.Uint32 // scaled by 16
	pubGen    atomic.Uint32 // bumped when the source changes, so interval counters restart
}

// Hub fans one track's packets from its one active source out to its sinks.
//
// The source calls WriteRTP/WriteRTCP (one source at a time); everything
// else may be called from any goroutine. The hub rewrites each packet into
// its own continuous RTP line (one random SSRC; sequence and timestamp
// offsets re-derived at every source epoch) before sharing it, so readers
// never see an upstream reconnect as a new stream. A transparent hub (see
// HubConfig.Transparent) keeps its input's line until the first epoch ends.
//
// Sender reports are generated on the write path, not by a timer: a report
// is due when a packet arrives more than SRInterval after the last one. This
// needs no goroutine and no lock around the rewrite state, and it follows
// RFC 3550 §6.4, which sends SRs only while data flows.
type Hub struct {
	track       Track
	pool        *Pool
	log         *slog.Logger
	ssrc        uint32
	transparent bool // first epoch uses zero offsets, see HubConfig.Transparent
	cont        *LinePos
	srInterval  int64
	srTmpl      []byte // SR + SDES CNAME as marshalled by pion; per report we patch the SR fields

	sinks  atomic.Pointer[[]*hubSink] // copy-on-write; replaced under mu
	mu     sync.Mutex                 // serialises sink list changes and Close
	closed atomic.Bool

	restart atomic.Bool // SourceRestarted: the next packet begins an epoch
	src     srcState    // owned by WriteRTP
	pace    pacer       // owned by WriteRTP

	srMu sync.Mutex // guards sr: written by WriteRTCP, read when a report is due
	sr   srcSR

	rx recvStats

	// sent remembers our last sender reports (the middle 32 bits of their NTP time, and when
	// they left, monotonic), so a reader's receiver report that echoes one gives the round trip.
	sentMu sync.Mutex
	sent   [8]sentSR
	sentN  int

	// Published by WriteRTP for NextSeqTS: 1<<48 | seq<<32 | ts of the
	// highest packet out, and its arrival time.
	last    atomic.Uint64
	lastAt  atomic.Int64
	firstAt atomic.Int64 // the first packet's arrival (monotonic), for LinePos.Rate

	packetsIn, bytesIn, packetsOut, invalid, epochs atomic.Uint64
}

// NewHub returns a hub for one track. It starts no goroutine.
func NewHub(cfg HubConfig) *Hub {
	h := &Hub{
		track:      cfg.Track,
		pool:       cfg.Pool,
		log:        cfg.Logger,
		ssrc:       cfg.SSRC,
		srInterval: int64(cfg.SRInterval),
		pace:       pacer{factor: cfg.Pacing},
	}
	if h.pool == nil {
		h.pool = NewPool()
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.ssrc == 0 {
		h.ssrc = rand.Uint32()
		if cfg.Transparent {
			h.log.Warn("rtp: transparent hub without SSRC, rewriting onto a random line", "ssrc", h.ssrc)
		}
	} else {
		h.transparent = cfg.Transparent
		if cfg.Continue != nil && cfg.Continue.SSRC == cfg.SSRC {
			c := *cfg.Continue
			h.cont = &c
		}
	}
	if h.srInterval <= 0 {
		h.srInterval = int64(5 * time.Second)
	}
	cname := cfg.CNAME
	if cname == "" {
		cname = fmt.Sprintf("meshgw-%08x", h.ssrc)
	}
	h.log = h.log.With("media", cfg.Track.Media, "pt", cfg.Track.PayloadType, "ssrc", h.ssrc)
	h.srTmpl = h.marshalSRTemplate(cname)
	empty := []*hubSink{}
	h.sinks.Store(&empty)
	return h
}

// marshalSRTemplate lets pion lay out the compound SR+SDES once; reports are
// then a copy plus four field writes, without allocation.
func (h *Hub) marshalSRTemplate(cname string) []byte {
	if len(cname) > 255 {
		cname = cname[:255]
	}
	b, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.SenderReport{SSRC: h.ssrc},
		rtcp.NewCNAMESourceDescription(h.ssrc, cname),
	})
	if err != nil { // only reachable with a CNAME pion rejects; fall back to a bare SR
		h.log.Warn("rtp: cannot marshal SDES, sending SR without CNAME", "err", err)
		b, _ = (&rtcp.SenderReport{SSRC: h.ssrc}).Marshal()
	}
	return b
}

// Offsets of the fields we patch in the SR template (RFC 3550 §6.4.1).
const (
	srNTPOff     = 8
	srRTPOff     = 16
	srPacketsOff = 20
	srOctetsOff  = 24
)

// WriteRTP takes one RTP packet from the source. b is copied; the caller
// keeps it. It returns an error wrapping ErrInvalidRTP for malformed input
// and ErrClosed after Close.
func (h *Hub) WriteRTP(b []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := checkRTP(b); err != nil {
		h.invalid.Add(1)
		return fmt.Errorf("hub %s/%d: %w", h.track.Media, h.track.PayloadType, err)
	}
	if len(b) > LargePacketSize {
		h.invalid.Add(1)
		return fmt.Errorf("hub %s/%d: %w: %d bytes", h.track.Media, h.track.PayloadType, ErrInvalidRTP, len(b))
	}
	now := time.Now()
	mono := int64(now.Sub(monoBase))
	h.packetsIn.Add(1)
	h.bytesIn.Add(uint64(len(b)))

	inSeq := binary.BigEndian.Uint16(b[2:])
	inTS := binary.BigEndian.Uint32(b[4:])
	inSSRC := binary.BigEndian.Uint32(b[8:])
	h.noteRx(inSeq, inTS, inSSRC, mono)
	outSeq, outTS := h.rewrite(inSeq, inTS, inSSRC, mono)

	p := h.pool.Get(len(b))
	copy(p.buf, b)
	p.recv = mono
	p.depart = h.pace.depart(mono, len(b))
	binary.BigEndian.PutUint16(p.buf[2:], outSeq)
	binary.BigEndian.PutUint32(p.buf[4:], outTS)
	binary.BigEndian.PutUint32(p.buf[8:], h.ssrc)

	s := &h.src
	s.packets++
	s.octets += uint32(rtpPayloadLen(b))

	// Fan out: one reference per sink. The hub's own reference becomes the
	// first sink's, so p must not be touched after the loop.
	sinks := *h.sinks.Load()
	if len(sinks) == 0 {
		p.Release()
		return nil
	}
	p.refs.Add(int32(len(sinks) - 1))
	for _, e := range sinks {
		e.s.DeliverRTP(p)
	}
	h.packetsOut.Add(uint64(len(sinks)))

	// Sender reports: periodically to everyone, and right after its first
	// packet to each new sink so players can sync without waiting 5 s.
	if mono >= s.nextSR {
		s.nextSR = mono + h.srInterval/2 + rand.Int64N(h.srInterval) // RFC 3550 §6.3.1: randomise 0.5..1.5
		h.sendSR(sinks, true, now, inTS, outTS)
	} else {
		for _, e := range sinks {
			if e.needSR.Load() {
				h.sendSR(sinks, false, now, inTS, outTS)
				break
			}
		}
	}
	return nil
}

// rewrite maps an input (seq, ts, ssrc) onto the hub's output line, starting
// a new epoch when the source restarted, changed SSRC or jumped.
func (h *Hub) rewrite(seq uint16, ts, ssrc uint32, mono int64) (uint16, uint32) {
	s := &h.src
	newEpoch := !s.started || (h.restart.Load() && h.restart.Swap(false)) || ssrc != s.inSSRC
	if !newEpoch {
		switch d := seq - s.maxSeq; {
		case d == 0: // duplicate: forward it, the reader's jitter buffer drops it
		case d < 0x8000: // forward
			if d > maxDropout {
				newEpoch = true
			} else {
				s.maxSeq = seq
			}
		default: // backward
			if -d > maxMisorder {
				newEpoch = true
			}
		}
	}
	if newEpoch {
		if !s.started {
			if h.transparent {
				// the input already is a line that began randomly (the
				// upstream hub's), and readers may switch between the two
				s.seqOff, s.tsOff = 0, 0
			} else if c := h.cont; c != nil {
				el := max(time.Since(c.At), 0)
				skip := min(c.Rate*el.Seconds()*1.25+continueMargin, continueMaxSkip)
				s.seqOff = c.NextSeq + uint16(skip) - seq
				s.tsOff = c.NextTS + ticks(int64(el), h.track.ClockRate) - ts
				h.log.Info("rtp: continuing a line", "from_seq", c.NextSeq, "skip", uint16(skip), "elapsed", el.Round(time.Millisecond))
			} else {
				// RFC 3550 §5.1: random initial sequence number and timestamp.
				s.seqOff = uint16(rand.Uint32()) - seq
				s.tsOff = rand.Uint32() - ts
			}
			s.started = true
			h.restart.Store(false)
			h.firstAt.Store(mono)
		} else {
			adv := ticks(mono-s.lastAt, h.track.ClockRate)
			if adv == 0 {
				adv = 1 // never give two frames of different epochs one timestamp
			}
			s.seqOff = s.lastSeq + 1 - seq
			s.tsOff = s.lastTS + adv - ts
			h.epochs.Add(1)
			h.log.Debug("rtp: new source epoch", "in_ssrc", ssrc, "in_seq", seq, "out_seq", s.lastSeq+1)
		}
		s.inSSRC = ssrc
		s.maxSeq = seq
		s.lastSeq = seq + s.seqOff - 1 // so the check below advances
	}
	outSeq, outTS := seq+s.seqOff, ts+s.tsOff
	if d := outSeq - s.lastSeq; d != 0 && d < 0x8000 {
		s.lastSeq, s.lastTS, s.lastAt = outSeq, outTS, mono
		h.lastAt.Store(mono)
		h.last.Store(1<<48 | uint64(outSeq)<<32 | uint64(outTS))
	}
	return outSeq, outTS
}

// noteRx updates the receiver statistics with one input packet (RFC 3550 A.1 without probation:
// the source is the one the hub was given; A.8 for the jitter, in the integer form).
func (h *Hub) noteRx(seq uint16, ts, ssrc uint32, mono int64) {
	r := &h.rx
	arrival := int32(ticks(mono, h.track.ClockRate))
	transit := arrival - int32(ts)
	fresh := !r.started || ssrc != r.ssrc
	if !fresh {
		switch d := seq - r.maxSeq; {
		case d < 0x8000:
			if d > maxDropout {
				fresh = true // the source restarted its numbering
			} else {
				if seq < r.maxSeq {
					r.cycles += 1 << 16
				}
				r.maxSeq = seq
			}
		case -d > maxMisorder:
			fresh = true
		}
	}
	if fresh {
		r.started, r.ssrc, r.maxSeq, r.cycles, r.jitter = true, ssrc, seq, 0, 0
		r.transit = transit
		r.pubSSRC.Store(ssrc)
		r.pubBase.Store(uint32(seq))
		r.pubCount.Store(0)
		r.pubGen.Add(1)
	} else {
		d := transit - r.transit
		r.transit = transit
		if d < 0 {
			d = -d
		}
		r.jitter += uint32(d) - ((r.jitter + 8) >> 4)
	}
	r.pubMax.Store(r.cycles | uint32(r.maxSeq))
	r.pubJitter.Store(r.jitter)
	r.pubCount.Add(1)
}

// RRInterval is what the sender of receiver reports about one hub's input keeps between two
// reports (RFC 3550 A.3's expected_prior and received_prior).
type RRInterval struct {
	gen                      uint32
	expectedPrior, recvPrior uint32
}

// ReceptionReport returns the report block a receiver report about the hub's current input
// should carry now (monotonic, see Now), advancing iv; false while no packet has come.
func (h *Hub) ReceptionReport(iv *RRInterval, now int64) (ReportBlock, bool) {
	r := &h.rx
	gen := r.pubGen.Load()
	if gen == 0 {
		return ReportBlock{}, false
	}
	ssrc, base, maxExt, count := r.pubSSRC.Load(), r.pubBase.Load(), r.pubMax.Load(), uint32(r.pubCount.Load())
	if iv.gen != gen {
		*iv = RRInterval{gen: gen}
	}
	expected := maxExt - base + 1
	lost := int64(expected) - int64(count)
	lost = max(min(lost, 0x7fffff), -0x800000)
	blk := ReportBlock{SSRC: ssrc, CumulativeLost: int32(lost), HighestSeq: maxExt, Jitter: r.pubJitter.Load() >> 4}
	expInt, recvInt := expected-iv.expectedPrior, count-iv.recvPrior
	iv.expectedPrior, iv.recvPrior = expected, count
	if lostInt := int64(expInt) - int64(recvInt); expInt > 0 && lostInt > 0 {
		blk.FractionLost = uint8(min(lostInt<<8/int64(expInt), 255))
	}
	h.srMu.Lock()
	sr := h.sr
	h.srMu.Unlock()
	if sr.ok && sr.ssrc == ssrc {
		blk.LSR = uint32(sr.ntp >> 16)
		blk.DLSR = uint32(max(now-sr.at, 0) << 16 / int64(time.Second))
	}
	return blk, true
}

// ticks converts a monotonic duration to RTP clock ticks without overflow.
func ticks(ns int64, clockRate uint32) uint32 {
	if ns <= 0 {
		return 0
	}
	const sec = int64(time.Second)
	return uint32((ns/sec)*int64(clockRate) + (ns%sec)*int64(clockRate)/sec)
}

// sendSR delivers one sender report to all sinks (all) or to those that
// have not had one yet. inTS/outTS are the timestamps of the packet that
// arrived at now: the report maps that instant (or, when the source sent its
// own SR for this epoch, the source's NTP time of that timestamp) to outTS.
func (h *Hub) sendSR(sinks []*hubSink, all bool, now time.Time, inTS, outTS uint32) {
	ntp := ntpTime(now)
	if srcNTP, ok := h.sourceNTP(inTS); ok {
		ntp = srcNTP
	}
	n := 0
	for _, e := range sinks {
		if all || e.needSR.Load() {
			n++
		}
	}
	if n == 0 {
		return
	}
	p := h.pool.Get(len(h.srTmpl))
	copy(p.buf, h.srTmpl)
	binary.BigEndian.PutUint64(p.buf[srNTPOff:], ntp)
	binary.BigEndian.PutUint32(p.buf[srRTPOff:], outTS)
	binary.BigEndian.PutUint32(p.buf[srPacketsOff:], h.src.packets)
	binary.BigEndian.PutUint32(p.buf[srOctetsOff:], h.src.octets)
	p.recv = int64(now.Sub(monoBase))
	h.sentMu.Lock()
	h.sent[h.sentN%len(h.sent)] = sentSR{lsr: uint32(ntp >> 16), mono: p.recv}
	h.sentN++
	h.sentMu.Unlock()
	p.refs.Add(int32(n - 1))
	for _, e := range sinks {
		if all || e.needSR.Load() {
			e.needSR.Store(false)
			e.s.DeliverRTCP(p)
		}
	}
}

type sentSR struct {
	lsr  uint32
	mono int64
}

// SRSentAt returns when the sender report whose NTP middle bits are lsr left the hub
// (monotonic, see Now), if it is one of the last few.
func (h *Hub) SRSentAt(lsr uint32) (int64, bool) {
	h.sentMu.Lock()
	defer h.sentMu.Unlock()
	for _, e := range h.sent {
		if e.lsr == lsr && e.mono != 0 {
			return e.mono, true
		}
	}
	return 0, false
}

// sourceNTP maps an input timestamp through the source's latest SR of the
// current epoch, keeping the source's audio/video alignment intact.
func (h *Hub) sourceNTP(inTS uint32) (uint64, bool) {
	h.srMu.Lock()
	sr := h.sr
	h.srMu.Unlock()
	if !sr.ok || sr.ssrc != h.src.inSSRC || h.track.ClockRate == 0 {
		return 0, false
	}
	d := int64(int32(inTS - sr.rtp)) // ticks after (or before) the SR instant
	ns := d * int64(time.Second) / int64(h.track.ClockRate)
	const sec = int64(time.Second)
	return sr.ntp + uint64((ns/sec)<<32+((ns%sec)<<32)/sec), true
}

// ntpUnixOffset is the seconds from 1900 (NTP era 0) to 1970 (Unix).
const ntpUnixOffset = 2208988800

// ntpTime converts wall-clock time to the 64-bit NTP format of RTCP.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpUnixOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// WriteRTCP takes RTCP from the source. The hub terminates RTCP (DESIGN §4):
// nothing is forwarded; a sender report's NTP<->RTP pair is kept to map the
// hub's own reports through the source clock.
func (h *Hub) WriteRTCP(b []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	for off := 0; off < len(b); {
		var hd rtcp.Header
		if err := hd.Unmarshal(b[off:]); err != nil {
			h.invalid.Add(1)
			return fmt.Errorf("hub %s/%d: RTCP at offset %d: %w", h.track.Media, h.track.PayloadType, off, err)
		}
		end := off + 4 + int(hd.Length)*4
		if end > len(b) {
			h.invalid.Add(1)
			return fmt.Errorf("hub %s/%d: RTCP at offset %d: length %d exceeds %d bytes", h.track.Media, h.track.PayloadType, off, end-off, len(b)-off)
		}
		if hd.Type == rtcp.TypeSenderReport {
			var sr rtcp.SenderReport
			if err := sr.Unmarshal(b[off:end]); err != nil {
				h.invalid.Add(1)
				return fmt.Errorf("hub %s/%d: sender report: %w", h.track.Media, h.track.PayloadType, err)
			}
			h.srMu.Lock()
			h.sr = srcSR{ok: true, ssrc: sr.SSRC, ntp: sr.NTPTime, rtp: sr.RTPTime, at: Now()}
			h.srMu.Unlock()
		}
		off = end
	}
	return nil
}

// SourceRestarted tells the hub that the next packet begins a new source
// epoch (upstream reconnect): output seq continues at last+1 and output ts
// at last ts plus the wall-clock time elapsed, whatever the source sends.
func (h *Hub) SourceRestarted() {
	h.restart.Store(true)
	h.srMu.Lock()
	h.sr = srcSR{}
	h.srMu.Unlock()
}

// AddSink adds s; it gets every packet written after AddSink returns, and a
// sender report right after its first packet. Adding a sink twice, or to a
// closed hub, does nothing.
func (h *Hub) AddSink(s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return
	}
	old := *h.sinks.Load()
	if slices.ContainsFunc(old, func(e *hubSink) bool { return e.s == s }) {
		return
	}
	e := &hubSink{s: s}
	e.needSR.Store(true)
	// Appending in place is safe although the fan-out reads old without the lock: it
	// writes only the slot past old's length, which no published list of this array has
	// reached (RemoveSink publishes a fresh array, so a list's length only grows). The
	// spare capacity append leaves makes N joins cost O(N) copying, not O(N²) garbage.
	next := append(old, e)
	h.sinks.Store(&next)
}

// RemoveSink removes s; the hub never releases packets on its behalf.
func (h *Hub) RemoveSink(s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.sinks.Load()
	next := slices.DeleteFunc(slices.Clone(old), func(e *hubSink) bool { return e.s == s })
	if len(next) != len(old) {
		h.sinks.Store(&next)
	}
}

// SSRC returns the output SSRC (HubConfig.SSRC or random, fixed for the
// hub's life).
func (h *Hub) SSRC() uint32 { return h.ssrc }

// NextSeqTS reports what the next packet out will carry, for RTSP RTP-Info:
// the sequence number after the last one out and the last timestamp advanced
// by the wall-clock time since. ok is false before the first packet.
func (h *Hub) NextSeqTS() (seq uint16, ts uint32, ok bool) {
	v := h.last.Load()
	if v>>48 == 0 {
		return 0, 0, false
	}
	at := h.lastAt.Load()
	return uint16(v>>32) + 1, uint32(v) + ticks(Now()-at, h.track.ClockRate), true
}

// Line reports where the output line stands (for a hub elsewhere to continue it, see
// HubConfig.Continue). ok is false before the first packet.
func (h *Hub) Line() (LinePos, bool) {
	seq, ts, ok := h.NextSeqTS()
	if !ok {
		return LinePos{}, false
	}
	p := LinePos{SSRC: h.ssrc, NextSeq: seq, NextTS: ts, At: time.Now()}
	if d := time.Duration(Now() - h.firstAt.Load()); d > 0 {
		p.Rate = float64(h.packetsIn.Load()) / d.Seconds()
	}
	return p, true
}

// Track returns the hub's track.
func (h *Hub) Track() Track { return h.track }

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		PacketsIn:  h.packetsIn.Load(),
		BytesIn:    h.bytesIn.Load(),
		PacketsOut: h.packetsOut.Load(),
		Invalid:    h.invalid.Load(),
		Epochs:     h.epochs.Load(),
	}
}

// Close stops accepting packets and removes all sinks without calling them
// (their owners close them). It is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Swap(true) {
		return
	}
	empty := []*hubSink{}
	h.sinks.Store(&empty)
}
