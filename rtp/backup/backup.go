package backup

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
	"github.com/meshgw/meshgw/rtp/merge"
)

// Modes of a Selector (Config.Mode); the config's names.
const (
	// Auto compares the legs and merges them when their packets prove to be
	// one stream, else switches.
	Auto = "auto"
	// Merge merges both legs as SMPTE 2022-7 legs.
	Merge = "merge"
	// Switch forwards the primary, and the backup while the primary stalls.
	Switch = "switch"
)

// DefaultStall is the stall time of a Selector whose Config.Stall is 0.
const DefaultStall = time.Second

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

// Legs of a Selector.
const (
	// LegPrimary is the main source.
	LegPrimary = 0
	// LegBackup is the backup source.
	LegBackup = 1
)

var legNames = [2]string{"primary", "backup"}

// LegName names a leg ("primary", "backup") for logs and errors.
func LegName(leg int) string { return legNames[leg] }

// Phases of a selector.
const (
	phaseDetect = iota // auto mode, not decided yet: behaves as switch
	phaseSwitch
	phaseMerge
)

var phaseNames = [3]string{Auto, Switch, Merge}

// Stats is what a Selector reports.
type Stats struct {
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

// Config configures a Selector.
type Config struct {
	// Mode is Auto, Merge or Switch; "" is Auto.
	Mode string
	// Stall is how long the primary may deliver nothing before the backup
	// takes over; 0 is DefaultStall.
	Stall time.Duration
	// Hubs are the stream's hubs by track, as published for the packet
	// path (which must not take the node's lock). Required.
	Hubs *atomic.Pointer[[]*rtp.Hub]
	// Forwarded counts the packets written into the hubs. Required.
	Forwarded *atomic.Uint64
	// Logger serves the selector's own lines and the merge mode's 2022-7
	// mergers. Required.
	Logger *slog.Logger
	// Ready is a leg's OnReady: the owner lays the stream out (SetTracks)
	// or accepts the leg into it (Leg.Ready), or refuses it. Required.
	Ready func(leg int, sdp []byte, tracks []rtp.Track) error
	// Down, when set, follows a leg's OnDisconnect, once the selector
	// treats the leg as stalled.
	Down func(leg int, err error)
}

// Selector stands between the two legs of a backed-up source and the
// stream's hubs: both run hot, and the selector either forwards one of them
// (switch mode: the primary, and the backup while the primary stalls, each
// change at the new leg's keyframe) or merges both as 2022-7 legs (merge
// mode). The hubs keep the readers' SSRC/seq/timestamp line continuous
// across switches (a switch starts a new hub epoch).
//
// The packet path takes one uncontended per-track mutex (legs and tracks
// arrive on different goroutines, and a hub takes one writer at a time),
// reads a few atomics and allocates nothing.
type Selector struct {
	cfg  Config // Mode and Stall as given; mode and stall are the ones in force
	mode string // Auto, Merge or Switch

	stall, holdDown, keyWait int64 // monotonic ns

	legs [2]Leg

	// state packs the switch generation, the phase and the active leg:
	// gen<<8 | phase<<4 | active. Every change goes through mu.
	state atomic.Uint64
	// pending is the leg a switch waits for a keyframe of (-1: none),
	// since when, and why.
	pending      atomic.Int32
	pendingSince atomic.Int64

	tracks atomic.Pointer[[]*track]

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

// Leg is one source as the selector sees it. It is an rtp.SourceHandler,
// the one interface every source drives: a source drives its leg.
type Leg struct {
	sel *Selector
	i   int
	// last is the monotonic time of the leg's latest packet (or when the
	// selector started, or just beyond stall ago when the leg
	// disconnected); runSince when it began delivering after a gap.
	last, runSince atomic.Int64
	up             atomic.Bool
	// mismatch: the leg's track layout is not the stream's; its packets
	// are dropped until it connects again.
	mismatch atomic.Bool
	codecs   atomic.Pointer[[]keyframe.Codec]
	pkts     atomic.Uint64
}

// track is the selector's per-track state; mu guards all of it.
type track struct {
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

// New builds a selector; Start runs its merge driver.
func New(cfg Config) *Selector {
	sel := &Selector{
		cfg:   cfg,
		mode:  cfg.Mode,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		stall: int64(cfg.Stall),
	}
	if sel.mode == "" {
		sel.mode = Auto
	}
	if sel.stall <= 0 {
		sel.stall = int64(DefaultStall)
	}
	sel.holdDown, sel.keyWait = holdDownFactor*sel.stall, int64(maxKeyWait)
	phase := phaseDetect
	switch sel.mode {
	case Switch:
		phase = phaseSwitch
	case Merge:
		phase = phaseMerge
	}
	sel.state.Store(packState(0, phase, LegPrimary))
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
	sel.legs[LegPrimary].last.Store(now + max(int64(startGrace)-sel.stall, 0))
	return sel
}

// Leg returns leg i (LegPrimary or LegBackup), the handler its source drives.
func (sel *Selector) Leg(i int) *Leg { return &sel.legs[i] }

// Start starts the goroutine that ticks the mergers (not needed in switch
// mode); Close ends it.
func (sel *Selector) Start() {
	if sel.mode != Switch {
		sel.wg.Add(1)
		go sel.drive()
	}
}

// Close stops the merge driver and the mergers. The legs' sources must be
// closed first: no packet may arrive after.
func (sel *Selector) Close() {
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

// Compatible reports whether a leg with tracks b can feed hubs laid out as
// a: same number of tracks, media kinds and clock rates (payload types are
// rewritten).
func Compatible(a, b []rtp.Track) bool {
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

// SetTracks lays the selector out for the stream's (new) tracks, whose
// codecs are codecs. The first H.264/H.265/MPEG-TS video track is the one
// whose keyframes time the switches; without one, switches happen at once.
// The owner calls it, serialised with its other layout changes, when it
// (re)creates the stream's hubs.
func (sel *Selector) SetTracks(tracks []rtp.Track, codecs []keyframe.Codec) {
	ts := make([]*track, len(tracks))
	key := -1
	for i, t := range tracks {
		ts[i] = &track{i: i, pt: t.PayloadType, scratch: make([]byte, 0, 1500)}
		if key < 0 && codecs[i] != keyframe.Other && (t.Media == "video" || codecs[i] == keyframe.MP2T) {
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

// NewSession tells the selector that leg began a new session on the
// stream's layout: if it is the active leg (and the legs are not merged),
// its next packet begins a new hub epoch.
func (sel *Selector) NewSession(leg int) {
	sel.mu.Lock()
	gen, phase, active := unpackState(sel.state.Load())
	if active == leg && phase != phaseMerge {
		sel.state.Store(packState(gen+1, phase, active))
	}
	sel.mu.Unlock()
}

// Refused records that leg was refused (its layout does not fit the
// stream's) and reports whether it is the first refusal since the leg was
// last accepted: only that one is news worth logging.
func (sel *Selector) Refused(leg int) (first bool) {
	sel.mu.Lock()
	first = !sel.refusedOnce[leg]
	sel.refusedOnce[leg] = true
	sel.mu.Unlock()
	return first
}

var _ rtp.SourceHandler = (*Leg)(nil)

// OnReady implements rtp.SourceHandler: Config.Ready decides.
func (l *Leg) OnReady(sdp []byte, tracks []rtp.Track) error {
	return l.sel.cfg.Ready(l.i, sdp, tracks)
}

// Ready accepts the leg into the stream with its tracks' codecs: its
// packets are forwarded (or merged) from now on.
func (l *Leg) Ready(codecs []keyframe.Codec) {
	sel := l.sel
	sel.mu.Lock()
	sel.refusedOnce[l.i] = false // the next refusal is news again
	sel.mu.Unlock()
	l.codecs.Store(&codecs)
	l.mismatch.Store(false)
	l.up.Store(true)
}

// Up reports whether the leg's source is connected and accepted.
func (l *Leg) Up() bool { return l.up.Load() }

// Mismatch marks a connected leg whose tracks no longer match the stream's
// (the primary laid the stream out anew): its packets are dropped until it
// is Ready again. It reports whether the leg was newly marked.
func (l *Leg) Mismatch() bool {
	if !l.up.Load() || l.mismatch.Load() {
		return false
	}
	l.mismatch.Store(true)
	return true
}

// OnDisconnect implements rtp.SourceHandler: the leg counts as stalled at once,
// then Config.Down runs.
func (l *Leg) OnDisconnect(err error) {
	sel := l.sel
	l.up.Store(false)
	l.last.Store(rtp.Now() - sel.stall - 1) // a disconnect is a stall at once
	if sel.cfg.Down != nil {
		sel.cfg.Down(l.i, err)
	}
}

// hub returns the stream's hub of a track, nil when there is none.
func (sel *Selector) hub(track int) *rtp.Hub {
	hp := sel.cfg.Hubs.Load()
	if hp == nil || track < 0 || track >= len(*hp) {
		return nil
	}
	return (*hp)[track]
}

// WriteRTCP implements rtp.SourceHandler: the active leg's reports (both legs'
// in merge mode, which describe one stream) reach the hubs.
func (l *Leg) WriteRTCP(track int, pkt []byte) {
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
	if hub := sel.hub(track); hub != nil {
		_ = hub.WriteRTCP(pkt)
	}
	t.mu.Unlock()
}

// WriteRTP implements rtp.SourceHandler: the selector's packet path.
func (l *Leg) WriteRTP(track int, pkt []byte) {
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
			(keyframe.IsStart(l.codec(track), pkt) || now-sel.pendingSince.Load() > sel.keyWait) {
			gen, active = sel.commit(l.i, now)
		}
	}
	if l.i != active {
		return
	}
	if t.gen != gen {
		// the first packet of a new leg or session begins a hub epoch
		if hub := sel.hub(track); hub != nil {
			hub.SourceRestarted()
		}
		t.gen = gen
	}
	sel.forward(t, pkt)
}

// codec returns the leg's codec of a track.
func (l *Leg) codec(track int) keyframe.Codec {
	if cp := l.codecs.Load(); cp != nil && track < len(*cp) {
		return (*cp)[track]
	}
	return keyframe.Other
}

func (sel *Selector) hasKey(tp *[]*track) bool {
	for _, t := range *tp {
		if t.key {
			return true
		}
	}
	return false
}

// forward writes one packet into the track's hub with the stream's payload
// type; t.mu is held.
func (sel *Selector) forward(t *track, pkt []byte) {
	hub := sel.hub(t.i)
	if hub == nil {
		return
	}
	if pkt[1]&0x7f != t.pt {
		t.scratch = append(t.scratch[:0], pkt...)
		t.scratch[1] = pkt[1]&0x80 | t.pt
		pkt = t.scratch
	}
	t.fence, t.sent = uint16(pkt[2])<<8|uint16(pkt[3]), true
	sel.cfg.Forwarded.Add(1)
	_ = hub.WriteRTP(pkt) // invalid packets are counted by the hub
}

// consider decides, on a packet at now while active carries the stream,
// whether the stream should move to the other leg, and returns the leg a
// switch waits for a keyframe of (-1: none). It only reads atomics unless
// the answer changes.
func (sel *Selector) consider(active int, now int64) int {
	p, b := &sel.legs[LegPrimary], &sel.legs[LegBackup]
	want := -1
	pAge := now - p.last.Load()
	if active == LegPrimary {
		if pAge > sel.stall {
			want = LegBackup
		}
	} else if pAge <= sel.stall && (now-p.runSince.Load() >= sel.holdDown || now-b.last.Load() > sel.stall) {
		want = LegPrimary
	}
	if pending := int(sel.pending.Load()); want == pending {
		return want
	}
	var reason string
	switch {
	case want == LegBackup && !p.up.Load():
		reason = "primary disconnected (or not connected yet)"
	case want == LegBackup:
		reason = fmt.Sprintf("primary delivered nothing for %v", time.Duration(pAge).Round(time.Millisecond))
	case want == LegPrimary && now-b.last.Load() > sel.stall:
		reason = "backup stalled while the primary delivers"
	case want == LegPrimary:
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
func (sel *Selector) commit(leg int, now int64) (uint64, int) {
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
	sel.cfg.Logger.Info("backup: switched", "to", legNames[leg], "reason", reason,
		"waited_for_keyframe", waited.Round(time.Millisecond), "switches", n)
	return gen, leg
}

// detect compares the legs in auto mode (t.mu held) and returns the phase.
// Two copies of one stream share the SSRC and carry each sequence number
// with the same timestamp; anything else is two streams.
func (sel *Selector) detect(t *track, leg int, pkt []byte) int {
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
		return sel.decide(phaseSwitch, fmt.Sprintf("the legs' SSRCs differ (%08x, %08x)", t.ssrc[LegPrimary], t.ssrc[LegBackup]))
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
	if leg == LegBackup {
		if t.tries++; t.tries >= autoGiveUp {
			return sel.decide(phaseSwitch, fmt.Sprintf("no packet of %d on the backup met its twin on the primary", t.tries))
		}
	}
	return phaseDetect
}

// decide ends auto detection.
func (sel *Selector) decide(phase int, why string) int {
	sel.mu.Lock()
	gen, cur, active := unpackState(sel.state.Load())
	if cur == phaseDetect {
		sel.state.Store(packState(gen, phase, active))
	}
	sel.mu.Unlock()
	if cur == phaseDetect {
		sel.cfg.Logger.Info("backup: auto mode decided", "mode", phaseNames[phase], "why", why)
		return phase
	}
	return cur
}

// merge pushes a packet of leg into the track's 2022-7 merger (t.mu held).
func (sel *Selector) merge(t *track, leg int, pkt []byte, now int64) {
	if t.merger == nil {
		t.merger = merge.New(merge.Config{
			Skew: mergeSkew, Legs: 2, Logger: sel.cfg.Logger,
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
func (sel *Selector) merged(t *track, b []byte) {
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

// drive ticks the mergers at their deadlines until Close.
func (sel *Selector) drive() {
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

// Stats reports the selector's state.
func (sel *Selector) Stats() Stats {
	_, phase, active := unpackState(sel.state.Load())
	sel.mu.Lock()
	st := Stats{
		Mode: phaseNames[phase], Active: legNames[active],
		Switches: sel.switches, LastSwitch: sel.lastSwitch, LastReason: sel.lastReason,
	}
	sel.mu.Unlock()
	st.PrimaryPackets, st.BackupPackets = sel.legs[LegPrimary].pkts.Load(), sel.legs[LegBackup].pkts.Load()
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
