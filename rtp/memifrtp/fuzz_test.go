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
