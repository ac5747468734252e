package fec

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// Decoder limits and defaults.
const (
	// DefaultWindow is the number of media packets a Decoder keeps when
	// DecoderConfig.Window is 0: five 10×10 matrices.  Column FEC arrives
	// up to a matrix after the packets it protects, so a window must hold
	// at least two matrices.
	DefaultWindow = 512
	// MinWindow holds two of the largest (100-packet) matrices plus the
	// spread of their column FEC.
	MinWindow = 256
	// MaxWindow keeps every sequence number in the window unambiguous.
	MaxWindow = 16384
	// DefaultMaxPacketSize bounds the media packets kept when
	// DecoderConfig.MaxPacketSize is 0 (an Ethernet MTU).
	DefaultMaxPacketSize = 1500
)

// maxJump is RFC 3550's MAX_DROPOUT: a media sequence number further ahead
// than this, or behind the window, is only believed when the next packet
// confirms it (a sender restart); until then it is ignored.
const maxJump = 3000

// DecoderConfig configures a Decoder.  L and D need no configuration: every
// FEC packet describes the packets it protects, and Matrix reports what the
// sender uses.
type DecoderConfig struct {
	// Window is how many media packets (by sequence number) are kept for
	// recovery; rounded up to a power of two in MinWindow..MaxWindow.
	// 0 selects DefaultWindow.  Memory is about Window×MaxPacketSize for
	// media plus the same bound for FEC packets waiting for a second loss
	// to be repaired.
	Window int
	// MaxPacketSize is the largest media packet kept; 0 selects
	// DefaultMaxPacketSize.  FEC packets may be HeaderLen bytes longer.
	// A longer media packet still counts as received but cannot help
	// rebuild others.
	MaxPacketSize int
}

// DecoderStats counts what a Decoder saw and did.
type DecoderStats struct {
	// Media is the number of well-formed media packets pushed;
	// MediaMalformed the rejected ones.
	Media, MediaMalformed uint64
	// Duplicates counts media packets the decoder already held, received
	// or recovered (PushMedia returned ErrDuplicate).
	Duplicates uint64
	// Ignored counts media packets older than the window, and packets that
	// jump far ahead or change the SSRC while no following packet confirms
	// the new sequence line (RFC 3550 A.1).
	Ignored uint64
	// Oversize counts media packets longer than MaxPacketSize.
	Oversize uint64
	// FEC is the number of FEC packets pushed; FECMalformed were rejected
	// with an error, FECUnusable were well-formed but arrived before any
	// media, outside the window, or over the size limit.
	FEC, FECMalformed, FECUnusable uint64
	// Recovered counts rebuilt media packets.  A packet is rebuilt only
	// once a newer one has arrived, so one merely in flight behind its FEC
	// is not; one reordered behind newer packets and its FEC can be, and
	// its late original then counts as a duplicate.
	Recovered uint64
	// Unrecoverable counts sequence numbers given up on: missing when they
	// left the window or when the sequence line restarted.  Losses still
	// inside the window are not counted yet.
	Unrecoverable uint64
	// Inconsistent counts rebuilds refused because the FEC packet and the
	// media packets disagree (a payload longer than the FEC payload, or a
	// result that is not valid RTP).
	Inconsistent uint64
	// Undelivered counts recovered packets dropped from the output queue
	// because Recovered was not called before a window's worth more came.
	Undelivered uint64
	// Resyncs counts restarts of the sequence line (a confirmed SSRC
	// change or jump); the window is emptied each time.
	Resyncs uint64
}

type slotState uint8

const (
	stMissing   slotState = iota
	stReceived            // buf holds the packet
	stRecovered           // buf holds the rebuilt packet
	stNoData              // received but over MaxPacketSize: present, not usable
)

// mslot is one media packet position; the slot of extended sequence number
// s is media[s&mask], and for every s in the window its seq field is s.
type mslot struct {
	seq   int64
	state slotState
	buf   []byte
}

