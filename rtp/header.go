package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalidRTP is wrapped by every error about malformed RTP input.
var ErrInvalidRTP = errors.New("invalid RTP packet")

// ErrClosed is returned by operations on a closed hub, writer or pair.
var ErrClosed = errors.New("rtp: closed")

// ErrSlowReader is why an interleaved writer gave up on a reader that
// drained slower than its stream for too long.
var ErrSlowReader = errors.New("rtp: reader too slow")

const rtpHeaderLen = 12

// checkRTP validates the fixed RTP header and the lengths it announces (CSRC
// list, header extension, padding) against len(b). It is hand written rather
// than pion/rtp's Header.Unmarshal because the hot path needs only "is it
// sane", with no allocation and no field copies; pion does not check the
// version and fills slices we would throw away. The fuzz test keeps the two
// in agreement.
func checkRTP(b []byte) error {
	if len(b) < rtpHeaderLen {
		return fmt.Errorf("%w: %d bytes, need %d", ErrInvalidRTP, len(b), rtpHeaderLen)
	}
	if v := b[0] >> 6; v != 2 {
		return fmt.Errorf("%w: version %d", ErrInvalidRTP, v)
	}
	n := rtpHeaderLen + int(b[0]&0x0f)*4
	if b[0]&0x10 != 0 { // header extension: 4-byte head + length in 32-bit words
		if len(b) < n+4 {
			return fmt.Errorf("%w: %d bytes, extension header needs %d", ErrInvalidRTP, len(b), n+4)
		}
		n += 4 + int(binary.BigEndian.Uint16(b[n+2:]))*4
	}
	if len(b) < n {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrInvalidRTP, len(b), n)
	}
	if b[0]&0x20 != 0 { // padding: the last octet counts the padding, itself included
		if len(b) == n {
			return fmt.Errorf("%w: padding bit set without padding", ErrInvalidRTP)
		}
		pad := int(b[len(b)-1])
		if pad == 0 || n+pad > len(b) {
			return fmt.Errorf("%w: padding %d with %d bytes after a %d-byte header", ErrInvalidRTP, pad, len(b)-n, n)
		}
	}
	return nil
}

// rtpPayloadLen returns the payload length (without header and padding) of a
// packet that passed checkRTP; sender reports count these octets.
func rtpPayloadLen(b []byte) int {
	n := rtpHeaderLen + int(b[0]&0x0f)*4
	if b[0]&0x10 != 0 {
		n += 4 + int(binary.BigEndian.Uint16(b[n+2:]))*4
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		end -= int(b[end-1])
	}
	return end - n
}
