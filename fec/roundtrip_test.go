package fec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// lossPattern picks the stream indexes to drop.
type lossPattern struct {
	name string
	pick func(rng *rand.Rand, n int) map[int]bool
}

func randomLoss(pct float64) lossPattern {
	return lossPattern{fmt.Sprintf("random%g%%", pct), func(rng *rand.Rand, n int) map[int]bool {
		d := map[int]bool{}
		// Leave the first packet (the decoder's start) and the last two
		// matrices (whose column FEC only Flush sends) alone.
		for i := 1; i < n-200; i++ {
			if rng.Float64()*100 < pct {
				d[i] = true
			}
		}
		return d
	}}
}

// bursts drops runs of length packets, one run every gap packets.
func bursts(length, gap int) lossPattern {
	return lossPattern{fmt.Sprintf("burst%d", length), func(rng *rand.Rand, n int) map[int]bool {
		d := map[int]bool{}
		for start := 7 + rng.IntN(gap); start+length < n-200; start += gap {
			for i := range length {
				d[start+i] = true
			}
		}
		return d
	}}
}

// TestRoundTrip encodes synthetic streams, drops packets, decodes, and
// checks that the decoder rebuilds exactly what matrix theory says is
// rebuildable, byte for byte.
func TestRoundTrip(t *testing.T) {
	matrices := [][2]int{{5, 5}, {10, 10}, {20, 5}}
	modes := []Mode{Mode2D, ModeColumn}
	patterns := []lossPattern{randomLoss(1), randomLoss(5), randomLoss(10), bursts(5, 300), bursts(20, 400)}
	for _, m := range matrices {
		for _, mode := range modes {
			for _, pat := range patterns {
				l, d := m[0], m[1]
				name := fmt.Sprintf("%dx%d/%s/%s", l, d, mode, pat.name)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					rng := rand.New(rand.NewPCG(uint64(l*1000+d), uint64(len(pat.name))+uint64(mode)))
					media := genStream(rng, streamOpts{n: 3000, startSeq: uint16(rng.Uint32()), ssrc: 0x1234, minLen: 100, maxLen: 1300, fancy: true})
					evs := encodeAll(t, Config{Columns: l, Rows: d, Mode: mode}, media)
					drop := pat.pick(rng, len(media))
					res := decodeEvents(t, DecoderConfig{}, evs, drop)
					want := peel(t, evs, drop)
					checkRecovered(t, media, drop, want, res)
					frac := float64(len(res.recovered)) / float64(len(drop))
					if len(want) == len(drop) {
						t.Logf("%s: dropped %d, recovered all", name, len(drop))
					} else {
						t.Logf("%s: dropped %d, recovered %d (%.1f%%; the rest is beyond this matrix's correction power)", name, len(drop), len(res.recovered), 100*frac)
					}
					// Losses still inside the window at the end are not counted yet.
					var lost uint64
					for i := range drop {
						if !want[i] && i <= len(media)-1-DefaultWindow {
							lost++
						}
					}
					if got := res.stats.Unrecoverable; got != lost {
						t.Errorf("Unrecoverable = %d, want %d", got, lost)
					}
				})
			}
		}
	}
}

// TestCorrectionPower states the guarantees of the matrix outright, beyond
// agreeing with peel: a burst of up to L packets is always repaired by
// column FEC, one loss per row by row FEC, and in 2D a whole lost row
// plus single losses elsewhere in the matrix.
func TestCorrectionPower(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	media := genStream(rng, streamOpts{n: 1000, ssrc: 7, minLen: 188, maxLen: 1316})
	for _, tc := range []struct {
		name string
		cfg  Config
		drop []int
	}{
		{"1D burst L", Config{Columns: 10, Rows: 10, Mode: ModeColumn}, seqRange(203, 213)},
		{"1D burst L unaligned", Config{Columns: 5, Rows: 4, Mode: ModeColumn}, seqRange(101, 106)},
		{"1D L=1 (every packet a column)", Config{Columns: 1, Rows: 4, Mode: ModeColumn}, []int{1, 6, 11, 300}},
		{"row single losses", Config{Columns: 5, Mode: ModeRow}, []int{1, 7, 13, 19, 20, 26}},
		{"2D row burst plus singles", Config{Columns: 5, Rows: 5}, append(seqRange(105, 110), 100, 112, 118, 124)},
		{"2D 20x5 burst 20", Config{Columns: 20, Rows: 5}, seqRange(420, 440)},
		{"2D burst L+1", Config{Columns: 4, Rows: 5}, seqRange(201, 206)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := encodeAll(t, tc.cfg, media)
			drop := map[int]bool{}
			for _, i := range tc.drop {
				drop[i] = true
			}
			res := decodeEvents(t, DecoderConfig{}, evs, drop)
			checkRecovered(t, media, drop, drop, res)
		})
	}
}

func seqRange(from, to int) []int {
	var r []int
	for i := from; i < to; i++ {
		r = append(r, i)
	}
	return r
}

// checkRecovered asserts the decoder rebuilt exactly want, byte for byte.
func checkRecovered(t *testing.T, media [][]byte, drop, want map[int]bool, res decodeResult) {
	t.Helper()
	for i := range want {
		seq := binary.BigEndian.Uint16(media[i][2:])
		got, ok := res.recovered[seq]
		if !ok {
			t.Errorf("index %d (seq %d) recoverable but not recovered", i, seq)
			continue
		}
		if !bytes.Equal(got, media[i]) {
			t.Errorf("index %d (seq %d) recovered wrong:\n got %x\nwant %x", i, seq, head(got), head(media[i]))
		}
	}
	if len(res.recovered) != len(want) {
		var extra []uint16
		for seq := range res.recovered {
			i := int(seq - binary.BigEndian.Uint16(media[0][2:]))
			if !want[i] {
				extra = append(extra, seq)
			}
		}
		t.Errorf("recovered %d packets, want %d; unexpected seqs %v (dropped %v)", len(res.recovered), len(want), extra, sortedKeys(drop))
	}
	if res.stats.Recovered != uint64(len(want)) {
		t.Errorf("Stats.Recovered = %d, want %d", res.stats.Recovered, len(want))
	}
}

func head(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
