package merge

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Receiver classes of SMPTE ST 2022-7 by the path differential delay (skew)
// between legs they tolerate. They are the usual values of Config.Skew.
const (
	ClassA = 10 * time.Millisecond  // low skew
	ClassB = 50 * time.Millisecond  // moderate skew
	ClassC = 450 * time.Millisecond // high skew
)

// MaxLegs is the largest Config.Legs: ST 2022-7 uses two legs,
// a few deployments more.
const MaxLegs = 4

// DefaultWindow is the default Config.Window: at ClassC it covers
// about 9000 packets/s (some 95 Mbit/s of 1316-byte payloads), at ClassB
// eight times that.
const DefaultWindow = 4096

// maxDropout is how far (in sequence numbers) a packet may lie from the
// merged stream and still belong to it (RFC 3550 A.1 MAX_DROPOUT, as rtp's
// hubs use it).
const maxDropout = 3000

const (
	minWindow = 64
	// maxWindow keeps every sequence number the merger remembers
	// within half the 16-bit space of each other, so the 16-bit numbers
	// extend without ambiguity.
	maxWindow = 16384
)

// Config configures a Merger.
type Config struct {
	// Skew is how long a packet may wait for its missing predecessors, which
	// is the path differential delay (plus jitter) the merger tolerates:
	// ClassA, ClassB or ClassC. 0 means ClassB.
	Skew time.Duration
	// Legs is the number of paths, 2 for ST 2022-7 (1..MaxLegs);
	// 0 means 2. Leg numbers passed to Push are 0..Legs-1.
	Legs int
	// Out receives the merged packets in sequence order. The buffer is
	// valid only during the call. Out runs under the merger's lock, on the
	// goroutine that called Push or Tick: it must not block and must not
	// call the Merger.
	Out func(pkt []byte)
	// Refill, when set, receives packets that arrive behind the merged
	// output and are not known copies of packets already output: numbers
	// given up as lost on every leg (a retransmission answering a NACK sent
	// downstream of the merger, or a copy slower than Skew), and numbers
	// too old to be remembered but within Window of the newest. A given-up
	// number counts as output once refilled, so its later copies are
	// duplicates; an unremembered one may repeat what was output, so the
	// receiver must drop sequence numbers it already has (a NACK repairer
	// does). Without Refill such packets are dropped. It runs like Out.
	Refill func(pkt []byte)
	// Logger gets stream resets and window overruns; nil means slog.Default().
	Logger *slog.Logger
	// Window is how many sequence numbers the merger keeps, buffered ahead
	// of the output and remembered behind it (default DefaultWindow,
	// rounded up to a power of two, 64..16384). It must exceed the packets
	// one Skew holds at the stream's rate; when it does not, packets are
	// released before their time and Stats.Overruns counts them.
	Window int
}

// LegStats are the counters of one leg. Every packet pushed on the leg is
// counted in Received and in exactly one of Invalid, First, Duplicates,
// Late and Diverged. Lost is about sequence numbers, not packets.
type LegStats struct {
	Received uint64 // packets pushed on this leg
	Invalid  uint64 // not RTP: dropped
	First    uint64 // first copy of their sequence number: output (unless Close comes first)
	// Duplicates are copies of a sequence number that an earlier copy
	// (normally the other leg's) already brought, arriving within Skew of
	// that first copy: the leg is healthy and within the skew budget.
	Duplicates uint64
	// Late copies arrived more than Skew after the first copy of their
	// sequence number, or after it had been given up as lost: this leg
	// lags the others by more than the skew budget, so it protects nothing.
	Late uint64
	// Lost counts sequence numbers this leg never delivered while another
	// leg did: the path loss the merged stream hides, so the health signal
	// of the path. A number is counted once no copy can turn up any more:
	// 2×Skew after its first copy arrived (counted on the next Push or
	// Tick), or earlier when the window is full. Numbers settle in sequence
	// order, and a number given up (no copy on any leg) is itself kept for
	// another Skew, so one late give-up holds back the counting of every
	// number after it until a Push or Tick Skew later.
	Lost uint64
	// Diverged packets belong to another SSRC, or lie more than 3000
	// sequence numbers from the merged stream, and the other active legs
	// have not (yet) moved there too. If they do, the merger resets to the
	// new stream and the earliest such packet of each leg is merged after
	// all.
	Diverged uint64
}