// fecView is what a recovery needs from a FEC packet.
type fecView struct {
	base       int64 // extended SNBase
	offset, na int
	lenRec     uint16
	b0         byte // P, X, CC recovery (low 6 bits)
	b1         byte // M recovery (high bit) | PT recovery
	ts         uint32
	payload    []byte
}

// fslot holds a FEC packet that could not be used yet (two or more of its
// packets missing, or the one missing may still be in flight); the slot of
// SNBase b is ring[b&mask].
type fslot struct {
	fecView
	used bool
}

// Decoder rebuilds lost media packets of one RTP stream from its column and
// row FEC streams.  Push media and FEC packets as they arrive, in any
// order; after each push, drain Recovered.
//
// A packet is rebuilt as soon as it is the only one missing from a row or
// column whose FEC packet is held and a newer media packet has arrived
// (until then it may simply still be on its way).  Each rebuild is checked
// against the other direction, so 2D recovery iterates to the end: a lost
// row is rebuilt column by column, a column with two losses after a row
// rebuilt one of them, and so on.  Media packets stay for Window sequence
// numbers; a packet that leaves the window missing counts as
// unrecoverable.
type Decoder struct {
	n, mask int64
	maxPkt  int

	media      []mslot
	rows, cols []fslot
	scratch    []byte

	started   bool
	hi        int64 // highest extended sequence number received
	base      int64 // first extended sequence number of this sequence line
	ssrc      uint32
	probation int32 // sequence number that would confirm a jump, or -1
	probSSRC  uint32

	rowL, colL, colD int

	work    []int64 // recovered packets whose FEC packets need another look
	out     []int64 // recovered packets not yet handed out (ring)
	outHead int
	outLen  int

	stats DecoderStats
}

// NewDecoder returns a decoder with the window and packet size limits of
// cfg.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	w := cfg.Window
	if w == 0 {
		w = DefaultWindow
	}
	if w < MinWindow || w > MaxWindow {
		return nil, &fecError{msg: fmt.Sprintf("decoder config: window %d out of range %d..%d", w, MinWindow, MaxWindow), kind: ErrConfig}
	}
	n := 1
	for n < w {
		n <<= 1
	}
	m := cfg.MaxPacketSize
	if m == 0 {
		m = DefaultMaxPacketSize
	}
	if m < RTPHeaderLen || m > maxMediaLen {
		return nil, &fecError{msg: fmt.Sprintf("decoder config: max packet size %d out of range %d..%d", m, RTPHeaderLen, maxMediaLen), kind: ErrConfig}
	}
	d := &Decoder{
		n:         int64(n),
		mask:      int64(n - 1),
		maxPkt:    m,
		media:     make([]mslot, n),
		rows:      make([]fslot, n),
		cols:      make([]fslot, n),
		work:      make([]int64, 0, 2*n), // a gap's numbers plus what they rebuild
		out:       make([]int64, n),
		probation: -1,
	}
	return d, nil
}

// Stats returns the counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Matrix returns the sender's L and D as announced by the latest FEC
// packets (column FEC gives both, row FEC only L); 0 means not seen yet.
func (d *Decoder) Matrix() (columns, rows int) {
	columns = d.colL
	if columns == 0 {
		columns = d.rowL
	}
	return columns, d.colD
}

// Reset forgets every packet and the sequence line; counters are kept.
func (d *Decoder) Reset() {
	d.started = false
	d.probation = -1
	d.outLen = 0
	for i := range d.rows {
		d.rows[i].used = false
		d.cols[i].used = false
	}
}

func (d *Decoder) slot(s int64) *mslot { return &d.media[s&d.mask] }

// extend maps a 16-bit sequence number to the extended one nearest hi.
func (d *Decoder) extend(seq uint16) int64 {
	return d.hi + int64(int16(seq-uint16(d.hi)))
}

// start begins a sequence line at seq: the window is empty and numbers
// before seq are not expected.
func (d *Decoder) start(seq uint16, ssrc uint32) {
	d.Reset()
	d.started = true
	d.ssrc = ssrc
	d.hi = 1<<32 + int64(seq) // keeps extended numbers positive
	d.base = d.hi
	for s := d.hi - d.n + 1; s <= d.hi; s++ {
		sl := d.slot(s)
		sl.seq, sl.state = s, stMissing
	}
}

