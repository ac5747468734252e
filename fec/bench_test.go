package fec

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The benchmarks use MPEG-TS sized packets (7×188 = 1316 payload bytes,
// what FFmpeg and GStreamer send) and count one op per media packet,
// including the FEC work that packet triggers.

var benchMatrices = [][2]int{{5, 5}, {10, 10}, {20, 5}}

func BenchmarkEncode(b *testing.B) {
	for _, m := range benchMatrices {
		b.Run(fmt.Sprintf("%dx%d", m[0], m[1]), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			media := genStream(rng, streamOpts{n: 1000, ssrc: 1, minLen: 1316})
			enc, err := NewEncoder(Config{Columns: m[0], Rows: m[1]})
			if err != nil {
				b.Fatal(err)
			}
			var fecBytes int
			sink := func(_ Kind, p []byte) { fecBytes += len(p) }
			b.SetBytes(int64(len(media[0])))
			b.ReportAllocs()
			seq := uint16(0)
			for i := 0; b.Loop(); i++ {
				p := media[i%len(media)]
				binary.BigEndian.PutUint16(p[2:], seq)
				seq++
				if err := enc.Push(p, sink); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLap is an encoded stream the decode benchmark replays; each lap
// moves its sequence numbers on so the decoder sees one endless stream.
type benchLap struct {
	evs  []event
	drop []bool // per event: a dropped media packet
	n    int    // media packets per lap
}

func newBenchLap(b *testing.B, l, d int, lossPct float64) *benchLap {
	rng := rand.New(rand.NewPCG(2, uint64(lossPct*10)))
	const n = 6000 // a multiple of every L×D benchmarked
	media := genStream(rng, streamOpts{n: n, ssrc: 1, minLen: 1316})
	lap := &benchLap{evs: encodeAll(b, Config{Columns: l, Rows: d}, media), n: n}
	lap.drop = make([]bool, len(lap.evs))
	for i, ev := range lap.evs {
		lap.drop[i] = ev.kind == evMedia && ev.index > 0 && rng.Float64()*100 < lossPct
	}
	return lap
}

func (lap *benchLap) advance() {
	for _, ev := range lap.evs {
		off := 2
		if ev.kind != evMedia {
			off = RTPHeaderLen
		}
		binary.BigEndian.PutUint16(ev.data[off:], binary.BigEndian.Uint16(ev.data[off:])+uint16(lap.n))
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range benchMatrices {
		for _, loss := range []float64{0, 1, 5} {
			b.Run(fmt.Sprintf("%dx%d/loss%g%%", m[0], m[1], loss), func(b *testing.B) {
				lap := newBenchLap(b, m[0], m[1], loss)
				dec, err := NewDecoder(DecoderConfig{})
				if err != nil {
					b.Fatal(err)
				}
				// The final Flush column FEC of a lap would be out of
				// place in an endless stream.
				evs := lap.evs
				for len(evs) > 0 && evs[len(evs)-1].kind != evMedia {
					evs = evs[:len(evs)-1]
				}
				b.SetBytes(1328)
				b.ReportAllocs()
				e := 0
				for b.Loop() {
					for {
						if e == len(evs) {
							b.StopTimer()
							lap.advance()
							e = 0
							b.StartTimer()
						}
						ev := evs[e]
						drop := lap.drop[e]
						e++
						if ev.kind != evMedia {
							_ = dec.PushFEC(Kind(ev.kind), ev.data)
						} else if !drop {
							_ = dec.PushMedia(ev.data)
						}
						for _, ok := dec.Recovered(); ok; _, ok = dec.Recovered() {
						}
						if ev.kind == evMedia {
							break
						}
					}
				}
				st := dec.Stats()
				if loss > 0 && st.Recovered == 0 {
					b.Fatalf("nothing recovered: %+v", st)
				}
				if st.Inconsistent != 0 || st.Duplicates != 0 {
					b.Fatalf("stats %+v", st)
				}
			})
		}
	}
}