// Add adds o's counters to l (summing tracks or mergers).
func (l *LegStats) Add(o LegStats) {
	l.Received += o.Received
	l.Invalid += o.Invalid
	l.First += o.First
	l.Duplicates += o.Duplicates
	l.Late += o.Late
	l.Lost += o.Lost
	l.Diverged += o.Diverged
}

// Add adds o's counters to s, leg by leg (s grows to o's legs).
func (s *Stats) Add(o Stats) {
	for len(s.Legs) < len(o.Legs) {
		s.Legs = append(s.Legs, LegStats{})
	}
	for i, l := range o.Legs {
		s.Legs[i].Add(l)
	}
	s.Output += o.Output
	s.Lost += o.Lost
	s.Resets += o.Resets
	s.Overruns += o.Overruns
	s.Refilled += o.Refilled
}

// Stats are a merger's counters since it was created.
type Stats struct {
	Legs   []LegStats // one per leg
	Output uint64     // packets given to Out
	// Lost counts sequence numbers missing on all legs: given up when a
	// later packet had waited Skew, or when the stream reset.
	Lost uint64
	// Resets counts streams followed after the first (sender restarts:
	// a new SSRC, or a sequence jump beyond 3000, on every active leg).
	Resets uint64
	// Overruns counts sequence numbers released (output, or given up)
	// before their time because the window was full.
	Overruns uint64
	// Refilled counts packets given to Config.Refill (counted as
	// Late on their leg).
	Refilled uint64
}

// Slot states. A slot at or after head is waiting or held; one before head
// is out or lost.
const (
	slotWaiting uint8 = iota // no copy yet, not given up
	slotHeld                 // first copy buffered, not output yet
	slotOut                  // output
	slotLost                 // given up: no copy in time
)

type mergeSlot struct {
	pkt *buffer
	// at is the first copy's arrival (monotonic ns); copies arriving after
	// at+skew are late. A lost slot gets at = give-up time - skew, so the
	// same test makes every copy after the give-up late.
	at    int64
	seen  uint8 // bit i: leg i delivered a copy
	state uint8
}

// legMove is a leg's evidence that the sender moved to another SSRC or
// sequence range.
type legMove struct {
	on   bool
	ssrc uint32
	seq  uint16 // highest sequence number of the move
	n    int    // packets consistent with the move
	held *buffer
	hSeq uint16 // held's sequence number: the earliest of the move
}

type mergeLeg struct {
	st     LegStats
	lastAt int64 // latest valid packet (monotonic ns)
	alive  bool  // has delivered a valid packet
	mv     legMove
}

