package roq

import (
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

// ALPNs are the application protocols a RoQ endpoint offers, preferred first. The framing has
// not changed since draft -09, so the older drafts' tokens are accepted for peers that still
// announce them (PROTOCOLS: imquic uses roq-10, mengelbart/roq's examples roq-09).
var ALPNs = []string{"roq-14", "roq-12", "roq-10", "roq-09"}

// Application error codes of the draft (§7), for CONNECTION_CLOSE, RESET_STREAM and
// STOP_SENDING.
const (
	CodeNoError          = 0x00
	CodeGeneralError     = 0x01
	CodeInternalError    = 0x02
	CodePacketError      = 0x03
	CodeStreamCreation   = 0x04
	CodeFrameCancelled   = 0x05
	CodeUnknownFlowID    = 0x06
	CodeExpectationUnmet = 0x07
)

// MaxFlowID is the largest flow identifier a QUIC varint can carry.
const MaxFlowID = 1<<62 - 1

// MaxPacket is the largest RTP or RTCP packet a stream may carry here. Larger length prefixes
// are refused as ROQ_PACKET_ERROR: no RTP packet over UDP can be larger, so a bigger one is a
// broken or hostile peer, and refusing it bounds the reader's buffer.
const MaxPacket = 65535

// Errors of the parsers; they wrap into ROQ_PACKET_ERROR at the connection.
var (
	ErrShort     = errors.New("roq: truncated varint")
	ErrEmpty     = errors.New("roq: datagram has no packet after its flow ID")
	ErrTooLarge  = errors.New("roq: packet length over 65535")
	ErrZeroLen   = errors.New("roq: zero-length packet on stream")
	ErrBadFlowID = errors.New("roq: flow ID out of range")
)

// AppendDatagram appends the DATAGRAM payload carrying pkt on flow: the flow ID varint and the
// packet, with no length (draft §5.3).
func AppendDatagram(dst []byte, flow uint64, pkt []byte) []byte {
	dst = quicvarint.Append(dst, flow)
	return append(dst, pkt...)
}

// ParseDatagram splits a received DATAGRAM payload into its flow ID and its one packet, which
// aliases b.
func ParseDatagram(b []byte) (flow uint64, pkt []byte, err error) {
	flow, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: flow ID", ErrShort)
	}
	if n == len(b) {
		return 0, nil, ErrEmpty
	}
	return flow, b[n:], nil
}

// AppendStreamHeader appends what opens a RoQ stream: its flow ID (draft §5.2).
func AppendStreamHeader(dst []byte, flow uint64) []byte { return quicvarint.Append(dst, flow) }

// AppendStreamPacket appends one length-prefixed packet of a stream.
func AppendStreamPacket(dst []byte, pkt []byte) []byte {
	dst = quicvarint.Append(dst, uint64(len(pkt)))
	return append(dst, pkt...)
}

// StreamReader reads one RoQ stream: its flow ID, then length-prefixed packets. It reads
// through its own buffer and hands out packets that alias it, so it allocates nothing after
// NewStreamReader; a packet is valid until the next call to Next.
type StreamReader struct {
	r    io.Reader
	buf  []byte
	r0   int // start of unread bytes in buf
	r1   int // end of unread bytes in buf
	flow uint64
	read bool // the flow ID has been read
}

// NewStreamReader reads from r with a buffer big enough for the largest packet.
func NewStreamReader(r io.Reader) *StreamReader {
	return &StreamReader{r: r, buf: make([]byte, MaxPacket+16+4096)}
}

// Reset points the reader at a new stream, keeping its buffer.
func (s *StreamReader) Reset(r io.Reader) {
	s.r, s.r0, s.r1, s.flow, s.read = r, 0, 0, 0, false
}

// fill makes at least n unread bytes available. It returns io.EOF only when the stream ended
// cleanly before any of them, io.ErrUnexpectedEOF when it ended inside them.
func (s *StreamReader) fill(n int) error {
	if s.r1-s.r0 >= n {
		return nil
	}
	if s.r0+n > len(s.buf) {
		s.r1 = copy(s.buf, s.buf[s.r0:s.r1])
		s.r0 = 0
	}
	for s.r1-s.r0 < n {
		k, err := s.r.Read(s.buf[s.r1:])
		s.r1 += k
		if s.r1-s.r0 >= n {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if s.r1 == s.r0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// varint reads one varint from the stream.
func (s *StreamReader) varint() (uint64, error) {
	if err := s.fill(1); err != nil {
		return 0, err
	}
	l := 1 << (s.buf[s.r0] >> 6) // the top two bits give the length: 1, 2, 4 or 8 bytes
	if err := s.fill(l); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	v, n, err := quicvarint.Parse(s.buf[s.r0 : s.r0+l])
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrShort, err)
	}
	s.r0 += n
	return v, nil
}

// Flow reads the stream's flow ID (once; later calls return it again).
func (s *StreamReader) Flow() (uint64, error) {
	if s.read {
		return s.flow, nil
	}
	f, err := s.varint()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("roq: stream flow ID: %w", err)
	}
	s.flow, s.read = f, true
	return f, nil
}

// Next returns the stream's next packet, io.EOF when the stream ended cleanly between packets.
// The packet aliases the reader's buffer until the next call.
func (s *StreamReader) Next() ([]byte, error) {
	if _, err := s.Flow(); err != nil {
		return nil, err
	}
	n, err := s.varint()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("roq: packet length: %w", err)
	}
	if n == 0 {
		return nil, ErrZeroLen
	}
	if n > MaxPacket {
		return nil, ErrTooLarge
	}
	if err := s.fill(int(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("roq: packet of %d bytes: %w", n, err)
	}
	p := s.buf[s.r0 : s.r0+int(n)]
	s.r0 += int(n)
	return p, nil
}
