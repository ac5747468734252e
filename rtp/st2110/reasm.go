package st2110

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultFrames is the pool size of a Reassembler when its config names none: one frame being
// filled, one with the sink, and slack for a sink a frame behind.
const DefaultFrames = 4

// maxSRD bounds the sample row data headers of one packet. A 1460-byte payload of the shortest
// legal segments (one 3-byte pixel group each) holds fewer.
const maxSRD = 256

// ReassemblerConfig configures a Reassembler.
type ReassemblerConfig struct {
	// Video is the flow's format (from ParseSDP).
	Video *Video
	// Frames is the number of pooled frame buffers (default DefaultFrames).
	Frames int
	// Sink receives finished frames; nil releases them at once (the reassembler then only
	// counts).
	Sink FrameSink
	// Incomplete passes incomplete frames to the sink too (Frame.Complete false).
	Incomplete bool
	// Now is the clock for arrival times (default time.Now).
	Now func() time.Time
}

// ReassemblerStats are a Reassembler's counters.
type ReassemblerStats struct {
	// Packets and Bytes (RTP payload) written.
	Packets, Bytes uint64
	// Frames finished complete; Incomplete finished with bytes missing or a sequence gap.
	Frames, Incomplete uint64
	// Late packets belong to a frame already finished (or older), or repeat a sequence number;
	// LateFrames counts the frames (RTP timestamps) such packets belonged to.
	Late, LateFrames uint64
	// Lost sequence numbers never seen.
	Lost uint64
	// Malformed packets were not RTP, or had an SRD that does not fit the frame (line beyond
	// the height, offset or length beyond the width, length beyond the payload, not whole
	// pixel groups); they are dropped whole.
	Malformed uint64
	// NoBuffer frames were skipped because the sink held every pooled buffer.
	NoBuffer uint64
}

// Reassembler turns the RFC 4175 packets of one ST 2110-20 flow, in sequence order (after the
// 2022-7 merge), into whole frames. WriteRTP is called from one goroutine at a time and
// allocates nothing; Stats may be called from any goroutine.
type Reassembler struct {
	cfg    ReassemblerConfig
	v      Video
	pool   *FramePool
	stride int
	rows   int // pixel-group lines per field (per frame when progressive)
	size   int

	cur      *Frame
	skipping bool // dropping a frame that found no buffer
	skipTS   uint32
	doneTS   uint32 // timestamp of the last frame finished or skipped
	haveDone bool
	haveSeq  bool
	lastSeq  uint32 // extended
	counter  uint64
	srd      [maxSRD]srd

	lateTS   uint32 // timestamp of the last late packet
	haveLate bool

	packets, bytes, frames, incomplete, late, lateFrames, lost, malformed, noBuffer atomic.Uint64
}

// srd is one sample row data header, checked.
type srd struct {
	dst, n int // where in the frame, how many bytes
	field  uint8
}