// resync ends the current sequence line: what is still missing is lost.
func (d *Decoder) resync(seq uint16, ssrc uint32) {
	for s := max(d.base, d.hi-d.n+1); s <= d.hi; s++ {
		if d.slot(s).state == stMissing {
			d.stats.Unrecoverable++
		}
	}
	d.stats.Resyncs++
	d.start(seq, ssrc)
}

// advance moves the top of the window to to (> hi), counting the packets
// that leave it missing.
func (d *Decoder) advance(to int64) {
	lo, newLo := d.hi-d.n+1, to-d.n+1
	if newLo > d.hi+1 {
		// Everything in the window leaves, and so do the numbers between
		// the old top and the new bottom, which never arrived.
		d.stats.Unrecoverable += uint64(newLo - d.hi - 1)
		for s := lo; s <= d.hi; s++ {
			d.evict(s)
		}
		for s := newLo; s <= to; s++ {
			sl := d.slot(s)
			sl.seq, sl.state = s, stMissing
		}
	} else {
		for s := lo; s < newLo; s++ {
			d.evict(s)
		}
	}
	d.hi = to
}

func (d *Decoder) evict(s int64) {
	sl := d.slot(s)
	if sl.state == stMissing && s >= d.base {
		d.stats.Unrecoverable++
	}
	sl.seq, sl.state = s+d.n, stMissing
}

func (d *Decoder) inWindow(s int64) bool { return s > d.hi-d.n && s <= d.hi }

func (d *Decoder) present(s int64) bool {
	return d.inWindow(s) && d.slot(s).state != stMissing
}

// PushMedia records a media packet of the protected stream.  It returns
// ErrDuplicate when the decoder already holds the packet, received or
// recovered: the caller has delivered it once and should drop it.  It
// returns an error wrapping ErrMalformed for a packet that is not RTP
// version 2.  The packet is copied; pkt may be reused after the call.
func (d *Decoder) PushMedia(pkt []byte) error {
	if err := checkMedia(pkt); err != nil {
		d.stats.MediaMalformed++
		return err
	}
	d.stats.Media++
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	var ext int64
	if !d.started {
		d.start(seq, ssrc)
		ext = d.hi
	} else {
		ext = d.extend(seq)
		if ssrc != d.ssrc || ext > d.hi+maxJump || ext <= d.hi-d.n {
			// RFC 3550 A.1: a far jump or a new SSRC is believed only when
			// the next packet follows it, so one stray packet cannot empty
			// the window.
			if d.probation != int32(seq) || d.probSSRC != ssrc {
				d.probation, d.probSSRC = int32(seq+1), ssrc
				d.stats.Ignored++
				return nil
			}
			d.resync(seq, ssrc)
			ext = d.hi
		}
	}
	d.probation = -1
	// Numbers skipped by this packet are now known to be missing rather
	// than in flight: FEC packets waiting on them may be usable now.
	d.work = d.work[:0]
	if ext > d.hi {
		for s := max(d.hi+1, ext-d.n+1); s < ext; s++ {
			d.work = append(d.work, s)
		}
		d.advance(ext)
	}
	sl := d.slot(ext)
	if sl.state != stMissing {
		d.stats.Duplicates++
		return ErrDuplicate
	}
	if len(pkt) > d.maxPkt {
		d.stats.Oversize++
		sl.state = stNoData
	} else {
		sl.buf = d.fit(sl.buf, len(pkt))
		copy(sl.buf, pkt)
		sl.state = stReceived
	}
	d.work = append(d.work, ext)
	d.cascade()
	return nil
}

// fit returns b with length n, allocating once per buffer (at the
// configured maximum) so that buffers never need to grow again.
func (d *Decoder) fit(b []byte, n int) []byte {
	if n > cap(b) {
		return make([]byte, n, max(n, d.maxPkt+HeaderLen))
	}
	return b[:n]
}

