package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ReportBlock is one reception report block of an RTCP SR or RR (RFC 3550 §6.4.1): what a
// receiver says about the source SSRC.
type ReportBlock struct {
	SSRC           uint32
	FractionLost   uint8 // of 256, since the previous report
	CumulativeLost int32 // 24-bit signed
	HighestSeq     uint32
	Jitter         uint32 // in RTP timestamp units
	LSR, DLSR      uint32 // middle 32 bits of the last SR's NTP time; delay since it, 1/65536 s
}

// ReportBlocks walks the report blocks of the SRs and RRs in a compound RTCP packet without
// allocating (pion/rtcp's Unmarshal builds a slice of packets per call; this runs for every RTCP
// datagram a reader sends). Hand-written for that reason; FuzzReportBlocks holds it against
// pion's parse.
type ReportBlocks struct {
	b     []byte
	off   int // start of the current RTCP packet
	end   int // its end
	next  int // next report block in it
	left  int // report blocks left in it
	first bool
	err   error
}

// NewReportBlocks starts a walk over compound RTCP packet b.
func NewReportBlocks(b []byte) ReportBlocks { return ReportBlocks{b: b, first: true} }

// Err reports why the walk stopped early; nil when it reached the end.
func (r *ReportBlocks) Err() error { return r.err }

// Next returns the next report block; false at the end or at the first malformed packet
// (see Err).
func (r *ReportBlocks) Next() (ReportBlock, bool) {
	for r.left == 0 {
		if !r.first {
			r.off = r.end
		}
		r.first = false
		if r.off >= len(r.b) || r.err != nil {
			return ReportBlock{}, false
		}
		if !r.header() {
			return ReportBlock{}, false
		}
	}
	p := r.b[r.next:]
	blk := ReportBlock{
		SSRC:           binary.BigEndian.Uint32(p),
		FractionLost:   p[4],
		CumulativeLost: int32(uint32(p[5])<<24|uint32(p[6])<<16|uint32(p[7])<<8) >> 8,
		HighestSeq:     binary.BigEndian.Uint32(p[8:]),
		Jitter:         binary.BigEndian.Uint32(p[12:]),
		LSR:            binary.BigEndian.Uint32(p[16:]),
		DLSR:           binary.BigEndian.Uint32(p[20:]),
	}
	r.next += reportBlockLen
	r.left--
	return blk, true
}

const reportBlockLen = 24

// header reads the RTCP packet at r.off and positions the walk on its report blocks.
func (r *ReportBlocks) header() bool {
	b := r.b[r.off:]
	if len(b) < 4 {
		r.err = errors.New("rtcp: truncated header")
		return false
	}
	if b[0]>>6 != 2 {
		r.err = fmt.Errorf("rtcp: version %d", b[0]>>6)
		return false
	}
	n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
	if n > len(b) {
		r.err = fmt.Errorf("rtcp: packet of %d bytes in %d", n, len(b))
		return false
	}
	r.end = r.off + n
	count := int(b[0] & 0x1f)
	var blocks int
	switch b[1] {
	case 200: // SR: sender SSRC, then 20 bytes of sender info
		blocks = 8 + 20
	case 201: // RR: sender SSRC
		blocks = 8
	default:
		r.left = 0
		return true
	}
	pad := 0
	if b[0]&0x20 != 0 {
		pad = int(b[n-1])
	}
	if blocks+count*reportBlockLen > n-pad {
		r.err = fmt.Errorf("rtcp: %d report blocks do not fit in %d bytes", count, n-pad)
		return false
	}
	r.next, r.left = r.off+blocks, count
	return true
}

// ReceptionStats is what a reader's RTCP receiver reports say about the line a sink sends it
// (RFC 3550 §6.4): loss, jitter and the round-trip time.
type ReceptionStats struct {
	Reports        uint64  // report blocks about the sink's line
	FractionLost   float64 // 0..1, in the last report
	CumulativeLost int64   // packets the reader misses in all, by the last report
	HighestSeq     uint32  // extended highest sequence number the reader got
	// Jitter is the interarrival jitter of the last report.
	Jitter time.Duration
	// RTT is from the last report that echoed a sender report of ours; 0 while unknown.
	RTT  time.Duration
	Last time.Time // when the last report arrived
}

// Note takes one report block about a line of clock rate hz, arrived at now (monotonic, see
// Now); sentAt finds when the sender report it echoes (LSR) left, if it was ours.
func (s *ReceptionStats) Note(b ReportBlock, hz uint32, now int64, sentAt func(lsr uint32) (int64, bool)) {
	s.Reports++
	s.FractionLost = float64(b.FractionLost) / 256
	s.CumulativeLost = int64(b.CumulativeLost)
	s.HighestSeq = b.HighestSeq
	if hz > 0 {
		s.Jitter = time.Duration(int64(b.Jitter) * int64(time.Second) / int64(hz))
	}
	if b.LSR != 0 && sentAt != nil {
		if at, ok := sentAt(b.LSR); ok {
			dlsr := int64(b.DLSR) * int64(time.Second) >> 16
			if rtt := now - at - dlsr; rtt >= 0 {
				s.RTT = time.Duration(rtt)
			}
		}
	}
	s.Last = time.Now()
}

// AppendReceiverReport appends an RTCP RR from reporter carrying blk, followed by the SDES CNAME
// chunk RFC 3550 §6.1 asks every compound packet to carry, without allocating beyond dst's
// growth.
func AppendReceiverReport(dst []byte, reporter uint32, cname string, blk ReportBlock) []byte {
	if len(cname) > 255 {
		cname = cname[:255]
	}
	dst = append(dst, 0x81, 201, 0, 7)
	dst = binary.BigEndian.AppendUint32(dst, reporter)
	dst = binary.BigEndian.AppendUint32(dst, blk.SSRC)
	lost := uint32(blk.CumulativeLost) & 0xffffff
	dst = append(dst, blk.FractionLost, byte(lost>>16), byte(lost>>8), byte(lost))
	dst = binary.BigEndian.AppendUint32(dst, blk.HighestSeq)
	dst = binary.BigEndian.AppendUint32(dst, blk.Jitter)
	dst = binary.BigEndian.AppendUint32(dst, blk.LSR)
	dst = binary.BigEndian.AppendUint32(dst, blk.DLSR)
	// SDES: one chunk (SSRC, CNAME item, end), padded to 32 bits
	chunk := 4 + 2 + len(cname) + 1
	chunk = (chunk + 3) &^ 3
	dst = append(dst, 0x81, 202)
	dst = binary.BigEndian.AppendUint16(dst, uint16((4+chunk)/4-1))
	dst = binary.BigEndian.AppendUint32(dst, reporter)
	dst = append(dst, 1, byte(len(cname)))
	dst = append(dst, cname...)
	for n := 4 + 2 + len(cname); n < chunk; n++ {
		dst = append(dst, 0)
	}
	return dst
}
