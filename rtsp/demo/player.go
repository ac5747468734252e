package demo

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// maxLate is how far behind schedule the player may fall (a stopped
// process, a suspended VM) before it shifts its schedule instead of
// bursting the backlog into the network.
const maxLate = time.Second

// Player replays a Clip in real time, forever, as one continuous RTP stream
// per track: each loop continues the previous one's sequence numbers and
// timestamps, so receivers never see a discontinuity.
//
// It drives an rtp.SourceHandler like any other source: OnReady once with
// the clip's description and tracks at Start, the packets of Clip.Tracks in
// real time, and OnDisconnect (rtp.ErrClosed) at Close.
type Player struct {
	clip   *Clip
	w      rtp.SourceHandler
	logger *slog.Logger

	// clock hooks; tests replace them to run loops without real time.
	now  func() time.Time
	wait func(d time.Duration, done <-chan struct{}) bool

	startOnce sync.Once
	closeOnce sync.Once
	done      chan struct{}
	finished  chan struct{}
	started   bool
	mu        sync.Mutex

	// run state, owned by the run goroutine
	ssrc    []uint32
	seqOff  []uint16 // added to a packet's loop-relative seq
	tsOff   []uint32 // added to a packet's loop-relative ts
	next    int      // index into clip.pkts of the next packet
	loopAt  time.Duration
	scratch []byte
}

// NewPlayer prepares a Player for c that plays into w. SSRCs, initial sequence
// numbers and timestamps are random per Player (RFC 3550 §5.1), so two
// Players of one Clip are distinct streams. A nil logger discards logs.
func NewPlayer(c *Clip, w rtp.SourceHandler, logger *slog.Logger) *Player {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Player{
		clip:     c,
		w:        w,
		logger:   logger,
		now:      time.Now,
		wait:     timerWait(),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		ssrc:     make([]uint32, len(c.tracks)),
		seqOff:   make([]uint16, len(c.tracks)),
		tsOff:    make([]uint32, len(c.tracks)),
		scratch:  make([]byte, maxPacket),
	}
	for i := range c.tracks {
		p.ssrc[i] = rand.Uint32()
		p.seqOff[i] = uint16(rand.Uint32())
		p.tsOff[i] = rand.Uint32()
	}
	return p
}

// timerWait returns a wait function backed by one reusable timer, so pacing
// allocates nothing per batch.
func timerWait() func(time.Duration, <-chan struct{}) bool {
	var t *time.Timer
	return func(d time.Duration, done <-chan struct{}) bool {
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d) // Go ≥1.23 timers: no stale value to drain
		}
		select {
		case <-t.C:
			return true
		case <-done:
			t.Stop()
			return false
		}
	}
}

// SSRC returns the SSRC the Player uses for track, for RTCP and SDP users.
func (p *Player) SSRC(track int) uint32 { return p.ssrc[track] }

// Start announces the clip to the handler (OnReady) and begins playing in a
// goroutine owned by the Player. A handler that refuses the clip gets
// nothing more. Calling Start again, or after Close, does nothing.
func (p *Player) Start() {
	p.startOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-p.done:
			return // closed before start
		default:
		}
		if err := p.w.OnReady(p.clip.SDP(), p.clip.Tracks()); err != nil {
			p.logger.Warn("demo source refused", "err", err)
			return
		}
		p.started = true
		go p.run()
	})
}

// Close stops playing, waits for the goroutine to end and, if the handler
// took the clip, ends the session (OnDisconnect with rtp.ErrClosed). It is
// idempotent and may be called before Start.
func (p *Player) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		close(p.done)
		started := p.started
		p.mu.Unlock()
		if started {
			<-p.finished
			p.w.OnDisconnect(rtp.ErrClosed)
		}
	})
}

func (p *Player) run() {
	defer close(p.finished)
	if len(p.clip.pkts) == 0 {
		return
	}
	start := p.now()
	for {
		now := p.now()
		// schedule against the start time, never by summing sleeps, so
		// timer slack does not add up to drift
		late := now.Sub(start) - (p.loopAt + p.clip.pkts[p.next].at)
		if late < 0 {
			if !p.wait(-late, p.done) {
				return
			}
			continue
		}
		if late > maxLate {
			start = start.Add(late)
			p.logger.Warn("demo player fell behind schedule; resynchronizing", "late", late)
		}
		p.emit()
		select {
		case <-p.done:
			return
		default:
		}
	}
}

// emit writes the current packet, which run found due, with this Player's
// SSRC, sequence number and timestamp patched into a scratch copy: the
// Clip's bytes are shared and stay untouched.
func (p *Player) emit() {
	pk := &p.clip.pkts[p.next]
	n := copy(p.scratch, pk.data)
	b := p.scratch[:n]
	writeSeqTS(b, pk.seq+p.seqOff[pk.track], pk.ts+p.tsOff[pk.track])
	ssrc := p.ssrc[pk.track]
	b[8], b[9], b[10], b[11] = byte(ssrc>>24), byte(ssrc>>16), byte(ssrc>>8), byte(ssrc)
	p.w.WriteRTP(pk.track, b)
	p.advance()
}

// advance moves to the next packet, wrapping into the next loop with the
// per-track offsets moved on by one loop's worth of packets and clock.
func (p *Player) advance() {
	p.next++
	if p.next < len(p.clip.pkts) {
		return
	}
	p.next = 0
	p.loopAt += p.clip.duration
	for i := range p.seqOff {
		p.seqOff[i] += p.clip.loopSeq[i]
		p.tsOff[i] += p.clip.loopTS[i]
	}
}
