package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/demo"
	"github.com/meshgw/meshgw/rtsp/pull"
)

// Backup modes of a source flow (Flow.BackupMode); the config's names.
const (
	BackupAuto   = "auto"
	BackupMerge  = "merge"
	BackupSwitch = "switch"
)

// DefaultBackupStall is the stall time of a flow whose BackupStall is 0.
const DefaultBackupStall = time.Second

// Tuning of the selector. They are fields of the selector (set from these)
// so tests can shorten them.
const (
	// holdDownFactor × stall: how long a recovered primary must deliver
	// before the stream goes back to it, so a flapping camera does not
	// flip readers back and forth.
	holdDownFactor = 2
	// maxKeyWait bounds the wait for the target leg's keyframe: a stream
	// whose keyframes the selector cannot see still switches, at once.
	maxKeyWait = 10 * time.Second
	// mergeSkew is the 2022-7 skew window of merge mode.
	mergeSkew = merge.ClassB
	// autoMatches is how many packets of one leg must meet their twins on
	// the other leg before auto mode merges; autoGiveUp how many packets
	// of the backup may pass without any evidence before it switches.
	autoMatches = 8
	autoGiveUp  = 500
	// startGrace is how long the primary may take to deliver its first
	// packet (connect, DESCRIBE, SETUP, PLAY, perhaps a UDP-to-TCP
	// fallback) before the backup takes over, at least the stall time: a
	// slow start is not a stall, and readers should not see the stream flip
	// to the backup and back while the primary connects.
	startGrace = 5 * time.Second
	// maxFenceBehind bounds how far behind the last directly forwarded
	// packet a merged one may be and still count as its copy.
	maxFenceBehind = 1000
	// autoRing is the number of recent (seq, ts) pairs kept per leg to
	// compare the legs by.
	autoRing = 128
)

// Legs of a selector.
const (
	legPrimary = 0
	legBackup  = 1
)

var legNames = [2]string{"primary", "backup"}

// Phases of a selector.
const (
	phaseDetect = iota // auto mode, not decided yet: behaves as switch
	phaseSwitch
	phaseMerge
)

var phaseNames = [3]string{BackupAuto, BackupSwitch, BackupMerge}

// BackupStats is what a source flow's selector reports (FlowStats.Backup).
type BackupStats struct {
	// Mode is "merge" or "switch" once decided, "auto" while auto mode is
	// still comparing the legs; empty for a flow without backup.
	Mode string
	// Active is the leg whose packets readers get: "primary" or "backup",
	// or "both" in merge mode.
	Active string
	// Switches counts switches between the legs; LastSwitch is the time of
	// the last one and LastReason why it happened.
	Switches   uint64
	LastSwitch time.Time
	LastReason string
	// PrimaryPackets and BackupPackets are the RTP packets each leg
	// delivered (forwarded or not).
	PrimaryPackets, BackupPackets uint64
	// Lost counts, in merge mode, sequence numbers missing on both legs.
	Lost uint64
}

// ingest is one source feeding a selector leg through the pull.Handler
// method set.
type ingest interface {
	Start()
	Close()
}

// newIngest builds the ingest of one leg of a backed-up source. Every ingest
// kind drives h with the pull.Handler method set; a new kind (the rtp://
// receiver) plugs in here.
func (n *Local) newIngest(spec Flow, stream string, h pull.Handler) (ingest, error) {
	switch spec.Kind {
	case SourcePull:
		return pull.New(pull.Config{
			URL: spec.URL, Transport: spec.Transport, ReconnectMin: spec.ReconnectMin, ReconnectMax: spec.ReconnectMax,
			Logger: n.log.With("stream", stream),
		}, h), nil
	case SourceDemo:
		return n.newDemoIngest(stream, h)
	case SourceRTP:
		cfg, err := rtpSourceConfig(spec)
		if err != nil {
			return nil, err
		}
		cfg.Pool = n.pool
		cfg.Logger = n.log.With("stream", stream, "source", spec.URL)
		return &rtpIngest{cfg: cfg, h: h}, nil
	}
	return nil, fmt.Errorf("%s cannot feed a backed-up stream", spec.Kind)
}

