package memifrtp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The per-buffer header of the packets form (see the package comment).
const (
	HeaderLen     = 8
	HeaderVersion = 1
	KindRTP       = 1
	FlagMarker    = 1
)

// Header is the per-buffer header of the packets form.
type Header struct {
	Track  uint8
	Marker bool
	Length uint32 // of the RTP packet after the header
}

// Put writes h into b (HeaderLen bytes).
func (h Header) Put(b []byte) {
	b = b[:HeaderLen]
	b[0], b[1], b[2] = HeaderVersion, KindRTP, h.Track
	b[3] = 0
	if h.Marker {
		b[3] = FlagMarker
	}
	binary.LittleEndian.PutUint32(b[4:], h.Length)
}

// ErrHeader wraps every error of ParseHeader.
var ErrHeader = errors.New("memifrtp: bad buffer header")

// ParseHeader reads a buffer's header and returns it with the RTP packet it frames.
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes", ErrHeader, len(b))
	}
	if b[0] != HeaderVersion || b[1] != KindRTP {
		return Header{}, nil, fmt.Errorf("%w: version %d kind %d, want %d and %d", ErrHeader, b[0], b[1], HeaderVersion, KindRTP)
	}
	h := Header{Track: b[2], Marker: b[3]&FlagMarker != 0, Length: binary.LittleEndian.Uint32(b[4:])}
	if uint64(h.Length) != uint64(len(b)-HeaderLen) {
		return Header{}, nil, fmt.Errorf("%w: length %d, buffer holds %d", ErrHeader, h.Length, len(b)-HeaderLen)
	}
	if h.Length < 12 || b[HeaderLen]>>6 != 2 {
		return Header{}, nil, fmt.Errorf("%w: not an RTP packet (%d bytes)", ErrHeader, h.Length)
	}
	return h, b[HeaderLen:], nil
}
