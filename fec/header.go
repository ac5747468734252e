package fec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the headers in a FEC packet.
const (
	// RTPHeaderLen is the fixed RTP header of media and FEC packets.  FEC
	// packets never carry a CSRC list or extension: their CC and X bits are
	// recovery values.
	RTPHeaderLen = 12
	// HeaderLen is the FEC header that follows the FEC packet's RTP header.
	HeaderLen = 16
	// PacketOverhead is what a FEC packet adds to the bytes it protects.
	PacketOverhead = RTPHeaderLen + HeaderLen
)

// Matrix limits of SMPTE 2022-1 (CoP3 r2).
const (
	// MaxColumns is the largest L.
	MaxColumns = 20
	// MinColumns2D is the smallest L when row FEC is sent (also the
	// smallest row length a row FEC packet may announce).
	MinColumns2D = 4
	// MinRows and MaxRows bound D.
	MinRows = 4
	MaxRows = 20
	// MaxMatrix bounds L×D.
	MaxMatrix = 100
)

// maxMediaLen keeps the FEC packet for a media packet inside one UDP/IPv4
// datagram (65507 bytes).
const maxMediaLen = 65507 - HeaderLen

// Kind tells a column FEC packet from a row FEC packet.  Its value is the
// FEC header's D bit.
type Kind uint8

const (
	// Column FEC protects D packets spaced L apart; sent to media port + 2.
	Column Kind = 0
	// Row FEC protects L consecutive packets; sent to media port + 4.
	Row Kind = 1
)

// String returns "column" or "row".
func (k Kind) String() string {
	switch k {
	case Column:
		return "column"
	case Row:
		return "row"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Errors returned by this package; match them with errors.Is.  The
// package returns ErrMalformed, ErrTooLarge and ErrConfig wrapped in an
// error that says precisely what is wrong ("fec: column FEC packet: L=25
// out of range 1..20"), ErrDuplicate as it is.
var (
	// ErrMalformed is wrapped by every error about a packet that does not
	// follow RTP or SMPTE 2022-1.
	ErrMalformed = errors.New("malformed packet")
	// ErrTooLarge is returned for a packet longer than the configured limit.
	ErrTooLarge = errors.New("packet too large")
	// ErrDuplicate is returned by Decoder.PushMedia for a media packet the
	// decoder already holds, received or recovered: it has been delivered
	// once already and should not be forwarded again.
	ErrDuplicate = errors.New("fec: duplicate media packet")
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("invalid config")
)

// fecError carries a precise message ("fec: column FEC packet: L=25 out of
// range 1..20") while matching one of the sentinel errors above.
type fecError struct {
	msg  string
	kind error
}

func (e *fecError) Error() string { return "fec: " + e.msg }
func (e *fecError) Unwrap() error { return e.kind }

func malformed(format string, args ...any) error {
	return &fecError{msg: fmt.Sprintf(format, args...), kind: ErrMalformed}
}

func tooLarge(format string, args ...any) error {
	return &fecError{msg: fmt.Sprintf(format, args...), kind: ErrTooLarge}
}

// Header is the 16-byte FEC header (RFC 2733 layout with the Pro-MPEG CoP3
// extension, as used by SMPTE 2022-1).  Field widths narrower than their Go
// type are masked when marshalled.
type Header struct {
	// SNBase is the sequence number of the first protected media packet.
	SNBase uint16
	// LengthRecovery is the XOR of the protected packets' lengths after
	// their 12-byte RTP headers (CSRCs, extension, payload and padding).
	LengthRecovery uint16
	// E is the extension flag; 2022-1 requires 1.
	E bool
	// PTRecovery is the XOR of the protected payload types (7 bits).
	PTRecovery uint8
	// Mask is unused by 2022-1 and must be 0 (24 bits).
	Mask uint32
	// TSRecovery is the XOR of the protected RTP timestamps.
	TSRecovery uint32
	// N (called X in some texts) announces a further header extension;
	// 2022-1 requires 0.
	N bool
	// Kind is the D bit: Column (0) or Row (1).
	Kind Kind
	// Type is the FEC algorithm (3 bits); 0 = XOR is the only one defined.
	Type uint8
	// Index is 0 for XOR (3 bits).
	Index uint8
	// Offset is the distance between protected packets: L for column FEC,
	// 1 for row FEC.
	Offset uint8
	// NA is the number of protected packets: D for column FEC, L for row
	// FEC.
	NA uint8
	// SNBaseExt holds sequence number bits above 16; 0 for RTP, ignored.
	SNBaseExt uint8
}

// ParseHeader reads a FEC header from the first HeaderLen bytes of b.  It
// only fails when b is short; use Validate for the 2022-1 rules.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, malformed("FEC header: %d bytes, need %d", len(b), HeaderLen)
	}
	return Header{
		SNBase:         binary.BigEndian.Uint16(b[0:]),
		LengthRecovery: binary.BigEndian.Uint16(b[2:]),
		E:              b[4]&0x80 != 0,
		PTRecovery:     b[4] & 0x7f,
		Mask:           uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]),
		TSRecovery:     binary.BigEndian.Uint32(b[8:]),
		N:              b[12]&0x80 != 0,
		Kind:           Kind(b[12] >> 6 & 1),
		Type:           b[12] >> 3 & 7,
		Index:          b[12] & 7,
		Offset:         b[13],
		NA:             b[14],
		SNBaseExt:      b[15],
	}, nil
}