// rtpIngest puts an rtp:// receiver behind a selector leg. The receiver binds its sockets and
// starts reading when it is made, so it is made in Start, once the selector is ready for its
// packets; a bind error then reaches the leg as a disconnect (the selector switches to the other
// leg) and the log.
type rtpIngest struct {
	cfg rtp.RTPSourceConfig
	h   pull.Handler

	mu     sync.Mutex
	src    *rtp.RTPSource
	closed bool
}

func (r *rtpIngest) Start() {
	src, err := rtp.NewRTPSource(r.cfg, r.h)
	if err != nil {
		r.cfg.Logger.Error("rtp source of a backed-up stream did not start", "err", err)
		r.h.OnDisconnect(err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		src.Close()
		return
	}
	r.src = src
}

func (r *rtpIngest) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.src != nil {
		r.src.Close()
	}
}

// validateBackup checks the backup fields of a flow (part of Validate).
func (f Flow) validateBackup() error {
	if f.Backup == nil {
		if f.BackupStall != 0 || f.BackupMode != "" {
			return fmt.Errorf("flow %s: backup stall or mode without a backup", f.ID)
		}
		return nil
	}
	switch f.Kind {
	case SourcePull, SourceDemo, SourceRTP:
	default:
		return fmt.Errorf("flow %s: %s takes no backup", f.ID, f.Kind)
	}
	switch f.BackupMode {
	case "", BackupAuto, BackupMerge, BackupSwitch:
	default:
		return fmt.Errorf("flow %s: backup mode %q, want auto, merge or switch", f.ID, f.BackupMode)
	}
	if f.BackupStall < 0 {
		return fmt.Errorf("flow %s: negative backup stall", f.ID)
	}
	b := *f.Backup
	if b.Backup != nil {
		return fmt.Errorf("flow %s: a backup has no backup of its own", f.ID)
	}
	switch b.Kind {
	case SourcePull, SourceDemo:
	default:
		return fmt.Errorf("flow %s: backup of kind %s; want %s or %s", f.ID, b.Kind, SourcePull, SourceDemo)
	}
	b.ID, b.Stream = f.ID+"/backup", f.Stream
	if err := b.Validate(); err != nil {
		return fmt.Errorf("flow %s: backup: %w", f.ID, err)
	}
	return nil
}

// selector stands between the two ingests of a backed-up source and the
// stream's hubs: both run hot, and the selector either forwards one of them
// (switch mode: the primary, and the backup while the primary stalls, each
// change at the new leg's keyframe) or merges both as 2022-7 legs (merge
// mode). The hubs keep the readers' SSRC/seq/timestamp line continuous
// across switches (a switch starts a new hub epoch).
//
// The packet path takes one uncontended per-track mutex (legs and tracks
// arrive on different goroutines, and a hub takes one writer at a time),
// reads a few atomics and allocates nothing.
type selector struct {
	n    *Local
	s    *nodeStream
	f    *flow
	log  *slog.Logger
	mode string

	stall, holdDown, keyWait int64 // monotonic ns

	legs    [2]selLeg
	ingests [2]ingest

	// state packs the switch generation, the phase and the active leg:
	// gen<<8 | phase<<4 | active. Every change goes through mu.
	state atomic.Uint64
	// pending is the leg a switch waits for a keyframe of (-1: none),
	// since when, and why.
	pending      atomic.Int32
	pendingSince atomic.Int64

	tracks atomic.Pointer[[]*selTrack]

	mu          sync.Mutex // serialises state changes; a leaf lock
	pendReason  string
	switches    uint64
	lastSwitch  time.Time
	lastReason  string
	refusedOnce [2]bool

	// merge mode: the driver goroutine ticks the mergers at their deadlines
	wake  chan struct{}
	armed atomic.Int64 // deadline the driver sleeps until (MaxInt64: none)
	done  chan struct{}
	wg    sync.WaitGroup
}

