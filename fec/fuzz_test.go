package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzFECHeader: parsing never panics, marshal(parse(b)) gives b back, and
// so parse(marshal(h)) == h for every header a packet can carry.
// ParsePacket never panics either, and what it accepts validates.
func FuzzFECHeader(f *testing.F) {
	h := validHeader(Column)
	var b [PacketOverhead + 8]byte
	b[0] = 0x80
	_, _ = h.MarshalTo(b[RTPHeaderLen:])
	f.Add(b[:])
	f.Add(b[RTPHeaderLen:PacketOverhead])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if len(data) < HeaderLen {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("short header: %v", err)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			var out [HeaderLen]byte
			if _, err := h.MarshalTo(out[:]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[:], data[:HeaderLen]) {
				t.Fatalf("marshal(parse(%x)) = %x", data[:HeaderLen], out)
			}
			h2, _ := ParseHeader(out[:])
			if h2 != h {
				t.Fatalf("parse(marshal(h)) = %+v, want %+v", h2, h)
			}
			_ = h.Validate()
		}
		p, err := ParsePacket(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParsePacket error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if p.Header.Validate() != nil || len(p.Payload) != len(data)-PacketOverhead {
			t.Fatalf("accepted %x as %+v", data, p)
		}
	})
}

// fuzzRef is a consistent encoded stream the decoder fuzzer can pick
// packets from, so that recoveries actually happen and can be checked byte
// for byte.
type fuzzRef struct {
	base  uint16
	media [][]byte
	fec   []event
}

func newFuzzRef() *fuzzRef {
	rng := rand.New(rand.NewPCG(99, 100))
	r := &fuzzRef{base: 65400}
	r.media = genStream(rng, streamOpts{n: 200, startSeq: r.base, ssrc: 77, minLen: 0, maxLen: 40, fancy: true})
	enc, _ := NewEncoder(Config{Columns: 4, Rows: 4})
	for _, m := range r.media {
		_ = enc.Push(m, func(k Kind, b []byte) { r.fec = append(r.fec, event{kind: int(k), data: bytes.Clone(b)}) })
	}
	return r
}

// fuzzOps encodes a decoder fuzz input: a list of operations.
//
//	op%5 == 0, 1, 2  raw media / raw column FEC / raw row FEC: a length byte
//	                 and that many bytes (sequence numbers are folded into
//	                 a 1000-wide range around the reference stream, so that
//	                 they land in the window and never wrap);
//	op%5 == 3        reference media packet number b;
//	op%5 == 4        reference FEC packet number b.
func fuzzOps(ops ...[]byte) []byte { return bytes.Join(ops, nil) }

func fold(seq, base uint16) uint16 { return base - 300 + seq%1000 }

// decoderSeeds: the reference stream in order with a few drops, a
// reordered variant, and raw copies of genuine packets for the mutator to
// bend.
func decoderSeeds(ref *fuzzRef) [][]byte {
	var inOrder, reordered []byte
	fi := 0
	for i := range 80 {
		if i%7 != 3 {
			inOrder = append(inOrder, 3, byte(i))
		}
		for fi < len(ref.fec) && fi < (i/4)*2 {
			inOrder = append(inOrder, 4, byte(fi))
			reordered = append(reordered, 4, byte(fi))
			fi++
		}
		if i%5 != 0 {
			reordered = append(reordered, 3, byte(i^1))
		}
	}
	raw := func(op byte, p []byte) []byte { return append([]byte{op, byte(len(p))}, p...) }
	return [][]byte{
		inOrder,
		reordered,
		fuzzOps(raw(0, ref.media[0]), raw(0, ref.media[1]), raw(byte(ref.fec[0].kind)+1, ref.fec[0].data), raw(0, ref.media[3])),
		fuzzOps(raw(0, ref.media[0]), raw(1, ref.fec[1].data), raw(2, ref.fec[0].data), raw(0, make([]byte, 12))),
		{0, 12, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 3, 5},
	}
}

