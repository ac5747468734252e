package nack

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Reader walks the generic NACKs (RTPFB, FMT 1) of a compound RTCP packet without
// allocating. Other packets are skipped; a malformed length ends the walk with an error.
type Reader struct {
	b     []byte
	fci   []byte // FCI entries left in the current NACK
	media uint32
	err   error
}

// NewReader returns a reader of the compound RTCP packet b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Next returns the next NACK entry: the media SSRC it is about, the lost sequence number and
// the bitmask of the 16 following ones also lost (RFC 4585 §6.2.1). ok is false at the end or
// at an error (Err).
func (r *Reader) Next() (media uint32, pid, blp uint16, ok bool) {
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

// Err is what ended the walk early: a malformed packet. nil after a complete walk.
func (r *Reader) Err() error { return r.err }

// Append appends one generic NACK packet (RFC 4585 §6.2.1) for fcis, already packed as
// PID/BLP entries (PID in the high 16 bits), from sender about the line of SSRC media.
func Append(b []byte, sender, media uint32, fcis []uint32) []byte {
	b = append(b, 0x81, 205, 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-2:], uint16(2+len(fcis)))
	b = binary.BigEndian.AppendUint32(b, sender)
	b = binary.BigEndian.AppendUint32(b, media)
	for _, f := range fcis {
		b = binary.BigEndian.AppendUint32(b, f)
	}
	return b
}