// selLeg is one ingest as the selector sees it. It implements pull.Handler.
type selLeg struct {
	sel *selector
	i   int
	// last is the monotonic time of the leg's latest packet (or when the
	// selector started, or just beyond stall ago when the leg
	// disconnected); runSince when it began delivering after a gap.
	last, runSince atomic.Int64
	up             atomic.Bool
	// mismatch: the leg's track layout is not the stream's; its packets
	// are dropped until it connects again.
	mismatch atomic.Bool
	codecs   atomic.Pointer[[]codec]
	pkts     atomic.Uint64
}

// selTrack is the selector's per-track state; mu guards all of it.
type selTrack struct {
	mu     sync.Mutex
	i      int
	pt     uint8 // the stream's payload type for the track
	key    bool  // switches wait for a keyframe on this track
	gen    uint64
	merger *merge.Merger
	// fence is the last sequence number forwarded directly before merge
	// mode began; merged copies up to it were already sent.
	fence   uint16
	fenceOn bool
	sent    bool   // a packet was forwarded: fence is valid
	scratch []byte // payload type rewrite

	// auto mode: recent (seq, ts) and the SSRC of each leg
	recent  [2][autoRing]seqTS
	ssrc    [2]uint32
	seen    [2]bool
	matches int
	tries   int
}

type seqTS struct {
	ok  bool
	seq uint16
	ts  uint32
}

func packState(gen uint64, phase, active int) uint64 {
	return gen<<8 | uint64(phase)<<4 | uint64(active)
}

func unpackState(v uint64) (gen uint64, phase, active int) {
	return v >> 8, int(v >> 4 & 0xf), int(v & 0xf)
}

// createBackupLocked builds the selector and both ingests of a source flow
// with a backup; the returned start runs them.
func (n *Local) createBackupLocked(fl *flow) (func(), error) {
	f := fl.spec
	sel := &selector{
		n: n, s: fl.stream, f: fl, log: n.log.With("stream", f.Stream, "flow", f.ID),
		mode:  f.BackupMode,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		stall: int64(f.BackupStall),
	}
	if sel.mode == "" {
		sel.mode = BackupAuto
	}
	if sel.stall <= 0 {
		sel.stall = int64(DefaultBackupStall)
	}
	sel.holdDown, sel.keyWait = holdDownFactor*sel.stall, int64(maxKeyWait)
	phase := phaseDetect
	switch sel.mode {
	case BackupSwitch:
		phase = phaseSwitch
	case BackupMerge:
		phase = phaseMerge
	}
	sel.state.Store(packState(0, phase, legPrimary))
	sel.pending.Store(-1)
	sel.armed.Store(math.MaxInt64)
	now := rtp.Now()
	for i := range sel.legs {
		l := &sel.legs[i]
		l.sel, l.i = sel, i
		l.last.Store(now)
		l.runSince.Store(now)
	}
	// the primary's stall clock starts so that it stalls startGrace from now
	sel.legs[legPrimary].last.Store(now + max(int64(startGrace)-sel.stall, 0))
	for i, spec := range []Flow{f, *f.Backup} {
		in, err := n.newIngest(spec, f.Stream, &sel.legs[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", legNames[i], err)
		}
		sel.ingests[i] = in
	}
	fl.sel = sel
	return sel.start, nil
}

func (sel *selector) start() {
	sel.startDriver()
	for _, in := range sel.ingests {
		in.Start()
	}
}

// startDriver starts the goroutine that ticks the mergers (not needed in
// switch mode); close ends it.
func (sel *selector) startDriver() {
	if sel.mode != BackupSwitch {
		sel.wg.Add(1)
		go sel.drive()
	}
}

// close stops both ingests (which may call back into the node: no lock
// held) and the merge driver.
func (sel *selector) close() {
	for _, in := range sel.ingests {
		in.Close()
	}
	close(sel.done)
	sel.wg.Wait()
	if tp := sel.tracks.Load(); tp != nil {
		for _, t := range *tp {
			t.mu.Lock()
			if t.merger != nil {
				t.merger.Close()
			}
			t.mu.Unlock()
		}
	}
}

// compatible reports whether a leg with tracks b can feed hubs laid out as
// a: same number of tracks, media kinds and clock rates (payload types are
// rewritten).
func compatible(a, b []rtp.Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Media != b[i].Media || a[i].ClockRate != b[i].ClockRate {
			return false
		}
	}
	return true
}

