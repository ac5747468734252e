package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// NACK and retransmission on relay links (PROTOCOLS.md §7.4; RFC 4585 generic NACK).
//
// Retransmissions go on the original SSRC with the original sequence number, not as RFC 4588
// RTX (own payload type, SSRC and sequence space, OSN prefix). RFC 4588 keeps retransmissions
// apart so that a receiver's RTCP statistics and a non-aware receiver's decoder are not fooled;
// neither concern exists here: both ends of a relay link are meshgw nodes, RTCP is terminated per
// hop, and the receiving side already demultiplexes relays by SSRC and holds packets behind a gap
// in order. A same-SSRC retransmission is to it exactly a late original, which the reorder window
// places (or drops as a duplicate) with no unwrapping step, no second SSRC per track to signal
// and route, and no copy to strip an OSN.
//
// pion/interceptor's nack package (v0.1.40 resolves against the pinned pion/rtp v1.8.21 and
// pion/rtcp v1.2.15) is not used: its responder allocates per packet sent (a RetainablePacket
// for its buffer, on pion's parsed rtp.Header), its interceptors allocate attribute maps on the
// read path and its generator fresh slices per NACK round, which the hot-path rule (0 allocs per
// packet) forbids; and its generator does not hold packets for reordering. Both halves are
// small enough to write against the node's pooled packets.

const (
	// histSize is the packets a relay sink keeps for retransmission (a power of two). At the
	// 4500 packets/s of a 50 Mbit/s stream it covers 230 ms, several LAN round trips.
	histSize = 1024
	// rxWindow bounds how far past a missing packet the receiver holds packets (a power of
	// two); a jump further ends the wait for everything older.
	rxWindow = 1024
	// DefaultNACKWait is how long a relay waits for a missing packet when Flow.NACKWait is 0.
	DefaultNACKWait = 200 * time.Millisecond
	// nackTries bounds the requests per missing packet; they are spread over the wait.
	nackTries = 4
	// maxFCI bounds the NACK entries of one RTCP packet (each covers 17 sequence numbers).
	maxFCI = 64
	// maxMisorderBack is how far behind the delivered line a packet may come before it is taken
	// as the upstream line restarting rather than as a late duplicate (RFC 3550 A.1 MAX_DROPOUT).
	maxMisorderBack = 3000
)

// relayHistory sits between a relay sink's hub and its UDP sink: it keeps a reference to each of
// the last histSize packets sent, so a NACKed one is sent again without a copy.
type relayHistory struct {
	sink *rtp.UDPSink
	// ssrc is the line the history holds (the hub's SSRC, learned from the packets), which
	// NACKs name as their media source.
	ssrc atomic.Uint32

	mu     sync.Mutex
	ring   [histSize]*rtp.Packet
	resAt  [histSize]int64 // when each held packet was last resent (unix nanos), 0 for never
	closed bool

	resent, missed atomic.Uint64
}

// resendGap is the least time between two retransmissions of one packet: NACKs repeated faster
// (a far node retrying early, a replayed or forged datagram) do not multiply the traffic.
const resendGap = int64(10 * time.Millisecond)

func newRelayHistory(sink *rtp.UDPSink, ssrc uint32) *relayHistory {
	h := &relayHistory{sink: sink}
	h.ssrc.Store(ssrc)
	return h
}

// DeliverRTP implements rtp.Sink.
func (h *relayHistory) DeliverRTP(p *rtp.Packet) {
	b := p.Bytes()
	if len(b) >= 12 {
		seq := binary.BigEndian.Uint16(b[2:])
		if ssrc := binary.BigEndian.Uint32(b[8:]); ssrc != h.ssrc.Load() {
			h.ssrc.Store(ssrc)
		}
		p.Ref()
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			p.Release()
		} else {
			old := h.ring[seq&(histSize-1)]
			h.ring[seq&(histSize-1)] = p
			h.resAt[seq&(histSize-1)] = 0
			h.mu.Unlock()
			if old != nil {
				old.Release()
			}
		}
	}
	h.sink.DeliverRTP(p)
}

// DeliverRTCP implements rtp.Sink.
func (h *relayHistory) DeliverRTCP(p *rtp.Packet) { h.sink.DeliverRTCP(p) }

