//go:build linux

package main

import (
	"math/bits"
	"time"
)

// The latency histogram covers 1 µs (2^10 ns) to about 1 s (2^30 ns) in
// octaves split into histSub linear steps, so a bucket is at most 1/16 wide
// relative to its value: fine enough for p50/p99 and indexable with a shift
// instead of a logarithm per packet.
const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histMinExp  = 10 // values below 2^10 ns share bucket 0
	histMaxExp  = 30 // values from 2^31 ns share the last bucket
	histBuckets = 1 + (histMaxExp-histMinExp+1)*histSub + 1
)

// latencyHist is a fixed-bucket histogram of nanosecond samples. It
// allocates nothing when adding, which is why it is an array and not a map.
type latencyHist struct {
	counts [histBuckets]uint64
	total  uint64
	max    int64
}

func histIndex(ns int64) int {
	if ns < 1<<histMinExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	sub := int(uint64(ns)>>(e-histSubBits)) & (histSub - 1)
	return 1 + (e-histMinExp)*histSub + sub
}

// histUpper is the exclusive upper bound of bucket i in nanoseconds.
func histUpper(i int) int64 {
	switch {
	case i == 0:
		return 1 << histMinExp
	case i >= histBuckets-1:
		return 1<<63 - 1
	}
	e := (i-1)/histSub + histMinExp
	sub := int64((i - 1) % histSub)
	return (histSub + sub + 1) << (e - histSubBits)
}

func (h *latencyHist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[histIndex(ns)]++
	h.total++
	if ns > h.max {
		h.max = ns
	}
}

func (h *latencyHist) reset() { *h = latencyHist{} }

func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-th sample
// (0 < q <= 1), never more than the largest sample seen, or 0 without samples.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = max(rank, 1)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
