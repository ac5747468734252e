//go:build linux

package main

import (
	"testing"
	"time"
)

func TestHistIndexMonotonic(t *testing.T) {
	prev := 0
	for ns := int64(0); ns < 3e9; ns = ns*11/10 + 1 {
		i := histIndex(ns)
		if i < prev {
			t.Fatalf("index of %d ns is %d, below %d", ns, i, prev)
		}
		if i >= histBuckets {
			t.Fatalf("index of %d ns is %d, out of %d buckets", ns, i, histBuckets)
		}
		if ns >= 1<<histMinExp && ns < 1<<(histMaxExp+1) && ns >= histUpper(i) {
			t.Fatalf("%d ns is not below the upper bound %d of its bucket %d", ns, histUpper(i), i)
		}
		prev = i
	}
}

func TestHistQuantiles(t *testing.T) {
	var h latencyHist
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram must report 0")
	}
	// 1..1000 µs, one sample each: p50 ≈ 500 µs, p99 ≈ 990 µs, max exactly 1000 µs
	for us := 1; us <= 1000; us++ {
		h.add(int64(us) * 1000)
	}
	check := func(name string, got, want time.Duration) {
		t.Helper()
		// a bucket spans at most 1/16 of its value, and quantile reports its upper bound
		if got < want || float64(got) > float64(want)*(1+1.0/16)+1 {
			t.Errorf("%s = %v, want %v (within one bucket above)", name, got, want)
		}
	}
	check("p50", h.quantile(0.5), 500*time.Microsecond)
	check("p99", h.quantile(0.99), 990*time.Microsecond)
	if h.quantile(1) != time.Millisecond || time.Duration(h.max) != time.Millisecond {
		t.Errorf("p100 %v max %v, want 1ms", h.quantile(1), time.Duration(h.max))
	}
	if h.total != 1000 {
		t.Errorf("total %d", h.total)
	}
}

func TestHistExtremes(t *testing.T) {
	var h latencyHist
	h.add(-5)  // clock skew cannot happen in one process, but must not index out of range
	h.add(10)  // below 1 µs
	h.add(5e9) // beyond 1 s
	h.add(2e6)
	if h.total != 4 || h.max != 5e9 {
		t.Fatalf("total %d max %d", h.total, h.max)
	}
	if q := h.quantile(1); q != 5*time.Second {
		t.Fatalf("p100 = %v, want the max 5s", q)
	}
	if q := h.quantile(0.25); q != time.Duration(1<<histMinExp) {
		t.Fatalf("p25 = %v, want the sub-µs bucket's bound", q)
	}
	var m latencyHist
	m.merge(&h)
	m.merge(&h)
	if m.total != 8 || m.max != 5e9 {
		t.Fatalf("merged total %d max %d", m.total, m.max)
	}
	m.reset()
	if m.total != 0 || m.quantile(0.5) != 0 {
		t.Fatal("reset histogram is not empty")
	}
}