// resend queues packet seq again; false when it is no longer held or was resent just now.
func (h *relayHistory) resend(seq uint16) bool {
	now := time.Now().UnixNano()
	i := seq & (histSize - 1)
	h.mu.Lock()
	p := h.ring[i]
	if p == nil || binary.BigEndian.Uint16(p.Bytes()[2:]) != seq {
		h.mu.Unlock()
		h.missed.Add(1)
		return false
	}
	if now-h.resAt[i] < resendGap {
		h.mu.Unlock()
		return false
	}
	h.resAt[i] = now
	p.Ref()
	h.mu.Unlock()
	h.resent.Add(1)
	h.sink.DeliverRTP(p)
	return true
}

func (h *relayHistory) close() {
	h.mu.Lock()
	h.closed = true
	ring := h.ring
	clear(h.ring[:])
	h.mu.Unlock()
	for _, p := range ring {
		if p != nil {
			p.Release()
		}
	}
}

// nackReader walks the generic NACKs (RTPFB, FMT 1) of a compound RTCP packet without
// allocating. Other packets are skipped; a malformed length ends the walk with an error.
type nackReader struct {
	b     []byte
	fci   []byte // FCI entries left in the current NACK
	media uint32
	err   error
}

func newNACKReader(b []byte) nackReader { return nackReader{b: b} }

// next returns the next NACK entry: the media SSRC it is about, the lost sequence number and
// the bitmask of the 16 following ones also lost (RFC 4585 §6.2.1).
func (r *nackReader) next() (media uint32, pid, blp uint16, ok bool) {
	for len(r.fci) < 4 {
		if len(r.b) == 0 || r.err != nil {
			return 0, 0, 0, false
		}
		if len(r.b) < 4 {
			r.err = fmt.Errorf("RTCP: %d trailing bytes", len(r.b))
			return 0, 0, 0, false
		}
		if r.b[0]>>6 != 2 {
			r.err = fmt.Errorf("RTCP: version %d", r.b[0]>>6)
			return 0, 0, 0, false
		}
		n := 4 + int(binary.BigEndian.Uint16(r.b[2:]))*4
		if n > len(r.b) {
			r.err = fmt.Errorf("RTCP: length %d exceeds the %d bytes left", n, len(r.b))
			return 0, 0, 0, false
		}
		pkt := r.b[:n]
		r.b = r.b[n:]
		if pkt[1] != 205 || pkt[0]&0x1f != 1 || n < 12 {
			continue
		}
		end := n
		if pkt[0]&0x20 != 0 { // padding, counted by the last octet
			pad := int(pkt[n-1])
			if pad == 0 || 12+pad > n {
				r.err = errors.New("RTCP: bad padding in NACK")
				return 0, 0, 0, false
			}
			end = n - pad
		}
		r.media = binary.BigEndian.Uint32(pkt[8:])
		r.fci = pkt[12:end]
	}
	pid = binary.BigEndian.Uint16(r.fci)
	blp = binary.BigEndian.Uint16(r.fci[2:])
	r.fci = r.fci[4:]
	return r.media, pid, blp, true
}

// appendNACK appends one generic NACK packet (RFC 4585 §6.2.1) for fcis, already packed as
// PID/BLP entries.
func appendNACK(b []byte, sender, media uint32, fcis []uint32) []byte {
	b = append(b, 0x81, 205, 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-2:], uint16(2+len(fcis)))
	b = binary.BigEndian.AppendUint32(b, sender)
	b = binary.BigEndian.AppendUint32(b, media)
	for _, f := range fcis {
		b = binary.BigEndian.AppendUint32(b, f)
	}
	return b
}

// answerNACKs retransmits what a compound RTCP packet from a far node asks for, from the
// histories of the relay sinks aimed at it. It runs on the pair's read goroutine.
func answerNACKs(b []byte, sinks []*flow) {
	r := newNACKReader(b)
	for {
		media, pid, blp, ok := r.next()
		if !ok {
			return
		}
		for _, f := range sinks {
			h := f.hist
			if h == nil || h.ssrc.Load() != media {
				continue
			}
			h.resend(pid)
			for i := range uint16(16) {
				if blp&(1<<i) != 0 {
					h.resend(pid + i + 1)
				}
			}
		}
	}
}

// RepairStats are a relay's loss repair counters (Flow.NACK).
type RepairStats struct {
	// Receiving side (SourceRelay).
	Requested uint64 // sequence numbers asked for in NACKs (each try counts)
	NACKs     uint64 // NACK packets sent
	Filled    uint64 // missing packets that arrived after all (retransmitted or late)
	Lost      uint64 // missing packets given up on (the hubs see the gap)
	Dups      uint64 // duplicates and packets too late to place, dropped
	// Sending side (SinkUDP).
	Resent uint64 // packets retransmitted
	Missed uint64 // NACKed packets no longer in the history
}

