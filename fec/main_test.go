package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sort"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mkMedia builds an RTP packet with the given fields; body is everything
// after the fixed header (CSRCs, extension, payload, padding).
func mkMedia(ssrc uint32, seq uint16, ts uint32, marker bool, pt uint8, b0low byte, body []byte) []byte {
	p := make([]byte, RTPHeaderLen+len(body))
	p[0] = 0x80 | b0low&0x3f
	p[1] = pt & 0x7f
	if marker {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	copy(p[RTPHeaderLen:], body)
	return p
}

// streamOpts shapes a synthetic media stream.
type streamOpts struct {
	n        int
	startSeq uint16
	ssrc     uint32
	minLen   int // payload length range (after the 12-byte header)
	maxLen   int
	fancy    bool // some packets get CSRCs, an extension or padding
}

// genStream makes a stream with varying lengths, markers every few
// packets, timestamps that step per "frame" and, when fancy, CSRC lists,
// header extensions and padding, so every recovered field is exercised.
func genStream(rng *rand.Rand, o streamOpts) [][]byte {
	if o.maxLen < o.minLen {
		o.maxLen = o.minLen
	}
	out := make([][]byte, o.n)
	ts := rng.Uint32()
	for i := range out {
		n := o.minLen + rng.IntN(o.maxLen-o.minLen+1)
		marker := rng.IntN(5) == 0
		var b0 byte
		var body []byte
		if o.fancy && rng.IntN(3) == 0 {
			cc := rng.IntN(3)
			b0 |= byte(cc)
			for range cc {
				body = binary.BigEndian.AppendUint32(body, rng.Uint32())
			}
			if rng.IntN(2) == 0 {
				b0 |= 0x10
				words := rng.IntN(3)
				body = append(body, 0xbe, 0xde, 0, byte(words))
				for range words {
					body = binary.BigEndian.AppendUint32(body, rng.Uint32())
				}
			}
		}
		for range n {
			body = append(body, byte(rng.Uint32()))
		}
		if o.fancy && rng.IntN(4) == 0 {
			b0 |= 0x20
			pad := 1 + rng.IntN(8)
			for range pad - 1 {
				body = append(body, 0)
			}
			body = append(body, byte(pad))
		}
		out[i] = mkMedia(o.ssrc, o.startSeq+uint16(i), ts, marker, 33+uint8(rng.IntN(3)), b0, body)
		if marker {
			ts += 3000
		}
	}
	return out
}

// event is one packet on the wire, in send order.
type event struct {
	kind  int // -1 media, else Kind
	data  []byte
	index int // media: index into the stream
}

const evMedia = -1

// encodeAll runs the encoder over media and returns the wire order: each
// media packet followed by the FEC packets its Push emitted, then Flush's.
func encodeAll(t testing.TB, cfg Config, media [][]byte) []event {
	t.Helper()
	enc, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event
	emit := func(k Kind, b []byte) {
		evs = append(evs, event{kind: int(k), data: bytes.Clone(b)})
	}
	for i, m := range media {
		evs = append(evs, event{kind: evMedia, data: m, index: i})
		if err := enc.Push(m, emit); err != nil {
			t.Fatal(err)
		}
	}
	enc.Flush(emit)
	return evs
}

// decodeResult is what a decoder produced from a lossy event list.
type decodeResult struct {
	recovered map[uint16][]byte
	stats     DecoderStats
}

// decodeEvents feeds the events minus the dropped media (by stream index)
// to a fresh decoder and collects the recovered packets, failing on a
// packet handed out twice or one that was received.
func decodeEvents(t testing.TB, cfg DecoderConfig, evs []event, drop map[int]bool) decodeResult {
	t.Helper()
	dec, err := NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := decodeResult{recovered: map[uint16][]byte{}}
	received := map[uint16]bool{}
	for _, ev := range evs {
		if ev.kind == evMedia {
			if drop[ev.index] {
				continue
			}
			seq := binary.BigEndian.Uint16(ev.data[2:])
			received[seq] = true
			if err := dec.PushMedia(ev.data); err != nil {
				t.Fatalf("PushMedia seq %d: %v", seq, err)
			}
		} else if err := dec.PushFEC(Kind(ev.kind), ev.data); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("PushFEC: %v", err)
		}
		for {
			p, ok := dec.Recovered()
			if !ok {
				break
			}
			seq := binary.BigEndian.Uint16(p[2:])
			if received[seq] {
				t.Fatalf("recovered seq %d, which was received", seq)
			}
			if _, dup := res.recovered[seq]; dup {
				t.Fatalf("recovered seq %d twice", seq)
			}
			res.recovered[seq] = bytes.Clone(p)
		}
	}
	res.stats = dec.Stats()
	return res
}

// peel is the matrix theory the decoder must match: with the FEC packets
// that were sent, repeatedly rebuild any packet that is the only one
// missing from a row or column, until nothing changes.  It returns the
// stream indexes that are recoverable.
func peel(t testing.TB, evs []event, drop map[int]bool) map[int]bool {
	t.Helper()
	var first uint16
	for _, ev := range evs {
		if ev.kind == evMedia {
			first = binary.BigEndian.Uint16(ev.data[2:]) - uint16(ev.index)
			break
		}
	}
	idx := func(seq uint16) int { return int(seq - first) }
	var groups [][]int
	for _, ev := range evs {
		if ev.kind == evMedia {
			continue
		}
		p, err := ParsePacket(ev.data)
		if err != nil {
			t.Fatal(err)
		}
		var g []int
		for i := 0; i < int(p.Header.NA); i++ {
			g = append(g, idx(p.Header.SNBase+uint16(i*int(p.Header.Offset))))
		}
		groups = append(groups, g)
	}
	lost := map[int]bool{}
	for i := range drop {
		lost[i] = true
	}
	got := map[int]bool{}
	for changed := true; changed; {
		changed = false
		for _, g := range groups {
			var miss []int
			for _, i := range g {
				if lost[i] {
					miss = append(miss, i)
				}
			}
			if len(miss) == 1 {
				delete(lost, miss[0])
				got[miss[0]] = true
				changed = true
			}
		}
	}
	return got
}

func sortedKeys(m map[int]bool) []int {
	var k []int
	for i := range m {
		k = append(k, i)
	}
	sort.Ints(k)
	return k
}
