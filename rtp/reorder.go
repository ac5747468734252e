package rtp

import "encoding/binary"

// reorderRing is the size of a reorder buffer's ring: it must exceed the
// deepest wait (two of the largest 2022-1 matrices plus the spread of their
// column FEC, some 220 packets, or the minimum wait at the stream's rate:
// 200 ms of a 100 Mbit/s stream is some 2000 packets) with room for the
// packets that keep arriving.
const reorderRing = 4096

// reorderSlot holds one packet waiting for its predecessors.
type reorderSlot struct {
	pkt *Packet // its RecvTime is when it arrived here
}

// reorder puts one RTP stream back into sequence order after FEC recovery,
// which hands rebuilt packets out late: a packet waits while an earlier one
// is missing, until the missing one comes (received late or rebuilt) or the
// gap is given up. A gap is given up when the packet right after it has
// waited minHold and the stream has moved depth packets past the gap (FEC
// can no longer bring it), or when that packet has waited maxHold (the
// stream stopped behind the gap). The wait is the waiting packet's, not the
// gap's: under heavy loss the output stays minHold behind rather than
// adding one wait per gap.
//
// minHold is there because media and FEC arrive on separate sockets read by
// separate goroutines: on a busy host the media reader can run a few
// batches ahead of the FEC reader, so a count alone would give up packets
// whose FEC is already in the kernel's buffer.
//
// It is owned by one goroutine at a time (the caller's lock) and allocates
// nothing per packet: packets wait in pooled buffers.
type reorder struct {
	pool    *Pool
	out     func([]byte)
	ring    [reorderRing]reorderSlot
	minHold int64
	maxHold int64

	started bool
	ssrc    uint32
	head    int64 // next extended seq to output
	hi      int64 // highest extended seq held or output
	held    int
	// next is the lowest held seq above head, valid while nextOK: the
	// packet whose wait decides when the gap at head is given up.
	next   int64
	nextOK bool

	late, skipped, resets uint64
}

func newReorder(pool *Pool, minHold, maxHold int64, out func([]byte)) *reorder {
	return &reorder{pool: pool, out: out, minHold: minHold, maxHold: maxHold}
}

func (r *reorder) slot(e int64) *reorderSlot { return &r.ring[e&(reorderRing-1)] }

// begin starts a sequence line at seq.
func (r *reorder) begin(seq uint16, ssrc uint32) {
	r.started, r.ssrc = true, ssrc
	r.head = 1<<32 + int64(seq)
	r.hi = r.head - 1
	r.nextOK = false
}

// put takes one valid RTP packet (copied) arriving at now and outputs what
// is in order; depth is how far the stream may move past a missing packet
// before it is given up.
func (r *reorder) put(b []byte, now, depth int64) {
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	if !r.started {
		r.begin(seq, ssrc)
	}
	ext := r.hi + int64(int16(seq-uint16(r.hi)))
	if ssrc != r.ssrc || ext > r.hi+maxDropout || ext < r.head-maxDropout {
		// A restarted sender: what waits belongs to the old line.
		r.flush()
		r.resets++
		r.begin(seq, ssrc)
		ext = r.head
	}
	if ext < r.head {
		r.late++
		return
	}
	for ext-r.head >= reorderRing {
		r.skipHead()
	}
	s := r.slot(ext)
	if s.pkt != nil {
		return // a copy already waits
	}
	p := r.pool.Get(len(b))
	copy(p.buf, b)
	p.recv = now
	s.pkt = p
	r.held++
	if ext > r.hi {
		r.hi = ext
	}
	if r.nextOK && ext < r.next {
		r.next = ext
	}
	r.release(now, depth)
}

// release outputs the packets in order at head and gives up the gaps whose
// following packet has waited long enough.
func (r *reorder) release(now, depth int64) {
	for r.held > 0 {
		for r.head <= r.hi {
			s := r.slot(r.head)
			if s.pkt == nil {
				break
			}
			r.skipHead()
		}
		if r.held == 0 {
			return
		}
		if !r.nextOK {
			r.next = r.head + 1
			for r.slot(r.next).pkt == nil {
				r.next++
			}
			r.nextOK = true
		}
		waited := now - r.slot(r.next).pkt.recv
		if waited < r.maxHold && (r.hi-r.head < depth || waited < r.minHold) {
			return
		}
		for r.head < r.next {
			r.skipHead()
		}
	}
}

// skipHead outputs the head sequence number, or gives it up.
func (r *reorder) skipHead() {
	s := r.slot(r.head)
	if s.pkt != nil {
		r.out(s.pkt.buf)
		s.pkt.Release()
		s.pkt = nil
		r.held--
	} else {
		r.skipped++
	}
	r.head++
	if r.nextOK && r.head >= r.next {
		r.nextOK = false
	}
}

// flush outputs everything waiting, in order, giving up the gaps.
func (r *reorder) flush() {
	for r.held > 0 {
		r.skipHead()
	}
}

// close returns the waiting packets to the pool without output.
func (r *reorder) close() {
	for i := range r.ring {
		if p := r.ring[i].pkt; p != nil {
			p.Release()
			r.ring[i].pkt = nil
		}
	}
	r.held = 0
	r.nextOK = false
}