// codecsFor classifies the tracks of a leg from its description.
func codecsFor(sdp []byte, n int) []codec {
	names := rtsp.TrackCodecs(sdp)
	out := make([]codec, n)
	for i := range out {
		if i < len(names) {
			out[i] = codecOf(names[i])
		}
	}
	return out
}

// newTracksLocked lays the selector out for the stream's (new) tracks. The
// first H.264/H.265/MPEG-TS video track is the one whose keyframes time the
// switches; without one, switches happen at once.
func (sel *selector) newTracksLocked(tracks []rtp.Track, codecs []codec) {
	ts := make([]*selTrack, len(tracks))
	key := -1
	for i, t := range tracks {
		ts[i] = &selTrack{i: i, pt: t.PayloadType, scratch: make([]byte, 0, 1500)}
		if key < 0 && codecs[i] != codecOther && (t.Media == "video" || codecs[i] == codecMP2T) {
			key = i
		}
	}
	if key >= 0 {
		ts[key].key = true
	}
	if old := sel.tracks.Swap(&ts); old != nil {
		for _, t := range *old {
			t.mu.Lock()
			if t.merger != nil {
				t.merger.Close()
				t.merger = nil
			}
			t.mu.Unlock()
		}
	}
}

// OnReady implements pull.Handler for a leg.
func (l *selLeg) OnReady(sdp []byte, tracks []rtp.Track) error {
	sel, n, s := l.sel, l.sel.n, l.sel.s
	codecs := codecsFor(sdp, len(tracks))
	n.mu.Lock()
	if n.flows[sel.f.spec.ID] != sel.f {
		n.mu.Unlock()
		return errors.New("flow deleted")
	}
	var (
		report, replaced bool
		other            = &sel.legs[1-l.i]
	)
	switch {
	case s.hubs == nil || (l.i == legPrimary && !compatible(s.tracks, tracks)):
		// the first leg up lays the stream out; the primary's layout wins
		replaced = n.setHubsLocked(s, tracks, sel.f.spec.Pacing, nil)
		sel.newTracksLocked(tracks, codecs)
		report = true
		if other.up.Load() && !other.mismatch.Load() {
			// the other leg's layout was the old one
			other.mismatch.Store(true)
			sel.log.Warn("backup: the "+legNames[other.i]+"'s tracks no longer match the stream's; its packets are dropped until it reconnects",
				"stream_tracks", len(tracks))
		}
	case !compatible(s.tracks, tracks):
		sel.mu.Lock()
		first := !sel.refusedOnce[l.i]
		sel.refusedOnce[l.i] = true
		sel.mu.Unlock()
		n.mu.Unlock()
		err := fmt.Errorf("backup: the %s's tracks %v do not match the stream's %v (need the same number, media kinds and clock rates)",
			legNames[l.i], tracks, s.tracks)
		if first {
			sel.log.Error("backup: refusing a leg", "err", err)
		}
		return err
	default:
		report = l.i == legPrimary && sameLayout(s.tracks, tracks)
		sel.mu.Lock()
		gen, phase, active := unpackState(sel.state.Load())
		if active == l.i && phase != phaseMerge {
			// a new session of the active leg: a new hub epoch
			sel.state.Store(packState(gen+1, phase, active))
		}
		sel.mu.Unlock()
	}
	sel.mu.Lock()
	sel.refusedOnce[l.i] = false // the next refusal is news again
	sel.mu.Unlock()
	l.codecs.Store(&codecs)
	l.mismatch.Store(false)
	l.up.Store(true)
	n.mu.Unlock()
	sel.f.last.Store(time.Now().UnixNano())
	if report && n.events != nil {
		n.events.SourceReady(s.id, sdp, tracks, replaced)
	}
	return nil
}