// MarshalTo writes h into the first HeaderLen bytes of b and returns
// HeaderLen.
func (h Header) MarshalTo(b []byte) (int, error) {
	if len(b) < HeaderLen {
		return 0, fmt.Errorf("fec: marshal FEC header: buffer of %d bytes, need %d", len(b), HeaderLen)
	}
	binary.BigEndian.PutUint16(b[0:], h.SNBase)
	binary.BigEndian.PutUint16(b[2:], h.LengthRecovery)
	b[4] = bit(h.E, 7) | h.PTRecovery&0x7f
	b[5], b[6], b[7] = byte(h.Mask>>16), byte(h.Mask>>8), byte(h.Mask)
	binary.BigEndian.PutUint32(b[8:], h.TSRecovery)
	b[12] = bit(h.N, 7) | byte(h.Kind&1)<<6 | (h.Type&7)<<3 | h.Index&7
	b[13] = h.Offset
	b[14] = h.NA
	b[15] = h.SNBaseExt
	return HeaderLen, nil
}

func bit(v bool, n uint) byte {
	if v {
		return 1 << n
	}
	return 0
}

// Validate checks h against SMPTE 2022-1: E=1, N=0, XOR type with index
// 0, mask 0, and a matrix inside the standard's limits (column: offset
// L 1..20, NA D 4..20, L×D ≤ 100; row: offset 1, NA L 4..20).
func (h Header) Validate() error {
	if !h.E {
		return malformed("%s FEC packet: E bit is 0, SMPTE 2022-1 requires 1", h.Kind)
	}
	if h.N {
		return malformed("%s FEC packet: N bit (header extension) is 1, SMPTE 2022-1 requires 0", h.Kind)
	}
	if h.Type != 0 {
		return malformed("%s FEC packet: type %d unsupported, only 0 (XOR)", h.Kind, h.Type)
	}
	if h.Index != 0 {
		return malformed("%s FEC packet: index %d, XOR requires 0", h.Kind, h.Index)
	}
	if h.Mask != 0 {
		return malformed("%s FEC packet: mask %#06x, SMPTE 2022-1 requires 0", h.Kind, h.Mask)
	}
	switch h.Kind {
	case Column:
		l, d := int(h.Offset), int(h.NA)
		if l < 1 || l > MaxColumns {
			return malformed("column FEC packet: L=%d out of range 1..%d", l, MaxColumns)
		}
		if d < MinRows || d > MaxRows {
			return malformed("column FEC packet: D=%d out of range %d..%d", d, MinRows, MaxRows)
		}
		if l*d > MaxMatrix {
			return malformed("column FEC packet: L×D=%d×%d=%d exceeds %d", l, d, l*d, MaxMatrix)
		}
	case Row:
		if h.Offset != 1 {
			return malformed("row FEC packet: offset %d, must be 1", h.Offset)
		}
		if l := int(h.NA); l < MinColumns2D || l > MaxColumns {
			return malformed("row FEC packet: L=%d out of range %d..%d", l, MinColumns2D, MaxColumns)
		}
	default:
		return malformed("FEC packet: kind %d is neither column (0) nor row (1)", uint8(h.Kind))
	}
	return nil
}

