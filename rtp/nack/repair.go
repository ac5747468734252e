package nack

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

const (
	// rxWindow bounds how far past a missing packet the receiver holds packets (a power of
	// two); a jump further ends the wait for everything older.
	rxWindow = 1024
	// DefaultWait is how long a relay waits for a missing packet when Config.Wait (RelaySource.NACKWait)
	// is 0.
	DefaultWait = 200 * time.Millisecond
	// nackTries bounds the requests per missing packet; they are spread over the wait.
	nackTries = 4
	// maxFCI bounds the NACK entries of one RTCP packet (each covers 17 sequence numbers).
	maxFCI = 64
	// maxMisorderBack is how far behind the delivered line a packet may come before it is taken
	// as the upstream line restarting rather than as a late duplicate (RFC 3550 A.1 MAX_DROPOUT).
	maxMisorderBack = 3000
)

// Stats are a relay's loss repair counters: a Repairer's (the receiving side) and a History's
// (the sending side).
type Stats struct {
	// Receiving side (a relay source's Repairer).
	Requested uint64 // sequence numbers asked for in NACKs (each try counts)
	NACKs     uint64 // NACK packets sent
	Filled    uint64 // missing packets that arrived after all (retransmitted or late)
	Lost      uint64 // missing packets given up on (the hubs see the gap)
	Dups      uint64 // duplicates and packets too late to place, dropped
	// Sending side (a relay sink's History).
	Resent uint64 // packets retransmitted
	Missed uint64 // NACKed packets no longer in the history
}

// Feedback is where a relay's NACKs go: a UDP sink aimed at the upstream node's RTCP address,
// and for a live-live relay a second one over the second network, so NACKs reach the upstream
// over both. The wiring swaps them as the upstream moves; the Repairers of all the relay's
// tracks read them. The zero value sends nothing.
type Feedback struct {
	paths [2]atomic.Pointer[rtp.UDPSink]
}

// Swap makes s (nil: none) the sink of path i (0: the first network, 1: the second) and returns
// the one it replaces, for the caller to close.
func (f *Feedback) Swap(i int, s *rtp.UDPSink) *rtp.UDPSink { return f.paths[i].Swap(s) }

// Config configures a Repairer.
type Config struct {
	// Pool gives the buffers packets wait in behind a gap.
	Pool *rtp.Pool
	// Wait is how long a missing packet is waited for (0: DefaultWait).
	Wait time.Duration
	// Feedback is where the NACKs go; nil or empty sends none.
	Feedback *Feedback
}

// Repairer repairs one relayed track: a stage of the track's chain (rtp.Stage), it passes
// packets on to the next stage (the hub's input) in sequence order, holds those behind a gap,
// asks the upstream for the missing ones, and gives a gap up after the wait.
//
// WriteRTP runs on the pair's read goroutine (or a merge's), the timer on its own; mu serialises
// them, and with them every write into the next stage (a hub takes one writer at a time).
type Repairer struct {
	pool   *rtp.Pool
	fb     *Feedback
	sender uint32 // our SSRC in the NACKs' sender field
	wait   int64
	retry  int64

	mu      sync.Mutex
	closed  bool
	out     rtp.Writer // the next stage; nil until Bind
	started bool
	ssrc    uint32
	next    uint16 // oldest sequence number not yet passed on
	top     uint16 // highest seen; a gap is open while next != top+1
	held    [rxWindow]*rtp.Packet
	since   [rxWindow]int64 // when a missing slot was noticed missing (unix nanos)
	asked   [rxWindow]int64 // last NACK for it
	tries   [rxWindow]uint8
	timer   *time.Timer
	armed   bool
	fcis    []uint32
	buf     []byte

	requested, nacks, filled, lost, dups atomic.Uint64
}

// NewRepairer returns a repairer; its timer runs while a gap is open.
func NewRepairer(cfg Config) *Repairer {
	wait := cfg.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	fb := cfg.Feedback
	if fb == nil {
		fb = &Feedback{}
	}
	rx := &Repairer{pool: cfg.Pool, fb: fb, sender: rand.Uint32(), wait: int64(wait),
		retry: max(int64(wait)/nackTries, int64(2*time.Millisecond)),
		fcis:  make([]uint32, 0, maxFCI), buf: make([]byte, 0, 12+4*maxFCI)}
	rx.timer = time.AfterFunc(time.Hour, rx.onTimer)
	rx.timer.Stop()
	return rx
}

// Bind implements rtp.Stage: what the repair passes on goes to next.
func (rx *Repairer) Bind(next rtp.Writer) rtp.Writer {
	rx.mu.Lock()
	rx.out = next
	rx.mu.Unlock()
	return rx
}

// WriteRTP takes one relayed packet of the track.
func (rx *Repairer) WriteRTP(b []byte) {
	if len(b) < 12 {
		rx.mu.Lock()
		if rx.out != nil {
			rx.out.WriteRTP(b) // the hub counts it as invalid
		}
		rx.mu.Unlock()
		return
	}
	now := time.Now().UnixNano()
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if rx.closed {
		return
	}
	if !rx.started || ssrc != rx.ssrc {
		rx.restartLocked(ssrc, seq)
	}
	d := seq - rx.next
	switch {
	case d >= 0x8000: // behind the line
		if -d > maxMisorderBack {
			rx.restartLocked(ssrc, seq)
			rx.deliverLocked(b)
			return
		}
		rx.dups.Add(1)
		return
	case d >= rxWindow:
		// Too far ahead to hold the gap open: what is missing is lost.
		rx.restartLocked(ssrc, seq)
		rx.deliverLocked(b)
		return
	case d == 0:
		if rx.gapLocked() {
			rx.filled.Add(1)
		}
		rx.deliverLocked(b)
		rx.drainLocked()
	default:
		slot := seq & (rxWindow - 1)
		if rx.held[slot] != nil {
			rx.dups.Add(1)
			return
		}
		if seq-rx.next <= rx.top-rx.next && rx.top != rx.next-1 {
			rx.filled.Add(1) // a hole inside the open gap
		} else {
			from := rx.top + 1
			for s := from; s != seq; s++ {
				i := s & (rxWindow - 1)
				rx.since[i], rx.asked[i], rx.tries[i] = now, 0, 0
			}
			rx.top = seq
			rx.nackLocked(from, seq-1, now)
		}
		p := rx.pool.Get(len(b))
		copy(p.Bytes(), b)
		rx.held[slot] = p
	}
	rx.expireLocked(now)
	rx.armLocked()
}

