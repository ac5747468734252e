package nack

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// histSize is the packets a relay sink keeps for retransmission (a power of two). At the
// 4500 packets/s of a 50 Mbit/s stream it covers 230 ms, several LAN round trips.
const histSize = 1024

// resendGap is the least time between two retransmissions of one packet: NACKs repeated faster
// (a far node retrying early, a replayed or forged datagram) do not multiply the traffic.
const resendGap = int64(10 * time.Millisecond)

// History sits between a relay sink's hub and its UDP sink: it keeps a reference to each of
// the last histSize packets sent, so a NACKed one is sent again without a copy. It is an
// rtp.Sink.
type History struct {
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

// NewHistory returns a history in front of sink for the line of SSRC ssrc (the hub's; the
// packets correct it when the hub's changes).
func NewHistory(sink *rtp.UDPSink, ssrc uint32) *History {
	h := &History{sink: sink}
	h.ssrc.Store(ssrc)
	return h
}

// DeliverRTP implements rtp.Sink.
func (h *History) DeliverRTP(p *rtp.Packet) {
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
func (h *History) DeliverRTCP(p *rtp.Packet) { h.sink.DeliverRTCP(p) }

// SSRC is the line the history holds, which a NACK for it names as its media source.
func (h *History) SSRC() uint32 { return h.ssrc.Load() }

// Resend queues packet seq again; false when it is no longer held or was resent just now.
func (h *History) Resend(seq uint16) bool {
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

// Answer resends what one NACK entry asks for: pid and those of the 16 following sequence
// numbers whose bit blp sets (Reader.Next).
func (h *History) Answer(pid, blp uint16) {
	h.Resend(pid)
	for i := range uint16(16) {
		if blp&(1<<i) != 0 {
			h.Resend(pid + i + 1)
		}
	}
}

// Stats returns the sending side's counters: Resent and Missed.
func (h *History) Stats() Stats {
	return Stats{Resent: h.resent.Load(), Missed: h.missed.Load()}
}

// Close releases the packets held; later ones only pass through to the sink.
func (h *History) Close() {
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
