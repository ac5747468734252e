package merge

import (
	"sync"
	"time"
)

// Timed is a Merger driven by its own timer, for owners that push packets
// from their read goroutines and have no goroutine of their own to Tick it
// (a relay's legs). The timer releases packets held behind a gap when no
// later packet comes to do it: it is armed after every Push for the
// merger's next deadline when that is earlier than the one it is set for.
type Timed struct {
	m     *Merger
	clock func() int64

	mu     sync.Mutex // guards the timer's arming, not the merger
	timer  *time.Timer
	armed  int64 // deadline the timer is set for (clock ns), 0 when idle
	closed bool
}

// NewTimed returns a merger of cfg with its timer. clock is the monotonic
// clock (ns, normally rtp.Now) that the times given to Push are read from;
// the timer reads it when it fires.
func NewTimed(cfg Config, clock func() int64) *Timed {
	t := &Timed{m: New(cfg), clock: clock}
	t.timer = time.AfterFunc(time.Hour, t.onTimer)
	t.timer.Stop()
	return t
}

// Known is Merger.Known.
func (t *Timed) Known(leg int, pkt []byte, now int64) bool { return t.m.Known(leg, pkt, now) }

// Push is Merger.Push, then arms the timer for what now waits.
func (t *Timed) Push(leg int, pkt []byte, now int64) {
	t.m.Push(leg, pkt, now)
	t.arm(now)
}

// Stats is Merger.Stats.
func (t *Timed) Stats() Stats { return t.m.Stats() }

// arm sets the timer for the merger's next deadline when it is earlier than the one set.
func (t *Timed) arm(now int64) {
	at, ok := t.m.NextDeadline()
	if !ok {
		return
	}
	t.mu.Lock()
	if !t.closed && (t.armed == 0 || at < t.armed) {
		t.armed = at
		t.timer.Reset(time.Duration(max(at-now, 0)))
	}
	t.mu.Unlock()
}

func (t *Timed) onTimer() {
	t.mu.Lock()
	t.armed = 0
	t.mu.Unlock()
	now := t.clock()
	t.m.Tick(now)
	t.arm(now)
}

// Close stops the timer and drops what still waits (Merger.Close).
func (t *Timed) Close() {
	t.mu.Lock()
	t.closed = true
	t.timer.Stop()
	t.mu.Unlock()
	t.m.Close()
}
