package fec

import (
	"crypto/subtle"
	"encoding/binary"
)

// group accumulates the XOR of one row's or one column's media packets,
// directly inside the FEC packet it will become.
type group struct {
	// buf is the FEC packet: RTP header, FEC header, then the XOR payload.
	buf    []byte
	plen   int // XOR payload length so far: the longest member's
	n      int // members added
	snBase uint16
	lenRec uint16
	b0, b1 byte // XOR of the members' first two header bytes (P X CC, M PT)
	ts     uint32
	ready  bool // finished, waiting to be emitted
}

func (g *group) reset() { g.n, g.plen, g.ready = 0, 0, false }

func (g *group) add(pkt []byte) {
	body := pkt[RTPHeaderLen:]
	seq := binary.BigEndian.Uint16(pkt[2:])
	ts := binary.BigEndian.Uint32(pkt[4:])
	if g.n == 0 {
		g.buf = growKeep(g.buf, PacketOverhead+len(body))
		copy(g.buf[PacketOverhead:], body)
		g.plen = len(body)
		g.snBase, g.lenRec, g.b0, g.b1, g.ts = seq, uint16(len(body)), pkt[0], pkt[1], ts
		g.n = 1
		return
	}
	if len(body) > g.plen {
		// Shorter members count as zero-padded, so the new tail starts as
		// zeros before this member is XORed in.
		g.buf = growKeep(g.buf, PacketOverhead+len(body))
		clear(g.buf[PacketOverhead+g.plen : PacketOverhead+len(body)])
		g.plen = len(body)
	}
	dst := g.buf[PacketOverhead : PacketOverhead+len(body)]
	subtle.XORBytes(dst, dst, body)
	g.lenRec ^= uint16(len(body))
	g.b0 ^= pkt[0]
	g.b1 ^= pkt[1]
	g.ts ^= ts
	g.n++
}

// finish writes the FEC header; the RTP sequence number and timestamp are
// only known when the packet is emitted.
func (g *group) finish(kind Kind, offset, na int, pt uint8, ssrc uint32) {
	g.buf = g.buf[:PacketOverhead+g.plen]
	g.buf[0] = 0x80 | g.b0&0x3f
	g.buf[1] = g.b1&0x80 | pt
	binary.BigEndian.PutUint32(g.buf[8:], ssrc)
	h := Header{
		SNBase:         g.snBase,
		LengthRecovery: g.lenRec,
		E:              true,
		PTRecovery:     g.b1 & 0x7f,
		TSRecovery:     g.ts,
		Kind:           kind,
		Offset:         uint8(offset),
		NA:             uint8(na),
	}
	_, _ = h.MarshalTo(g.buf[RTPHeaderLen:])
	g.ready = true
}

func (g *group) stamp(seq uint16, ts uint32) []byte {
	binary.BigEndian.PutUint16(g.buf[2:], seq)
	binary.BigEndian.PutUint32(g.buf[4:], ts)
	g.ready = false
	return g.buf
}

// growKeep returns b resized to n bytes, keeping its contents; it allocates
// only when the capacity is short, so buffers settle at the stream's
// largest packet.
func growKeep(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, n+n/4)
	copy(nb, b)
	return nb
}

// EncoderStats counts what an Encoder did.
type EncoderStats struct {
	// Media is the number of media packets protected.
	Media uint64
	// ColumnFEC and RowFEC are the FEC packets emitted per stream.
	ColumnFEC, RowFEC uint64
	// Restarts counts matrices abandoned because the media sequence number
	// jumped or the SSRC changed (their complete columns are still sent).
	Restarts uint64
}

// Encoder produces the column and row FEC streams for one media stream.
//
// Row FEC for a row is emitted by the Push of the row's last packet.  Column
// FEC is staggered as FFmpeg's prompeg and GStreamer's rtpst2022-1-fecenc
// do, so a burst that hits the media cannot also take out the FEC that
// repairs it: column c of matrix k is emitted by the Push of packet c×D of
// matrix k+1, i.e. one column FEC every D media packets.  The FEC packets'
// RTP timestamp is that of the media packet just pushed (as GStreamer does;
// receivers do not use it).
type Encoder struct {
	cfg          Config
	pt           uint8
	l, d, size   int
	rowOn, colOn bool

	row  group
	cols []group // accumulating in the current matrix
	pend []group // finished columns of the previous matrix

	started bool
	pos     int // position of the next packet in the matrix
	nextSeq uint16
	ssrc    uint32
	lastTS  uint32
	colSeq  uint16
	rowSeq  uint16
	stats   EncoderStats
}

