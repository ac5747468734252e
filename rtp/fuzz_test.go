package rtp

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// FuzzHubWriteRTP feeds arbitrary bytes to a hub: it must never panic, must
// reject exactly what is not a sane RTP packet (checked against pion/rtp
// where pion is strict enough to compare), and every accepted packet must
// come out once with the hub's SSRC and the input's length.
func FuzzHubWriteRTP(f *testing.F) {
	f.Add(mkRTP(1, 2, 3, 10))
	f.Add([]byte{0x80})
	f.Add(append([]byte{0xb1}, make([]byte, 30)...))
	f.Add(append(append([]byte{0x90}, mkRTP(1, 1, 1, 0)[1:]...), 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0))
	f.Add(append(append([]byte{0xa0}, mkRTP(1, 1, 1, 4)[1:]...), 0, 0, 3))
	pool := NewPool()
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool})
	sink := &recSink{}
	h.AddSink(sink)
	f.Fuzz(func(t *testing.T, b []byte) {
		sink.mu.Lock()
		sink.rtp, sink.rtcp = sink.rtp[:0], sink.rtcp[:0]
		sink.mu.Unlock()
		err := h.WriteRTP(b)
		if err != nil && !errors.Is(err, ErrInvalidRTP) {
			t.Fatalf("error not wrapping ErrInvalidRTP: %v", err)
		}
		var pk rtp.Packet
		pionErr := pk.Unmarshal(b)
		if err == nil {
			// pion also parses one/two-byte extension elements, which we pass
			// through opaquely, so it may reject an extension we accept.
			if pionErr != nil && b[0]&0x10 == 0 {
				t.Fatalf("accepted what pion rejects (%v): %x", pionErr, b)
			}
			got, _ := sink.snapshot()
			if len(got) != 1 || len(got[0]) != len(b) {
				t.Fatalf("accepted packet delivered %d times", len(got))
			}
			if err := checkRTP(got[0]); err != nil || binary.BigEndian.Uint32(got[0][8:]) != h.SSRC() {
				t.Fatalf("output %x: %v", got[0], err)
			}
			// pion stops at a one-byte extension element with ID 15 and takes the payload to start
			// there; RFC 3550 puts it after the extension's announced length, as we do.
			if n := rtpPayloadLen(b); pionErr == nil && b[0]&0x10 == 0 && n != len(pk.Payload) {
				t.Fatalf("payload length %d, pion says %d", n, len(pk.Payload))
			}
			return
		}
		// pion does not check the version or a zero padding count, and it
		// parses extension elements we treat as opaque; compare the rest.
		if pionErr == nil && len(b) > 0 && b[0]>>6 == 2 && b[0]&0x10 == 0 && (b[0]&0x20 == 0 || b[len(b)-1] != 0) {
			t.Fatalf("rejected what pion accepts (%v): %x", err, b)
		}
	})
}

// FuzzHubWriteRTCP: arbitrary RTCP never panics, and what pion accepts as
// a compound packet we accept too.
func FuzzHubWriteRTCP(f *testing.F) {
	sr, _ := (&rtcp.SenderReport{SSRC: 1, NTPTime: 1 << 40, RTPTime: 9}).Marshal()
	f.Add(sr)
	f.Add([]byte{0x80, 200, 0, 0})
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := h.WriteRTCP(b)
		if _, pionErr := rtcp.Unmarshal(b); pionErr == nil && err != nil {
			t.Fatalf("rejected what pion accepts: %v: %x", err, b)
		}
	})
}