// Merger is an SMPTE ST 2022-7 live-live receiver: it merges two (up to
// MaxLegs) copies of one RTP stream, sent over separate paths with
// identical sequence numbers, into one stream in which a packet is missing
// only when it was lost on every leg.
//
// Packets are aligned by extended sequence number (RFC 3550 A.1 style:
// wrap-around, reordering up to the window) in a ring of pooled buffers. A
// packet is output at once when it is the next one expected; otherwise it
// waits until it has been waiting Skew since its first copy arrived, and
// then the missing ones before it are given up as lost on all legs. The
// first copy of each sequence number is output, later copies are dropped
// and counted, so within one stream output is strictly increasing and
// never repeats. At the start of a stream the merger holds its first
// packets for Skew, so a packet that the slower leg brings first is not
// lost.
//
// The merger follows a restarted sender: when every active leg (one that
// delivered a packet within Skew) has moved to a new SSRC, or jumped more
// than 3000 sequence numbers, consistently and with at least two packets
// of evidence, it flushes the old stream and starts over. Until the last
// active leg has moved, the leading legs' packets of the new stream are
// counted as Diverged and only the earliest of each leg is kept, so for
// that moment (the path differential) the new stream has the lagging leg
// alone to protect it.
//
// Timing contract: the Merger owns no goroutine and reads no clock. Push and
// Tick take the time (monotonic ns, normally rtp.Now()) and release whatever is
// due at that time. When packets are waiting for missing predecessors,
// NextDeadline reports the time at which one becomes due; unless a Push
// comes first, the owner must call Tick at (or soon after) that time,
// since nothing else will release them. A driver is a timer reset after
// every Push and Tick:
//
//	if at, ok := m.NextDeadline(); ok {
//		timer.Reset(time.Duration(at - rtp.Now()))
//	}
//	// on the timer: m.Tick(rtp.Now())
//
// Push, Tick, NextDeadline, Stats and Close are safe for concurrent use
// (legs usually arrive on different goroutines); one short mutex
// serialises them, and Out runs under it. Nothing is allocated per valid
// packet: the copies that wait come from the merger's own buffers (see
// buffers), recycled as they leave.
//
// Timed is a Merger with the timer that drives it.
//
// The sending side of ST 2022-7 needs no counterpart here: two UDP sinks on
// one hub already send the same bytes, rewritten once, to both paths.
type Merger struct {
	mu     sync.Mutex
	skew   int64
	nlegs  int
	out    func([]byte)
	refill func([]byte)
	bufs   buffers
	log    *slog.Logger

	ring []mergeSlot // indexed by extended seq & mask
	mask int64
	// fifo holds the extended seqs of first copies in arrival order, so the
	// earliest deadline is at its front (entries already released are
	// skipped lazily).
	fifo             []int64
	fifoHead, fifoN  int
	fifoMask         int
	started, holding bool // an epoch runs; it has output nothing yet
	closed           bool
	warnedOverrun    bool
	ssrc             uint32
	// Extended seqs: [tail, head) are output or given up and remembered for
	// the per-leg counters; [head, max] wait; max-tail < len(ring).
	tail, head, max int64

	legs                                     [MaxLegs]mergeLeg
	output, lost, resets, overruns, refilled uint64
}