// relayRx repairs one relayed track: it passes packets to the hub in sequence order, holds those
// behind a gap, asks the upstream for the missing ones, and gives a gap up after the wait.
//
// push runs on the pair's read goroutine, the timer on its own; mu serialises them, and with
// them every write into the hub (which takes one writer at a time).
type relayRx struct {
	fl     *flow
	pool   *rtp.Pool
	sender uint32 // our SSRC in the NACKs' sender field
	wait   int64
	retry  int64

	mu      sync.Mutex
	closed  bool
	hub     *rtp.Hub
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

func newRelayRx(fl *flow, pool *rtp.Pool, wait time.Duration) *relayRx {
	if wait <= 0 {
		wait = DefaultNACKWait
	}
	rx := &relayRx{fl: fl, pool: pool, sender: rand.Uint32(), wait: int64(wait),
		retry: max(int64(wait)/nackTries, int64(2*time.Millisecond)),
		fcis:  make([]uint32, 0, maxFCI), buf: make([]byte, 0, 12+4*maxFCI)}
	rx.timer = time.AfterFunc(time.Hour, rx.onTimer)
	rx.timer.Stop()
	return rx
}

// push takes one relayed packet for hub.
func (rx *relayRx) push(hub *rtp.Hub, b []byte) {
	if len(b) < 12 {
		relayWrite(rx.fl, hub, b) // the hub counts it as invalid
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
	rx.hub = hub
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

func (rx *relayRx) gapLocked() bool { return rx.next != rx.top+1 }

// restartLocked gives up whatever is held (in order) and starts a new line at seq.
func (rx *relayRx) restartLocked(ssrc uint32, seq uint16) {
	if rx.started {
		for rx.gapLocked() {
			rx.skipLocked()
		}
	}
	rx.started, rx.ssrc = true, ssrc
	rx.next, rx.top = seq, seq-1
}

// deliverLocked passes the packet at next to the hub.
func (rx *relayRx) deliverLocked(b []byte) {
	if rx.hub != nil {
		relayWrite(rx.fl, rx.hub, b)
	}
	if !rx.gapLocked() {
		rx.top++
	}
	rx.next++
}

// drainLocked passes on the held packets that now follow the line.
func (rx *relayRx) drainLocked() {
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
func (rx *relayRx) skipLocked() {
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
func (rx *relayRx) expireLocked(now int64) {
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
func (rx *relayRx) nackLocked(from, to uint16, now int64) {
	fb, fb2 := rx.fl.fb.Load(), rx.fl.fb2.Load() // fb2: a live-live relay asks over both networks
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

func (rx *relayRx) sendNACKLocked(fb, fb2 *rtp.UDPSink) {
	rx.buf = appendNACK(rx.buf[:0], rx.sender, rx.ssrc, rx.fcis)
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
func (rx *relayRx) armLocked() {
	if rx.gapLocked() && !rx.armed {
		rx.armed = true
		rx.timer.Reset(time.Duration(rx.retry))
	}
}

func (rx *relayRx) onTimer() {
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

// close releases what is held; the hub is not written to any more.
func (rx *relayRx) close() {
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

func (rx *relayRx) stats() RepairStats {
	return RepairStats{Requested: rx.requested.Load(), NACKs: rx.nacks.Load(), Filled: rx.filled.Load(),
		Lost: rx.lost.Load(), Dups: rx.dups.Load()}
}

// RepairStats returns the loss repair counters of a relay flow (SourceRelay or SinkUDP with
// Flow.NACK), summed over its tracks.
func (n *Local) RepairStats(id string) (RepairStats, error) {
	n.mu.Lock()
	fl := n.flows[id]
	n.mu.Unlock()
	if fl == nil {
		return RepairStats{}, fmt.Errorf("flow %s: %w", id, ErrNotFound)
	}
	var st RepairStats
	for _, rx := range fl.rx {
		s := rx.stats()
		st.Requested += s.Requested
		st.NACKs += s.NACKs
		st.Filled += s.Filled
		st.Lost += s.Lost
		st.Dups += s.Dups
	}
	if fl.hist != nil {
		st.Resent, st.Missed = fl.hist.resent.Load(), fl.hist.missed.Load()
	}
	return st, nil
}