// OnDisconnect implements pull.Handler for a leg.
func (l *selLeg) OnDisconnect(err error) {
	sel := l.sel
	l.up.Store(false)
	l.last.Store(rtp.Now() - sel.stall - 1) // a disconnect is a stall at once
	if errors.Is(err, pull.ErrClosed) {
		return
	}
	other := &sel.legs[1-l.i]
	if other.up.Load() {
		sel.log.Warn("backup: "+legNames[l.i]+" disconnected; the "+legNames[other.i]+" carries the stream", "err", err)
		return
	}
	if n := sel.n; n.events != nil {
		n.events.SourceDown(sel.s.id, fmt.Errorf("%s and %s down: %w", legNames[l.i], legNames[other.i], err))
	}
}

// WriteRTCP implements pull.Handler for a leg: the active leg's reports
// (both legs' in merge mode, which describe one stream) reach the hubs.
func (l *selLeg) WriteRTCP(track int, pkt []byte) {
	sel := l.sel
	if _, phase, active := unpackState(sel.state.Load()); phase != phaseMerge && active != l.i {
		return
	}
	tp := sel.tracks.Load()
	if tp == nil || track < 0 || track >= len(*tp) {
		return
	}
	t := (*tp)[track]
	t.mu.Lock()
	if hub := sel.s.liveHub(track); hub != nil {
		_ = hub.WriteRTCP(pkt)
	}
	t.mu.Unlock()
}

// WriteRTP implements pull.Handler for a leg: the selector's packet path.
func (l *selLeg) WriteRTP(track int, pkt []byte) {
	sel := l.sel
	if l.mismatch.Load() || len(pkt) < 12 {
		return
	}
	now := rtp.Now()
	l.pkts.Add(1)
	if prev := l.last.Swap(now); now-prev > sel.stall {
		l.runSince.Store(now)
	}
	tp := sel.tracks.Load()
	if tp == nil || track < 0 || track >= len(*tp) {
		return
	}
	t := (*tp)[track]
	t.mu.Lock()
	defer t.mu.Unlock()
	st := sel.state.Load()
	gen, phase, active := unpackState(st)
	if phase == phaseDetect && (t.key || t.i == 0) {
		phase = sel.detect(t, l.i, pkt)
	}
	if phase == phaseMerge {
		sel.merge(t, l.i, pkt, now)
		return
	}
	if t.key || !sel.hasKey(tp) {
		if target := sel.consider(active, now); target == l.i &&
			(isKeyStart(l.codec(track), pkt) || now-sel.pendingSince.Load() > sel.keyWait) {
			gen, active = sel.commit(l.i, now)
		}
	}
	if l.i != active {
		return
	}
	if t.gen != gen {
		// the first packet of a new leg or session begins a hub epoch
		if hub := sel.s.liveHub(track); hub != nil {
			hub.SourceRestarted()
		}
		t.gen = gen
	}
	sel.forward(t, pkt)
}

// codec returns the leg's codec of a track.
func (l *selLeg) codec(track int) codec {
	if cp := l.codecs.Load(); cp != nil && track < len(*cp) {
		return (*cp)[track]
	}
	return codecOther
}

func (sel *selector) hasKey(tp *[]*selTrack) bool {
	for _, t := range *tp {
		if t.key {
			return true
		}
	}
	return false
}

// forward writes one packet into the track's hub with the stream's payload
// type; t.mu is held.
func (sel *selector) forward(t *selTrack, pkt []byte) {
	hub := sel.s.liveHub(t.i)
	if hub == nil {
		return
	}
	if pkt[1]&0x7f != t.pt {
		t.scratch = append(t.scratch[:0], pkt...)
		t.scratch[1] = pkt[1]&0x80 | t.pt
		pkt = t.scratch
	}
	t.fence, t.sent = uint16(pkt[2])<<8|uint16(pkt[3]), true
	sel.f.pkts.Add(1)
	_ = hub.WriteRTP(pkt) // invalid packets are counted by the hub
}