// NewReassembler allocates the frame pool for cfg.Video.
func NewReassembler(cfg ReassemblerConfig) (*Reassembler, error) {
	v, err := withPGroup(cfg.Video, "reassembler")
	if err != nil {
		return nil, err
	}
	if v.Width <= 0 || v.Height <= 0 || v.Width >= maxWidth || v.Height >= maxHeight || v.Width%v.PGroup.Pixels != 0 || v.Height%v.PGroup.Lines != 0 {
		return nil, fmt.Errorf("st2110 reassembler: %d×%d does not fit %s %d-bit pixel groups", v.Width, v.Height, v.Sampling, v.Depth)
	}
	if v.Interlace && (v.PGroup.Lines != 1 || v.Height%2 != 0) {
		return nil, fmt.Errorf("st2110 reassembler: interlaced %s %d×%d is not supported", v.Sampling, v.Width, v.Height)
	}
	if cfg.Frames <= 0 {
		cfg.Frames = DefaultFrames
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Reassembler{cfg: cfg, v: v, stride: v.Stride(), size: v.FrameSize()}
	r.rows = v.Height / v.PGroup.Lines
	if v.Interlace {
		r.rows /= 2
	}
	if r.size > maxFrameSz {
		return nil, fmt.Errorf("st2110 reassembler: %d-byte frames are too large", r.size)
	}
	r.pool = NewFramePool(cfg.Frames, r.size)
	return r, nil
}

// Pool is the reassembler's frame pool.
func (r *Reassembler) Pool() *FramePool { return r.pool }

// FrameSize is the bytes of one frame.
func (r *Reassembler) FrameSize() int { return r.size }

// WriteRTP takes one RTP packet of the flow. The bytes are copied into the frame; b may be
// reused when it returns.
func (r *Reassembler) WriteRTP(b []byte) {
	r.packets.Add(1)
	if len(b) < 12 || b[0]>>6 != 2 {
		r.malformed.Add(1)
		return
	}
	marker := b[1]&0x80 != 0
	seq16 := binary.BigEndian.Uint16(b[2:])
	ts := binary.BigEndian.Uint32(b[4:])
	hl := 12 + 4*int(b[0]&0x0f)
	end := len(b)
	if b[0]&0x20 != 0 { // padding
		if end <= hl || int(b[end-1]) > end-hl {
			r.malformed.Add(1)
			return
		}
		end -= int(b[end-1])
	}
	if b[0]&0x10 != 0 { // header extension
		if end < hl+4 {
			r.malformed.Add(1)
			return
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(b[hl+2:]))
	}
	if end < hl+8 {
		r.malformed.Add(1)
		return
	}
	p := b[hl:end]
	r.bytes.Add(uint64(len(p)))
	seq := r.extend(uint32(binary.BigEndian.Uint16(p))<<16 | uint32(seq16))
	n, ok := r.parseSRD(p)
	if !ok {
		r.malformed.Add(1)
		return
	}
	// Sequence: a repeat or an older packet is late; a jump forward is loss.
	lossy := false
	if r.haveSeq {
		d := int32(seq - r.lastSeq)
		if d <= 0 {
			r.lateAt(ts)
			return
		}
		if d > 1 {
			r.lost.Add(uint64(d - 1))
			lossy = true
		}
	}
	r.haveSeq, r.lastSeq = true, seq
	field := r.srd[0].field
	f := r.frameFor(ts, field, seq)
	if f == nil {
		return
	}
	if f.Packets == 0 {
		// a frame that does not start at its first pixel lost its head (a gap before it
		// otherwise took the previous frame's tail, which finished incomplete)
		f.lossy = r.srd[0].dst != 0
	} else if lossy {
		f.lossy = true
	}
	data := p[2+6*n:]
	for _, s := range r.srd[:n] {
		copy(f.Data[s.dst:s.dst+s.n], data[:s.n])
		data = data[s.n:]
		f.Bytes += s.n
		f.fields |= 1 << s.field
	}
	f.Packets++
	if marker && (!r.v.Interlace || field == 1) {
		r.finish(f)
	}
}

// extend widens a sequence number whose ESN a sender left 0 (ffmpeg and GStreamer do) by
// counting 16-bit wraps, so it compares with the last one.
func (r *Reassembler) extend(seq uint32) uint32 {
	if !r.haveSeq || seq>>16 != 0 {
		return seq
	}
	// ESN 0: take the 32-bit value nearest the last one with these low 16 bits
	c := r.lastSeq&^0xffff | seq
	switch d := int32(c - r.lastSeq); {
	case d < -0x8000:
		c += 0x10000
	case d > 0x8000:
		c -= 0x10000
	}
	return c
}

// parseSRD reads and checks the SRD headers of payload p into r.srd; false if one does not fit.
func (r *Reassembler) parseSRD(p []byte) (int, bool) {
	pg := r.v.PGroup
	off, n, total := 2, 0, 0
	for {
		if n == maxSRD || off+6 > len(p) {
			return 0, false
		}
		length := int(binary.BigEndian.Uint16(p[off:]))
		fl := binary.BigEndian.Uint16(p[off+2:])
		co := binary.BigEndian.Uint16(p[off+4:])
		off += 6
		field, line, pix := uint8(fl>>15), int(fl&0x7fff), int(co&0x7fff)
		if length == 0 || length%pg.Bytes != 0 || pix%pg.Pixels != 0 || line%pg.Lines != 0 {
			return 0, false
		}
		row := line / pg.Lines
		if row >= r.rows || pix+length/pg.Bytes*pg.Pixels > r.v.Width || (field == 1 && !r.v.Interlace) {
			return 0, false
		}
		if r.v.Interlace {
			row = row*2 + int(field)
		}
		total += length
		r.srd[n] = srd{dst: row*r.stride + pix/pg.Pixels*pg.Bytes, n: length, field: field}
		n++
		if co&0x8000 == 0 {
			break
		}
	}
	if off+total > len(p) {
		return 0, false
	}
	return n, true
}

// frameFor returns the frame a packet of timestamp ts belongs to, finishing or starting frames
// as the timestamp moves; nil drops the packet (late, or its frame has no buffer).
func (r *Reassembler) frameFor(ts uint32, field uint8, seq uint32) *Frame {
	if f := r.cur; f != nil {
		if ts == f.Timestamp || (f.fields&2 != 0 && ts == f.ts2) {
			return f
		}
		// an interlaced frame's second field has its own timestamp
		if r.v.Interlace && field == 1 && f.fields == 1 && int32(ts-f.Timestamp) > 0 {
			f.ts2 = ts
			return f
		}
		if int32(ts-f.Timestamp) < 0 {
			r.lateAt(ts)
			return nil
		}
		r.finish(f) // its marker never came
	}
	if r.skipping {
		if ts == r.skipTS || (r.v.Interlace && field == 1 && int32(ts-r.skipTS) > 0 && int32(ts-r.skipTS) < 90000) {
			return nil
		}
		r.skipping = false
	}
	if r.haveDone && int32(ts-r.doneTS) <= 0 {
		if !(r.v.Interlace && field == 1 && ts != r.doneTS) {
			r.lateAt(ts)
			return nil
		}
	}
	r.counter++
	f := r.pool.get()
	if f == nil {
		r.noBuffer.Add(1)
		r.skipping, r.skipTS = true, ts
		r.haveDone, r.doneTS = true, ts
		return nil
	}
	f.Width, f.Height, f.Sampling, f.Depth, f.Stride, f.Interlaced = r.v.Width, r.v.Height, r.v.Sampling, r.v.Depth, r.stride, r.v.Interlace
	f.Timestamp, f.FirstSeq, f.Counter = ts, seq, r.counter
	f.Packets, f.Bytes, f.Complete, f.fields, f.lossy = 0, 0, false, 0, false
	f.First = r.cfg.Now()
	r.cur = f
	return f
}

// lateAt counts a late packet of timestamp ts, and its frame when it is the first late one of it.
func (r *Reassembler) lateAt(ts uint32) {
	r.late.Add(1)
	if !r.haveLate || ts != r.lateTS {
		r.lateFrames.Add(1)
		r.haveLate, r.lateTS = true, ts
	}
}

// finish hands the current frame out.
func (r *Reassembler) finish(f *Frame) {
	r.cur = nil
	r.haveDone, r.doneTS = true, f.Timestamp
	if f.fields&2 != 0 {
		r.doneTS = f.ts2
	}
	f.Last = r.cfg.Now()
	f.Complete = !f.lossy && f.Bytes == r.size
	if f.Complete {
		r.frames.Add(1)
	} else {
		r.incomplete.Add(1)
	}
	if r.cfg.Sink != nil && (f.Complete || r.cfg.Incomplete) {
		r.cfg.Sink.WriteFrame(f)
		return
	}
	f.Release()
}

// Flush finishes the frame being filled (at the end of a stream: its marker will not come).
func (r *Reassembler) Flush() {
	if r.cur != nil {
		r.finish(r.cur)
	}
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblerStats {
	return ReassemblerStats{
		Packets: r.packets.Load(), Bytes: r.bytes.Load(), Frames: r.frames.Load(), Incomplete: r.incomplete.Load(),
		Late: r.late.Load(), LateFrames: r.lateFrames.Load(), Lost: r.lost.Load(), Malformed: r.malformed.Load(), NoBuffer: r.noBuffer.Load(),
	}
}