// PushFEC records a FEC packet received on the kind stream (Column from
// media port + 2, Row from media port + 4) and rebuilds what it and the
// packets held make recoverable.  A packet that breaks RTP or SMPTE 2022-1,
// or whose D bit contradicts kind, returns an error wrapping ErrMalformed;
// one longer than MaxPacketSize+HeaderLen returns an error wrapping
// ErrTooLarge.  Well-formed packets the decoder cannot use (before any
// media, outside the window) are counted and return nil.
func (d *Decoder) PushFEC(kind Kind, pkt []byte) error {
	d.stats.FEC++
	if len(pkt) > d.maxPkt+HeaderLen {
		d.stats.FECUnusable++
		return tooLarge("%s FEC packet: %d bytes exceeds the limit of %d (MaxPacketSize + %d)", kind, len(pkt), d.maxPkt+HeaderLen, HeaderLen)
	}
	p, err := ParsePacket(pkt)
	if err != nil {
		d.stats.FECMalformed++
		return err
	}
	h := &p.Header
	if h.Kind != kind {
		d.stats.FECMalformed++
		return malformed("%s FEC packet (D=%d) arrived on the %s stream; column FEC belongs on media port + 2, row FEC on media port + 4", h.Kind, h.Kind, kind)
	}
	if kind == Column {
		d.colL, d.colD = int(h.Offset), int(h.NA)
	} else {
		d.rowL = int(h.NA)
	}
	if !d.started {
		d.stats.FECUnusable++
		return nil
	}
	base := d.extend(h.SNBase)
	if base <= d.hi-d.n || base+int64(h.span()) > d.hi+min(d.n/2, maxJump) {
		d.stats.FECUnusable++
		return nil
	}
	v := fecView{
		base:    base,
		offset:  int(h.Offset),
		na:      int(h.NA),
		lenRec:  h.LengthRecovery,
		b0:      pkt[0] & 0x3f,
		b1:      pkt[1]&0x80 | h.PTRecovery,
		ts:      h.TSRecovery,
		payload: p.Payload,
	}
	ring := d.cols
	if kind == Row {
		ring = d.rows
	}
	f := &ring[base&d.mask]
	if f.used && f.base == base {
		return nil // a repeat of a FEC packet still waiting
	}
	missing, lost := d.missing(&v)
	switch {
	case missing == 0:
	case missing == 1 && lost <= d.hi:
		if d.rebuild(&v, lost) {
			d.work = append(d.work[:0], lost)
			d.cascade()
		}
	default:
		// Two or more missing, or the one missing packet is newer than
		// anything received and may still be in flight (GStreamer sends a
		// row's FEC before the row's last packet): wait.
		pl := d.fit(f.payload, len(v.payload))
		copy(pl, v.payload)
		f.fecView = v
		f.payload = pl
		f.used = true
	}
	return nil
}

// missing counts the packets v protects that the decoder does not hold
// (stopping at 2) and returns the last one found.
func (d *Decoder) missing(v *fecView) (n int, lost int64) {
	for i := 0; i < v.na; i++ {
		s := v.base + int64(i*v.offset)
		if !d.present(s) {
			n++
			lost = s
			if n > 1 {
				break
			}
		}
	}
	return n, lost
}

// cascade looks again at every waiting FEC packet that protects a packet
// on the work stack (one that just arrived, was rebuilt, or is now known to
// be lost); each rebuild it makes goes on the stack in turn, which is how
// row and column recovery unblock each other.
func (d *Decoder) cascade() {
	for len(d.work) > 0 {
		s := d.work[len(d.work)-1]
		d.work = d.work[:len(d.work)-1]
		// Probing uses the sender's latest L and D; waiting FEC packets of
		// an older geometry are still found by their own later arrivals.
		for k := 0; k < d.rowL; k++ {
			d.retry(&d.rows[(s-int64(k))&d.mask], s-int64(k), s)
		}
		for k := 0; k < d.colD && d.colL > 0; k++ {
			b := s - int64(k*d.colL)
			d.retry(&d.cols[b&d.mask], b, s)
		}
	}
}