// New returns a merger. It panics when cfg.Out is nil or cfg.Legs is out of
// range, which are programming errors.
func New(cfg Config) *Merger {
	if cfg.Out == nil {
		panic("merge: New: Out is nil")
	}
	if cfg.Legs == 0 {
		cfg.Legs = 2
	}
	if cfg.Legs < 1 || cfg.Legs > MaxLegs {
		panic(fmt.Sprintf("merge: New: %d legs, want 1..%d", cfg.Legs, MaxLegs))
	}
	if cfg.Skew <= 0 {
		cfg.Skew = ClassB
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	n := minWindow
	for n < cfg.Window && n < maxWindow {
		n *= 2
	}
	m := &Merger{
		skew:   int64(cfg.Skew),
		nlegs:  cfg.Legs,
		out:    cfg.Out,
		refill: cfg.Refill,
		log:    cfg.Logger,
		ring:   make([]mergeSlot, n),
		mask:   int64(n - 1),
		// Pending first copies lie within a window of the oldest one, on
		// either side of it: 2n entries cannot overflow.
		fifo:     make([]int64, 2*n),
		fifoMask: 2*n - 1,
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("legs", cfg.Legs, "skew", cfg.Skew)
	return m
}

// Push hands the merger one packet received on leg (0..Legs-1) at now
// (monotonic ns, normally rtp.Now()). pkt is copied if it is needed; the caller keeps
// it. Push releases what is due at now, calling Out. After Close it does
// nothing. It panics on a leg out of range.
func (m *Merger) Push(leg int, pkt []byte, now int64) {
	if leg < 0 || leg >= m.nlegs {
		panic(fmt.Sprintf("merge: Merger.Push: leg %d of %d", leg, m.nlegs))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	l := &m.legs[leg]
	l.st.Received++
	if !validRTP(pkt) {
		l.st.Invalid++
		m.release(now)
		return
	}
	l.lastAt, l.alive = now, true
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	if !m.started {
		m.begin(ssrc, seq)
	}
	if ssrc == m.ssrc {
		if d := int64(int16(seq - uint16(m.max))); d <= maxDropout && d >= -maxDropout {
			m.dropMove(leg)
			m.accept(leg, pkt, m.max+d, now, true)
			m.release(now)
			return
		}
	}
	m.diverge(leg, pkt, seq, ssrc, now)
	m.release(now)
}

// Known reports whether pkt is a copy of a sequence number of the current
// stream that the merger already holds or has output, and then counts it
// on leg exactly as Push would have (as a duplicate or a late copy). A
// caller uses it to skip work on copies Push would drop anyway (an SRTP
// check and decryption per leg); when it returns false, the caller Pushes
// the packet. After Close it returns false.
func (m *Merger) Known(leg int, pkt []byte, now int64) bool {
	if leg < 0 || leg >= m.nlegs {
		panic(fmt.Sprintf("merge: Merger.Known: leg %d of %d", leg, m.nlegs))
	}
	if len(pkt) < 12 {
		return false
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !m.started || ssrc != m.ssrc {
		return false
	}
	ext := m.max + int64(int16(seq-uint16(m.max)))
	if ext < m.tail || ext > m.max {
		return false
	}
	s := &m.ring[ext&m.mask]
	if s.state != slotHeld && s.state != slotOut {
		return false
	}
	l := &m.legs[leg]
	l.st.Received++
	l.lastAt, l.alive = now, true
	m.dropMove(leg)
	if now-s.at > m.skew {
		l.st.Late++
	} else {
		l.st.Duplicates++
	}
	s.seen |= 1 << leg
	m.release(now)
	return true
}

// Tick releases what is due at now (see NextDeadline) and settles the
// per-leg loss counters of sequence numbers old enough.
func (m *Merger) Tick(now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.release(now)
	}
}

// NextDeadline returns when the earliest waiting packet becomes due
// (monotonic ns). ok is false when no packet waits: then only a Push can
// make one wait, and Tick need not be called.
func (m *Merger) NextDeadline() (at int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, false
	}
	m.fifoPrune()
	if m.fifoN == 0 {
		return 0, false
	}
	return m.ring[m.fifo[m.fifoHead]&m.mask].at + m.skew, true
}

// Stats returns the merger's counters.
func (m *Merger) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{
		Legs:     make([]LegStats, m.nlegs),
		Output:   m.output,
		Lost:     m.lost,
		Resets:   m.resets,
		Overruns: m.overruns,
		Refilled: m.refilled,
	}
	for i := range s.Legs {
		s.Legs[i] = m.legs[i].st
	}
	return s
}

// Close drops the packets still waiting without outputting them; later
// calls do nothing. It is idempotent.
func (m *Merger) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	if m.started {
		for e := m.head; e <= m.max; e++ {
			if s := &m.ring[e&m.mask]; s.pkt != nil {
				m.bufs.put(s.pkt)
				s.pkt = nil
			}
		}
	}
	for i := range m.legs {
		m.dropMove(i)
	}
}

// begin starts an epoch whose first sequence number is seq. Extended seqs of
// a new epoch lie above all of the previous one, so they never meet in the
// ring.
func (m *Merger) begin(ssrc uint32, seq uint16) {
	base := (m.max &^ 0xffff) + 1<<17 + int64(seq)
	m.ssrc = ssrc
	m.tail, m.head, m.max = base, base, base-1
	m.started, m.holding, m.warnedOverrun = true, true, false
	m.fifoHead, m.fifoN = 0, 0
}

