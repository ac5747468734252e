package st2110

import (
	"encoding/binary"
	"fmt"
)

// DefaultPayload is the UDP payload size a Packetizer fills by default: ST 2110-10's standard
// limit of 1460 bytes less nothing (the RTP header is inside it).
const DefaultPayload = 1460

// Packetizer cuts frames into RFC 4175 packets (2110GPM) the way GStreamer's rtpvrawpay and
// MTL do: each packet is filled with as many segments as fit, a segment never crosses a line,
// a line continues in the next packet at the pixel where the last one stopped, and the marker
// is set on the last packet of a frame (of each field when interlaced). It allocates nothing.
type Packetizer struct {
	v          Video
	stride     int
	rows       int // pixel-group lines per field
	maxPayload int
	pt         uint8
	ssrc       uint32
	seq        uint32 // extended

	frame []byte
	ts    uint32
	field int
	row   int // pixel-group line in the field
	pix   int // pixel offset in the line
	done  bool
	segs  [maxSRD]seg
}

// seg is one segment of the packet being built.
type seg struct{ row, pix, n int }

// PacketizerConfig configures a Packetizer.
type PacketizerConfig struct {
	Video       *Video
	PayloadType uint8
	SSRC        uint32
	// FirstSeq is the extended sequence number of the first packet.
	FirstSeq uint32
	// MaxPacket is the largest RTP packet (header included) in bytes; default DefaultPayload.
	MaxPacket int
}

// NewPacketizer checks cfg.
func NewPacketizer(cfg PacketizerConfig) (*Packetizer, error) {
	v, err := withPGroup(cfg.Video, "packetizer")
	if err != nil {
		return nil, err
	}
	if v.Interlace && v.PGroup.Lines != 1 {
		return nil, fmt.Errorf("st2110 packetizer: interlaced %s is not supported", v.Sampling)
	}
	if cfg.MaxPacket == 0 {
		cfg.MaxPacket = DefaultPayload
	}
	if cfg.MaxPacket < 12+2+6+v.PGroup.Bytes || cfg.MaxPacket > 9000 {
		return nil, fmt.Errorf("st2110 packetizer: packet size %d out of range", cfg.MaxPacket)
	}
	p := &Packetizer{v: v, stride: v.Stride(), maxPayload: cfg.MaxPacket, pt: cfg.PayloadType & 0x7f, ssrc: cfg.SSRC, seq: cfg.FirstSeq, done: true}
	p.rows = v.Height / v.PGroup.Lines
	if v.Interlace {
		p.rows /= 2
	}
	return p, nil
}

// Begin starts a frame (RFC 4175 pixel-group order, v.FrameSize() bytes) with RTP timestamp ts.
func (p *Packetizer) Begin(frame []byte, ts uint32) error {
	if len(frame) != p.v.FrameSize() {
		return fmt.Errorf("st2110 packetizer: frame of %d bytes, want %d", len(frame), p.v.FrameSize())
	}
	p.frame, p.ts, p.field, p.row, p.pix, p.done = frame, ts, 0, 0, 0, false
	return nil
}

// SetTimestamp changes the RTP timestamp of the packets still to come (the second field of an
// interlaced frame has its own).
func (p *Packetizer) SetTimestamp(ts uint32) { p.ts = ts }

// Field is the field the next packet belongs to (0 when progressive).
func (p *Packetizer) Field() int { return p.field }

// Done reports whether the frame has been sent whole.
func (p *Packetizer) Done() bool { return p.done }

// PacketsPerFrame is how many packets a frame takes.
func (p *Packetizer) PacketsPerFrame() int {
	save := *p
	defer func() { *p = save }()
	var buf [9000]byte
	p.frame, p.field, p.row, p.pix, p.done = make([]byte, p.v.FrameSize()), 0, 0, 0, false
	n := 0
	for !p.done {
		p.Next(buf[:])
		n++
	}
	return n
}

// Next writes the frame's next packet into buf (at least the configured packet size) and returns
// its length; 0 once the frame is done.
func (p *Packetizer) Next(buf []byte) int {
	if p.done {
		return 0
	}
	pg := p.v.PGroup
	max := min(p.maxPayload, len(buf))
	// First the segments: how many fit, each within one line.
	segs := &p.segs
	ns, room := 0, max-12-2
	row, pix := p.row, p.pix
	marker := false
	for ns < maxSRD && room >= 6+pg.Bytes {
		room -= 6
		left := (p.v.Width - pix) / pg.Pixels * pg.Bytes
		n := min(left, room/pg.Bytes*pg.Bytes)
		segs[ns] = seg{row, pix, n}
		ns++
		room -= n
		pix += n / pg.Bytes * pg.Pixels
		if pix == p.v.Width {
			pix = 0
			row++
			if row == p.rows {
				marker = true
				break
			}
		}
	}
	b := buf[:max]
	b[0] = 0x80
	b[1] = p.pt
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], uint16(p.seq))
	binary.BigEndian.PutUint32(b[4:], p.ts)
	binary.BigEndian.PutUint32(b[8:], p.ssrc)
	binary.BigEndian.PutUint16(b[12:], uint16(p.seq>>16))
	p.seq++
	h := 14
	d := h + 6*ns
	for i, s := range segs[:ns] {
		binary.BigEndian.PutUint16(b[h:], uint16(s.n))
		binary.BigEndian.PutUint16(b[h+2:], uint16(p.field)<<15|uint16(s.row*pg.Lines))
		c := uint16(s.pix)
		if i < ns-1 {
			c |= 0x8000
		}
		binary.BigEndian.PutUint16(b[h+4:], c)
		h += 6
		fr := s.row
		if p.v.Interlace {
			fr = fr*2 + p.field
		}
		at := fr*p.stride + s.pix/pg.Pixels*pg.Bytes
		d += copy(b[d:], p.frame[at:at+s.n])
	}
	p.row, p.pix = row, pix
	if marker {
		if p.v.Interlace && p.field == 0 {
			p.field, p.row, p.pix = 1, 0, 0
		} else {
			p.done = true
		}
	}
	return d
}