// consider decides, on a packet at now while active carries the stream,
// whether the stream should move to the other leg, and returns the leg a
// switch waits for a keyframe of (-1: none). It only reads atomics unless
// the answer changes.
func (sel *selector) consider(active int, now int64) int {
	p, b := &sel.legs[legPrimary], &sel.legs[legBackup]
	want := -1
	pAge := now - p.last.Load()
	if active == legPrimary {
		if pAge > sel.stall {
			want = legBackup
		}
	} else if pAge <= sel.stall && (now-p.runSince.Load() >= sel.holdDown || now-b.last.Load() > sel.stall) {
		want = legPrimary
	}
	if pending := int(sel.pending.Load()); want == pending {
		return want
	}
	var reason string
	switch {
	case want == legBackup && !p.up.Load():
		reason = "primary disconnected (or not connected yet)"
	case want == legBackup:
		reason = fmt.Sprintf("primary delivered nothing for %v", time.Duration(pAge).Round(time.Millisecond))
	case want == legPrimary && now-b.last.Load() > sel.stall:
		reason = "backup stalled while the primary delivers"
	case want == legPrimary:
		reason = fmt.Sprintf("primary delivering again for %v", time.Duration(now-p.runSince.Load()).Round(time.Millisecond))
	}
	sel.mu.Lock()
	sel.pending.Store(int32(want))
	sel.pendingSince.Store(now)
	sel.pendReason = reason
	sel.mu.Unlock()
	return want
}

// commit makes leg the active one at now, returning the new generation and
// active leg.
func (sel *selector) commit(leg int, now int64) (uint64, int) {
	sel.mu.Lock()
	gen, phase, active := unpackState(sel.state.Load())
	if active == leg {
		sel.mu.Unlock()
		return gen, active
	}
	gen++
	sel.state.Store(packState(gen, phase, leg))
	waited := time.Duration(now - sel.pendingSince.Load())
	sel.pending.Store(-1)
	sel.switches++
	sel.lastSwitch = time.Now()
	sel.lastReason = sel.pendReason
	reason, n := sel.lastReason, sel.switches
	sel.mu.Unlock()
	sel.log.Info("backup: switched", "to", legNames[leg], "reason", reason,
		"waited_for_keyframe", waited.Round(time.Millisecond), "switches", n)
	return gen, leg
}

// detect compares the legs in auto mode (t.mu held) and returns the phase.
// Two copies of one stream share the SSRC and carry each sequence number
// with the same timestamp; anything else is two streams.
func (sel *selector) detect(t *selTrack, leg int, pkt []byte) int {
	ssrc := uint32(pkt[8])<<24 | uint32(pkt[9])<<16 | uint32(pkt[10])<<8 | uint32(pkt[11])
	seq := uint16(pkt[2])<<8 | uint16(pkt[3])
	ts := uint32(pkt[4])<<24 | uint32(pkt[5])<<16 | uint32(pkt[6])<<8 | uint32(pkt[7])
	if !t.seen[leg] || t.ssrc[leg] != ssrc {
		t.seen[leg], t.ssrc[leg] = true, ssrc
		t.recent[leg] = [autoRing]seqTS{}
		t.matches = 0
	}
	t.recent[leg][seq%autoRing] = seqTS{ok: true, seq: seq, ts: ts}
	o := 1 - leg
	if !t.seen[o] {
		return phaseDetect
	}
	if t.ssrc[o] != ssrc {
		return sel.decide(phaseSwitch, fmt.Sprintf("the legs' SSRCs differ (%08x, %08x)", t.ssrc[legPrimary], t.ssrc[legBackup]))
	}
	if twin := t.recent[o][seq%autoRing]; twin.ok && twin.seq == seq {
		if twin.ts != ts {
			return sel.decide(phaseSwitch, fmt.Sprintf("packet %d has timestamp %d on one leg and %d on the other", seq, twin.ts, ts))
		}
		if t.matches++; t.matches >= autoMatches {
			return sel.decide(phaseMerge, fmt.Sprintf("%d packets identical on both legs (SSRC %08x)", t.matches, ssrc))
		}
		return phaseDetect
	}
	if leg == legBackup {
		if t.tries++; t.tries >= autoGiveUp {
			return sel.decide(phaseSwitch, fmt.Sprintf("no packet of %d on the backup met its twin on the primary", t.tries))
		}
	}
	return phaseDetect
}

// decide ends auto detection.
func (sel *selector) decide(phase int, why string) int {
	sel.mu.Lock()
	gen, cur, active := unpackState(sel.state.Load())
	if cur == phaseDetect {
		sel.state.Store(packState(gen, phase, active))
	}
	sel.mu.Unlock()
	if cur == phaseDetect {
		sel.log.Info("backup: auto mode decided", "mode", phaseNames[phase], "why", why)
		return phase
	}
	return cur
}