// TestFuzzDecoderSeedsRecover keeps the fuzzer's byte-for-byte oracle from
// being vacuous: its first seeds must make the decoder rebuild packets.
func TestFuzzDecoderSeedsRecover(t *testing.T) {
	ref := newFuzzRef()
	for i, seed := range decoderSeeds(ref)[:2] {
		dec, _ := NewDecoder(DecoderConfig{Window: MinWindow, MaxPacketSize: 300})
		for j := 0; j+1 < len(seed); j += 2 {
			if seed[j] == 3 {
				_ = dec.PushMedia(ref.media[seed[j+1]])
			} else {
				ev := ref.fec[seed[j+1]]
				_ = dec.PushFEC(Kind(ev.kind), ev.data)
			}
		}
		if st := dec.Stats(); st.Recovered < 5 || st.Inconsistent != 0 {
			t.Errorf("seed %d: %+v", i, st)
		}
	}
}

// FuzzDecoder pushes arbitrary media and FEC packets: the decoder must
// never panic, never hand out a packet whose sequence number was received
// or one it handed out before, hand out only valid RTP, and, while only
// genuine packets are pushed, hand out exactly the originals.
func FuzzDecoder(f *testing.F) {
	ref := newFuzzRef()
	for _, seed := range decoderSeeds(ref) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := NewDecoder(DecoderConfig{Window: MinWindow, MaxPacketSize: 300})
		if err != nil {
			t.Fatal(err)
		}
		genuine := true
		received := map[uint64]bool{} // ssrc<<16 | seq, this sequence line
		handed := map[uint16]bool{}
		resyncs := uint64(0)
		var buf []byte
		for i := 0; i < len(data); {
			op := data[i] % 5
			i++
			var pkt []byte
			kind := -1
			switch op {
			case 0, 1, 2:
				if i >= len(data) {
					return
				}
				n := int(data[i])
				i++
				n = min(n, len(data)-i)
				buf = append(buf[:0], data[i:i+n]...)
				i += n
				pkt = buf
				genuine = false
				if op == 0 && len(pkt) >= 4 {
					binary.BigEndian.PutUint16(pkt[2:], fold(binary.BigEndian.Uint16(pkt[2:]), ref.base))
				}
				if op > 0 {
					kind = int(op - 1)
					if len(pkt) >= RTPHeaderLen+2 {
						binary.BigEndian.PutUint16(pkt[RTPHeaderLen:], fold(binary.BigEndian.Uint16(pkt[RTPHeaderLen:]), ref.base))
					}
				}
			case 3, 4:
				if i >= len(data) {
					return
				}
				k := int(data[i])
				i++
				if op == 3 {
					pkt = ref.media[k%len(ref.media)]
				} else {
					ev := ref.fec[k%len(ref.fec)]
					pkt, kind = ev.data, ev.kind
				}
			}
			if kind < 0 {
				before := dec.Stats()
				err := dec.PushMedia(pkt)
				after := dec.Stats()
				if after.Resyncs != resyncs {
					resyncs = after.Resyncs
					clear(received)
					clear(handed)
				}
				if err == nil && after.Ignored == before.Ignored {
					received[uint64(binary.BigEndian.Uint32(pkt[8:]))<<16|uint64(binary.BigEndian.Uint16(pkt[2:]))] = true
				}
				if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDuplicate) {
					t.Fatalf("PushMedia: unexpected error %v", err)
				}
			} else if err := dec.PushFEC(Kind(kind), pkt); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("PushFEC: unexpected error %v", err)
			}
			for p, ok := dec.Recovered(); ok; p, ok = dec.Recovered() {
				seq := binary.BigEndian.Uint16(p[2:])
				ssrc := binary.BigEndian.Uint32(p[8:])
				if received[uint64(ssrc)<<16|uint64(seq)] {
					t.Fatalf("handed out seq %d, which was received", seq)
				}
				if handed[seq] {
					t.Fatalf("handed out seq %d twice", seq)
				}
				handed[seq] = true
				if p[0]>>6 != 2 || !validRTP(p) || len(p) > 300 {
					t.Fatalf("handed out invalid RTP %x", p)
				}
				if genuine {
					want := ref.media[int(seq-ref.base)%len(ref.media)]
					if !bytes.Equal(p, want) {
						t.Fatalf("seq %d rebuilt as %x, want %x", seq, p, want)
					}
				}
			}
		}
	})
}