// accept places one packet of the current stream. count is false for
// packets replayed at a reset, which were counted when they arrived.
func (m *Merger) accept(leg int, b []byte, ext, now int64, count bool) {
	st := &m.legs[leg].st
	if ext < m.tail {
		if !m.holding || m.max-ext >= int64(len(m.ring)) {
			if count {
				st.Late++
				if m.refill != nil && m.max-ext < int64(len(m.ring)) {
					m.refill(b)
					m.refilled++
				}
			}
			return
		}
		// Still holding the start of the stream: a copy from before the
		// earliest one so far moves the start back.
		for m.tail > ext {
			m.tail--
			m.ring[m.tail&m.mask] = mergeSlot{}
		}
		m.head = m.tail
	}
	if ext > m.max {
		m.grow(ext, now)
	}
	s := &m.ring[ext&m.mask]
	if s.state == slotWaiting {
		p := m.bufs.get(b)
		s.pkt, s.at, s.state = p, now, slotHeld
		s.seen |= 1 << leg
		m.fifoPush(ext)
		if count {
			st.First++
		}
		return
	}
	if s.state == slotLost && m.refill != nil && count {
		m.refill(b)
		s.state = slotOut
		m.refilled++
	}
	if count {
		if now-s.at > m.skew {
			st.Late++
		} else {
			st.Duplicates++
		}
	}
	s.seen |= 1 << leg
}

// grow extends the window to ext, making room by settling the oldest
// remembered seqs and, when the window is full of waiting ones, by
// releasing them before their time.
func (m *Merger) grow(ext, now int64) {
	n := int64(len(m.ring))
	for ext-m.tail >= n {
		if m.tail == m.head {
			if !m.warnedOverrun {
				m.warnedOverrun = true
				m.log.Warn("rtp: merger window too small for the skew at this packet rate; packets leave early",
					"window", n)
			}
			m.overruns++
			m.holding = false
			m.releaseHead(now)
		}
		m.settleTail()
	}
	for m.max < ext {
		m.max++
		m.ring[m.max&m.mask] = mergeSlot{}
	}
}

// release outputs what is due at now and settles old seqs.
func (m *Merger) release(now int64) {
	if !m.started {
		return
	}
	for {
		m.fifoPrune()
		if m.holding {
			if m.fifoN == 0 || m.ring[m.fifo[m.fifoHead]&m.mask].at+m.skew > now {
				break
			}
			m.holding = false
		}
		for m.head <= m.max && m.ring[m.head&m.mask].state == slotHeld {
			m.releaseHead(now)
		}
		m.fifoPrune()
		if m.fifoN == 0 {
			break
		}
		front := m.fifo[m.fifoHead]
		if m.ring[front&m.mask].at+m.skew > now {
			break
		}
		// front is held and head is not, so front > head: give up the
		// gap (and output what is held in it) up to front.
		for m.head < front {
			m.releaseHead(now)
		}
	}
	for m.tail < m.head && m.ring[m.tail&m.mask].at+2*m.skew < now {
		m.settleTail()
	}
}

// releaseHead outputs the head seq, or gives it up when no copy came.
func (m *Merger) releaseHead(now int64) {
	s := &m.ring[m.head&m.mask]
	if s.state == slotHeld {
		m.out(s.pkt.b)
		m.bufs.put(s.pkt)
		s.pkt = nil
		s.state = slotOut
		m.output++
	} else {
		s.state = slotLost
		s.at = now - m.skew
		m.lost++
	}
	m.head++
}

// settleTail forgets the oldest remembered seq, counting it as lost on the
// legs that never brought it while another did. Requires tail < head.
func (m *Merger) settleTail() {
	s := &m.ring[m.tail&m.mask]
	if s.seen != 0 {
		for i := range m.nlegs {
			if s.seen&(1<<i) == 0 {
				m.legs[i].st.Lost++
			}
		}
	}
	*s = mergeSlot{}
	m.tail++
}

func (m *Merger) fifoPush(ext int64) {
	if m.fifoN == len(m.fifo) { // cannot happen (see New); stay safe
		m.fifoHead = (m.fifoHead + 1) & m.fifoMask
		m.fifoN--
	}
	m.fifo[(m.fifoHead+m.fifoN)&m.fifoMask] = ext
	m.fifoN++
}