// merge pushes a packet of leg into the track's 2022-7 merger (t.mu held).
func (sel *selector) merge(t *selTrack, leg int, pkt []byte, now int64) {
	if t.merger == nil {
		t.merger = merge.New(merge.Config{
			Skew: mergeSkew, Legs: 2, Logger: sel.log,
			Out: func(b []byte) { sel.merged(t, b) },
		})
		t.fenceOn = t.sent
	}
	t.merger.Push(leg, pkt, now)
	if at, ok := t.merger.NextDeadline(); ok && at < sel.armed.Load() {
		select {
		case sel.wake <- struct{}{}:
		default:
		}
	}
}

// merged takes the merger's output (t.mu held: Push and Tick run under it).
func (sel *selector) merged(t *selTrack, b []byte) {
	if t.fenceOn {
		// a copy just behind the fence was forwarded directly before merging
		// began; one far behind is a restarted sender, not a copy
		if d := int16(uint16(b[2])<<8 | uint16(b[3]) - t.fence); d <= 0 && d > -maxFenceBehind {
			return
		}
		t.fenceOn = false
	}
	sel.forward(t, b)
}

// drive ticks the mergers at their deadlines until close.
func (sel *selector) drive() {
	defer sel.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := int64(math.MaxInt64)
		if tp := sel.tracks.Load(); tp != nil {
			now := rtp.Now()
			for _, t := range *tp {
				t.mu.Lock()
				if t.merger != nil {
					t.merger.Tick(now)
					if at, ok := t.merger.NextDeadline(); ok && at < next {
						next = at
					}
				}
				t.mu.Unlock()
			}
		}
		sel.armed.Store(next)
		wait := time.Hour
		if next != math.MaxInt64 {
			wait = max(time.Duration(next-rtp.Now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-sel.done:
			return
		case <-sel.wake: // an earlier deadline; Reset above re-arms the timer
		case <-timer.C:
		}
	}
}

// stats reports the selector's state.
func (sel *selector) stats() BackupStats {
	_, phase, active := unpackState(sel.state.Load())
	sel.mu.Lock()
	st := BackupStats{
		Mode: phaseNames[phase], Active: legNames[active],
		Switches: sel.switches, LastSwitch: sel.lastSwitch, LastReason: sel.lastReason,
	}
	sel.mu.Unlock()
	st.PrimaryPackets, st.BackupPackets = sel.legs[legPrimary].pkts.Load(), sel.legs[legBackup].pkts.Load()
	if phase == phaseMerge {
		st.Active = "both"
		if tp := sel.tracks.Load(); tp != nil {
			for _, t := range *tp {
				t.mu.Lock()
				if t.merger != nil {
					st.Lost += t.merger.Stats().Lost
				}
				t.mu.Unlock()
			}
		}
	}
	return st
}

// demoIngest plays the demo clip into a leg, announcing it as a session.
type demoIngest struct {
	h      pull.Handler
	clip   *demo.Clip
	player *demo.Player
	log    *slog.Logger
}

func (n *Local) newDemoIngest(stream string, h pull.Handler) (ingest, error) {
	clip, err := n.demoClip()
	if err != nil {
		return nil, fmt.Errorf("demo clip: %w", err)
	}
	log := n.log.With("stream", stream)
	return &demoIngest{h: h, clip: clip, player: demo.NewPlayer(clip, demoWriter{h}, log), log: log}, nil
}

func (d *demoIngest) Start() {
	if err := d.h.OnReady(d.clip.SDP(), d.clip.Tracks()); err != nil {
		d.log.Warn("demo source refused", "err", err)
		return
	}
	d.player.Start()
}

func (d *demoIngest) Close() { d.player.Close() }

// demoWriter hands the demo player's packets to a handler.
type demoWriter struct{ h pull.Handler }

func (w demoWriter) WriteRTP(track int, pkt []byte) error {
	w.h.WriteRTP(track, pkt)
	return nil
}