func (rx *Repairer) gapLocked() bool { return rx.next != rx.top+1 }

// restartLocked gives up whatever is held (in order) and starts a new line at seq.
func (rx *Repairer) restartLocked(ssrc uint32, seq uint16) {
	if rx.started {
		for rx.gapLocked() {
			rx.skipLocked()
		}
	}
	rx.started, rx.ssrc = true, ssrc
	rx.next, rx.top = seq, seq-1
}

// deliverLocked passes the packet at next to the next stage.
func (rx *Repairer) deliverLocked(b []byte) {
	if rx.out != nil {
		rx.out.WriteRTP(b)
	}
	if !rx.gapLocked() {
		rx.top++
	}
	rx.next++
}

// drainLocked passes on the held packets that now follow the line.
func (rx *Repairer) drainLocked() {
	for rx.gapLocked() {
		slot := rx.next & (rxWindow - 1)
		p := rx.held[slot]
		if p == nil {
			return
		}
		rx.held[slot] = nil
		rx.deliverLocked(p.Bytes())
		p.Release()
	}
}

// skipLocked moves past next: its held packet goes on, a missing one is counted lost.
func (rx *Repairer) skipLocked() {
	slot := rx.next & (rxWindow - 1)
	if p := rx.held[slot]; p != nil {
		rx.held[slot] = nil
		rx.deliverLocked(p.Bytes())
		p.Release()
		return
	}
	rx.lost.Add(1)
	rx.next++
}

// expireLocked gives up missing packets that waited their time, passing on what follows them.
func (rx *Repairer) expireLocked(now int64) {
	for rx.gapLocked() {
		slot := rx.next & (rxWindow - 1)
		if rx.held[slot] == nil && now-rx.since[slot] < rx.wait {
			return
		}
		rx.skipLocked()
	}
}

// nackLocked asks for the missing packets in [from, to] whose last request is older than the
// retry interval, in as few RTCP packets as their spacing allows.
func (rx *Repairer) nackLocked(from, to uint16, now int64) {
	fb, fb2 := rx.fb.paths[0].Load(), rx.fb.paths[1].Load() // fb2: a live-live relay asks over both networks
	if fb == nil {
		return
	}
	rx.fcis = rx.fcis[:0]
	var pid uint16
	var blp uint16
	open := false
	for s := from; s != to+1; s++ {
		i := s & (rxWindow - 1)
		if rx.held[i] != nil || rx.tries[i] >= nackTries || (rx.asked[i] != 0 && now-rx.asked[i] < rx.retry) {
			continue
		}
		rx.asked[i] = now
		rx.tries[i]++
		rx.requested.Add(1)
		if open && s-pid <= 16 {
			blp |= 1 << (s - pid - 1)
			continue
		}
		if open {
			rx.fcis = append(rx.fcis, uint32(pid)<<16|uint32(blp))
			if len(rx.fcis) == maxFCI {
				rx.sendNACKLocked(fb, fb2)
			}
		}
		pid, blp, open = s, 0, true
	}
	if open {
		rx.fcis = append(rx.fcis, uint32(pid)<<16|uint32(blp))
	}
	if len(rx.fcis) > 0 {
		rx.sendNACKLocked(fb, fb2)
	}
}

func (rx *Repairer) sendNACKLocked(fb, fb2 *rtp.UDPSink) {
	rx.buf = Append(rx.buf[:0], rx.sender, rx.ssrc, rx.fcis)
	rx.fcis = rx.fcis[:0]
	rx.nacks.Add(1)
	for _, s := range [2]*rtp.UDPSink{fb, fb2} {
		if s != nil {
			p := rx.pool.Get(len(rx.buf))
			copy(p.Bytes(), rx.buf)
			s.DeliverRTCP(p)
		}
	}
}

// armLocked runs the timer while a gap is open, for retries and for giving up when no later
// packet comes to trigger it.
func (rx *Repairer) armLocked() {
	if rx.gapLocked() && !rx.armed {
		rx.armed = true
		rx.timer.Reset(time.Duration(rx.retry))
	}
}

func (rx *Repairer) onTimer() {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	rx.armed = false
	if rx.closed {
		return
	}
	now := time.Now().UnixNano()
	rx.expireLocked(now)
	if rx.gapLocked() {
		rx.nackLocked(rx.next, rx.top, now)
	}
	rx.armLocked()
}

// Close releases what is held; the next stage is not written to any more.
func (rx *Repairer) Close() {
	rx.mu.Lock()
	rx.closed = true
	rx.timer.Stop()
	for i, p := range rx.held {
		if p != nil {
			p.Release()
			rx.held[i] = nil
		}
	}
	rx.mu.Unlock()
}

// Stats returns the receiving side's counters.
func (rx *Repairer) Stats() Stats {
	return Stats{Requested: rx.requested.Load(), NACKs: rx.nacks.Load(), Filled: rx.filled.Load(),
		Lost: rx.lost.Load(), Dups: rx.dups.Load()}
}