// NewEncoder checks cfg against the 2022-1 limits of its mode and returns an
// encoder.
func NewEncoder(cfg Config) (*Encoder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Encoder{
		cfg:    cfg,
		pt:     cfg.PayloadType,
		l:      cfg.Columns,
		d:      cfg.Rows,
		rowOn:  cfg.Mode != ModeColumn,
		colOn:  cfg.Mode != ModeRow,
		colSeq: cfg.ColumnSeq,
		rowSeq: cfg.RowSeq,
	}
	if e.pt == 0 {
		e.pt = DefaultPayloadType
	}
	e.size = e.l
	if e.colOn {
		e.size = e.l * e.d
		e.cols = make([]group, e.l)
		e.pend = make([]group, e.l)
	}
	return e, nil
}

// Config returns the configuration the encoder was made with.
func (e *Encoder) Config() Config { return e.cfg }

// Stats returns the counters.
func (e *Encoder) Stats() EncoderStats { return e.stats }

// Push protects one media RTP packet.  Packets must be pushed in sequence
// order, consecutively numbered, from one SSRC; a jump or an SSRC change
// ends the current matrix (its finished columns are emitted first) and
// starts a new one with pkt.
//
// emit is called zero or more times, before Push returns, with each FEC
// packet that is due: kind says which stream (Column → media port + 2, Row
// → media port + 4).  Send the media packet before them, so that receivers
// see a row's packets before its FEC.  The fec slice belongs to the encoder
// and stays valid until the next call to Push, Flush or Reset.  A nil emit
// discards the FEC packets.
//
// Push fails only for a packet that is not RTP version 2 or too long for
// its FEC packet to fit a UDP datagram; such a packet is not protected and
// leaves the encoder's state unchanged.
func (e *Encoder) Push(pkt []byte, emit func(kind Kind, fec []byte)) error {
	if err := checkMedia(pkt); err != nil {
		return err
	}
	if len(pkt) > maxMediaLen {
		return tooLarge("media packet: %d bytes, FEC can protect at most %d", len(pkt), maxMediaLen)
	}
	if emit == nil {
		emit = discard
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	if e.started && (seq != e.nextSeq || ssrc != e.ssrc) {
		e.stats.Restarts++
		e.endMatrix(emit)
	}
	if !e.started {
		e.started = true
		e.ssrc = ssrc
		e.pos = 0
	}
	e.nextSeq = seq + 1
	e.lastTS = binary.BigEndian.Uint32(pkt[4:])
	e.stats.Media++

	col := e.pos % e.l
	if e.colOn && e.pos%e.d == 0 {
		if p := &e.pend[e.pos/e.d]; p.ready {
			e.emitColumn(p, emit)
		}
	}
	if e.rowOn {
		e.row.add(pkt)
		if col == e.l-1 {
			e.row.finish(Row, 1, e.l, e.pt, e.cfg.SSRC)
			e.stats.RowFEC++
			emit(Row, e.row.stamp(e.rowSeq, e.lastTS))
			e.rowSeq++
			e.row.reset()
		}
	}
	if e.colOn {
		c := &e.cols[col]
		c.add(pkt)
		if e.pos/e.l == e.d-1 {
			c.finish(Column, e.l, e.d, e.pt, e.cfg.SSRC)
			// The previous matrix's column col went out at position col×D,
			// before this one (col < L), so its buffer is free to swap in.
			e.cols[col], e.pend[col] = e.pend[col], e.cols[col]
			e.cols[col].reset()
		}
	}
	e.pos++
	if e.pos == e.size {
		e.pos = 0
	}
	return nil
}

func (e *Encoder) emitColumn(p *group, emit func(Kind, []byte)) {
	e.stats.ColumnFEC++
	emit(Column, p.stamp(e.colSeq, e.lastTS))
	e.colSeq++
}

// endMatrix sends the finished columns still waiting and forgets the
// partial rows and columns, which cannot be described by a 2022-1 header.
func (e *Encoder) endMatrix(emit func(Kind, []byte)) {
	for i := range e.pend {
		if e.pend[i].ready {
			e.emitColumn(&e.pend[i], emit)
		}
	}
	e.clear()
}

func (e *Encoder) clear() {
	e.row.reset()
	for i := range e.cols {
		e.cols[i].reset()
		e.pend[i].reset()
	}
	e.started = false
	e.pos = 0
}

func discard(Kind, []byte) {}

// Flush ends the stream: the column FEC packets of the last complete
// matrix, which would otherwise ride on the next matrix's media, are emitted
// now, and partial rows and columns are dropped.  The next Push starts a new
// matrix.  The emitted slices follow the rules of Push.
func (e *Encoder) Flush(emit func(kind Kind, fec []byte)) {
	if emit == nil {
		emit = discard
	}
	e.endMatrix(emit)
}

// Reset forgets all state without emitting anything; FEC sequence numbers
// continue where they were.
func (e *Encoder) Reset() { e.clear() }