// retry re-examines f if it is the waiting FEC packet with SNBase b and
// protects s.
func (d *Decoder) retry(f *fslot, b, s int64) {
	if !f.used || f.base != b || b <= d.hi-d.n {
		return
	}
	if off := s - b; off%int64(f.offset) != 0 || off/int64(f.offset) >= int64(f.na) {
		return
	}
	missing, lost := d.missing(&f.fecView)
	switch missing {
	case 0:
		f.used = false
	case 1:
		if lost > d.hi {
			return // may be in flight
		}
		// Either way this FEC packet is done: a refused rebuild cannot
		// succeed later, as the packets it would use do not change.
		f.used = false
		if d.rebuild(&f.fecView, lost) {
			d.work = append(d.work, lost)
		}
	}
}

// rebuild recovers packet p (in the window), the only one v protects that
// is missing, and queues it for Recovered.
func (d *Decoder) rebuild(v *fecView, p int64) bool {
	lenRec, b0, b1, ts := v.lenRec, v.b0, v.b1, v.ts
	var ssrc uint32
	for i := 0; i < v.na; i++ {
		s := v.base + int64(i*v.offset)
		if s == p {
			continue
		}
		sl := d.slot(s)
		if sl.state == stNoData {
			return false
		}
		pk := sl.buf
		if len(pk)-RTPHeaderLen > len(v.payload) {
			d.stats.Inconsistent++
			return false
		}
		lenRec ^= uint16(len(pk) - RTPHeaderLen)
		b0 ^= pk[0]
		b1 ^= pk[1]
		ts ^= binary.BigEndian.Uint32(pk[4:])
		ssrc = binary.BigEndian.Uint32(pk[8:])
	}
	n := int(lenRec)
	if n > len(v.payload) || RTPHeaderLen+n > d.maxPkt {
		d.stats.Inconsistent++
		return false
	}
	// Built aside, so that a failed check leaves the slot untouched, then
	// swapped in without a copy.
	out := d.fit(d.scratch, RTPHeaderLen+n)
	body := out[RTPHeaderLen:]
	copy(body, v.payload[:n])
	for i := 0; i < v.na; i++ {
		s := v.base + int64(i*v.offset)
		if s != p {
			mb := d.slot(s).buf[RTPHeaderLen:]
			k := min(len(mb), n)
			subtle.XORBytes(body[:k], body[:k], mb[:k])
		}
	}
	out[0] = 0x80 | b0&0x3f
	out[1] = b1
	binary.BigEndian.PutUint16(out[2:], uint16(p))
	binary.BigEndian.PutUint32(out[4:], ts)
	binary.BigEndian.PutUint32(out[8:], ssrc)
	if !validRTP(out) {
		d.scratch = out
		d.stats.Inconsistent++
		return false
	}
	sl := d.slot(p)
	d.scratch, sl.buf = sl.buf, out
	sl.state = stRecovered
	d.stats.Recovered++
	d.enqueue(p)
	return true
}

func (d *Decoder) enqueue(p int64) {
	if d.outLen == len(d.out) {
		d.outHead = (d.outHead + 1) % len(d.out)
		d.outLen--
		d.stats.Undelivered++
	}
	d.out[(d.outHead+d.outLen)%len(d.out)] = p
	d.outLen++
}

// Recovered hands out the next rebuilt media packet, in the order they were
// rebuilt (not necessarily sequence order), and false when there is none.
// Each missing packet is handed out at most once, and never one that was
// received.  The slice belongs to the decoder and stays valid until the
// next PushMedia, PushFEC or Reset; copy it to keep it.
func (d *Decoder) Recovered() ([]byte, bool) {
	for d.outLen > 0 {
		p := d.out[d.outHead]
		d.outHead = (d.outHead + 1) % len(d.out)
		d.outLen--
		if sl := d.slot(p); d.started && d.inWindow(p) && sl.seq == p && sl.state == stRecovered {
			return sl.buf, true
		}
	}
	return nil, false
}
