package memifrtp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshgw/meshgw/internal/peertest"
)

// FuzzParseHeader: any buffer parses to a header and the RTP packet it frames, or an error;
// what parses writes back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	pkt := peertest.RTPPacket(5, 6, 7, 20)
	b := make([]byte, HeaderLen+len(pkt))
	Header{Track: 2, Marker: true, Length: uint32(len(pkt))}.Put(b)
	copy(b[HeaderLen:], pkt)
	f.Add(b)
	f.Add([]byte{1, 1, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, p, err := ParseHeader(in)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatal(err)
			}
			return
		}
		out := make([]byte, HeaderLen+len(p))
		h.Put(out)
		copy(out[HeaderLen:], p)
		in[3] &= FlagMarker // other flag bits are not kept
		if !bytes.Equal(out, in) {
			t.Fatalf("%x -> %+v -> %x", in, h, out)
		}
	})
}

// FuzzParseFrame: any chain parses to a frame header and data, or an error; what parses writes
// back to the same bytes.
func FuzzParseFrame(f *testing.F) {
	b := make([]byte, FrameHeaderLen+5)
	FrameMeta{Track: 1, Width: 2, Height: 3, PixelFormat: FourCC("UYVY"), RTPTimestamp: 4, Counter: 5}.Put(b, 5)
	f.Add(b)
	f.Add([]byte{1, 2, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, data, err := ParseFrame(in)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatal(err)
			}
			return
		}
		out := make([]byte, FrameHeaderLen+len(data))
		m.Put(out, len(data))
		copy(out[FrameHeaderLen:], data)
		in[3] = 0 // flags are not kept
		if !bytes.Equal(out, in) {
			t.Fatalf("%x -> %+v -> %x", in, m, out)
		}
	})
}