func (m *Merger) fifoPrune() {
	for m.fifoN > 0 && m.fifo[m.fifoHead] < m.head {
		m.fifoHead = (m.fifoHead + 1) & m.fifoMask
		m.fifoN--
	}
}

// seqDist is the distance between two sequence numbers on the circle.
func seqDist(a, b uint16) int {
	d := int(int16(a - b))
	if d < 0 {
		return -d
	}
	return d
}

// diverge handles a packet outside the current stream: evidence that the
// sender moved, which resets the merger once every active leg agrees.
func (m *Merger) diverge(leg int, b []byte, seq uint16, ssrc uint32, now int64) {
	mv := &m.legs[leg].mv
	if mv.on && mv.ssrc == ssrc && seqDist(seq, mv.seq) <= maxDropout {
		if seq != mv.seq {
			mv.n++
		}
		if int16(seq-mv.seq) > 0 {
			mv.seq = seq
		}
	} else {
		m.dropMove(leg)
		*mv = legMove{on: true, ssrc: ssrc, seq: seq, n: 1}
	}
	if m.confirmed(leg, now) {
		m.reset(leg, b, seq, now)
		return
	}
	m.legs[leg].st.Diverged++
	// Keep the earliest packet of the move: after a restart it is the
	// stream's first, which no other copy may bring.
	if mv.held == nil || int16(seq-mv.hSeq) < 0 {
		if mv.held != nil {
			m.bufs.put(mv.held)
		}
		mv.held, mv.hSeq = m.bufs.get(b), seq
	}
}

// confirmed reports whether every active leg moved along with leg's move,
// with at least two packets of evidence in all (one stray packet on a single
// leg must not reset the stream).
func (m *Merger) confirmed(leg int, now int64) bool {
	t := &m.legs[leg].mv
	n := 0
	for i := range m.nlegs {
		l := &m.legs[i]
		if !l.alive || now-l.lastAt > m.skew {
			continue
		}
		if !l.mv.on || l.mv.ssrc != t.ssrc || seqDist(l.mv.seq, t.seq) > maxDropout {
			return false
		}
		n += l.mv.n
	}
	return n >= 2
}

// reset ends the current stream (flushing what waits) and starts the one
// the legs moved to, with the packets the legs held back and b (seq) from
// leg.
func (m *Merger) reset(leg int, b []byte, seq uint16, now int64) {
	ssrc := m.legs[leg].mv.ssrc
	// Flush: output what is held, give up the gaps, settle every leg's
	// counters.
	m.holding = false
	for m.head <= m.max {
		m.releaseHead(now)
	}
	for m.tail < m.head {
		m.settleTail()
	}
	m.resets++
	m.log.Info("rtp: merger follows a new stream", "old_ssrc", m.ssrc, "ssrc", ssrc, "seq", seq)
	first := seq
	for i := range m.nlegs {
		mv := &m.legs[i].mv
		if mv.held != nil && mv.ssrc == ssrc && seqDist(mv.hSeq, seq) <= maxDropout && int16(mv.hSeq-first) < 0 {
			first = mv.hSeq
		}
	}
	m.begin(ssrc, first)
	for i := range m.nlegs {
		mv := &m.legs[i].mv
		if mv.held != nil && mv.ssrc == ssrc && seqDist(mv.hSeq, seq) <= maxDropout {
			m.accept(i, mv.held.b, m.max+int64(int16(mv.hSeq-uint16(m.max))), now, false)
		}
		m.dropMove(i)
	}
	m.accept(leg, b, m.max+int64(int16(seq-uint16(m.max))), now, true)
}

// dropMove forgets a leg's evidence of a move.
func (m *Merger) dropMove(leg int) {
	mv := &m.legs[leg].mv
	if mv.held != nil {
		m.bufs.put(mv.held)
	}
	*mv = legMove{}
}
