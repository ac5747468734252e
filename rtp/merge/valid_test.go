package merge

import (
	"testing"

	"github.com/pion/rtp"
)

// FuzzValidRTP holds validRTP to what a header is, as rtp's FuzzHubWriteRTP
// holds the hub's check: it accepts what pion/rtp accepts and rejects what
// pion rejects, except where pion is not strict enough to compare (it does
// not check the version or a zero padding count, and it parses extension
// elements that both checks pass through opaquely).
func FuzzValidRTP(f *testing.F) {
	f.Add(mkRTP(1, 2, 3, 10))
	f.Add([]byte{0x80})
	f.Add(append([]byte{0xb1}, make([]byte, 30)...))
	f.Add(append(append([]byte{0x90}, mkRTP(1, 1, 1, 0)[1:]...), 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0))
	f.Add(append(append([]byte{0xa0}, mkRTP(1, 1, 1, 4)[1:]...), 0, 0, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := validRTP(b)
		var pk rtp.Packet
		pionErr := pk.Unmarshal(b)
		if ok {
			if pionErr != nil && b[0]&0x10 == 0 {
				t.Fatalf("accepted what pion rejects (%v): %x", pionErr, b)
			}
			return
		}
		if pionErr == nil && len(b) > 0 && len(b) <= maxPacket && b[0]>>6 == 2 && b[0]&0x10 == 0 && (b[0]&0x20 == 0 || b[len(b)-1] != 0) {
			t.Fatalf("rejected what pion accepts: %x", b)
		}
	})
}