// span is the distance from the first to the last protected packet.
func (h Header) span() int { return (int(h.NA) - 1) * int(h.Offset) }

// Packet is a parsed FEC packet.  Payload aliases the parsed bytes.
type Packet struct {
	// RTP header of the FEC stream itself.
	PayloadType    uint8
	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	// Recovery bits carried in the FEC packet's RTP header: the XOR of the
	// protected packets' P, X, CC and M fields.
	PaddingRecovery   bool
	ExtensionRecovery bool
	CSRCCountRecovery uint8
	MarkerRecovery    bool

	Header Header
	// Payload is the XOR of the protected packets' bytes after their
	// 12-byte RTP headers, zero-extended to the longest.
	Payload []byte
}

// ParsePacket parses and validates a FEC packet (RTP header, FEC header,
// payload).  The RTP header is read as exactly 12 bytes whatever its CC
// and X bits say, since those are recovery values.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < PacketOverhead {
		return Packet{}, malformed("FEC packet: %d bytes, need at least %d (12-byte RTP header + 16-byte FEC header)", len(b), PacketOverhead)
	}
	if v := b[0] >> 6; v != 2 {
		return Packet{}, malformed("FEC packet: RTP version %d, want 2", v)
	}
	h, _ := ParseHeader(b[RTPHeaderLen:])
	if err := h.Validate(); err != nil {
		return Packet{}, err
	}
	return Packet{
		PayloadType:       b[1] & 0x7f,
		SequenceNumber:    binary.BigEndian.Uint16(b[2:]),
		Timestamp:         binary.BigEndian.Uint32(b[4:]),
		SSRC:              binary.BigEndian.Uint32(b[8:]),
		PaddingRecovery:   b[0]&0x20 != 0,
		ExtensionRecovery: b[0]&0x10 != 0,
		CSRCCountRecovery: b[0] & 0x0f,
		MarkerRecovery:    b[1]&0x80 != 0,
		Header:            h,
		Payload:           b[PacketOverhead:],
	}, nil
}

// checkMedia is the minimal check for a media packet: the package treats
// everything after the fixed header as opaque bytes.
func checkMedia(pkt []byte) error {
	if len(pkt) < RTPHeaderLen {
		return malformed("media packet: %d bytes, need at least %d", len(pkt), RTPHeaderLen)
	}
	if v := pkt[0] >> 6; v != 2 {
		return malformed("media packet: RTP version %d, want 2", v)
	}
	return nil
}

// validRTP reports whether a rebuilt packet's CSRC count, extension and
// padding fit its length; a recovery that fails this was fed inconsistent
// packets and must not be delivered.
func validRTP(p []byte) bool {
	n := RTPHeaderLen + 4*int(p[0]&0x0f)
	if n > len(p) {
		return false
	}
	if p[0]&0x10 != 0 {
		if n+4 > len(p) {
			return false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(p[n+2:]))
		if n > len(p) {
			return false
		}
	}
	if p[0]&0x20 != 0 {
		pad := int(p[len(p)-1])
		if pad == 0 || n+pad > len(p) {
			return false
		}
	}
	return true
}
