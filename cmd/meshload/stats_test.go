//go:build linux

package main

import "testing"

func feed(l *seqLine, seqs ...uint16) {
	for _, s := range seqs {
		l.add(s, 100)
	}
}

func TestSeqLineInOrder(t *testing.T) {
	var l seqLine
	feed(&l, 10, 11, 12, 13)
	if l.expected() != 4 || l.received != 4 || l.lost() != 0 || l.bytes != 400 {
		t.Fatalf("expected %d received %d lost %d bytes %d", l.expected(), l.received, l.lost(), l.bytes)
	}
}

func TestSeqLineWrap(t *testing.T) {
	var l seqLine
	feed(&l, 65533, 65534, 65535, 0, 1, 3) // 2 lost across the wrap
	if l.max != 65536+3 {
		t.Fatalf("extended max = %d, want %d", l.max, 65536+3)
	}
	if l.expected() != 7 || l.received != 6 || l.lost() != 1 {
		t.Fatalf("expected %d received %d lost %d, want 7 6 1", l.expected(), l.received, l.lost())
	}
	// many wraps: the extended number keeps counting
	var m seqLine
	for i := range 3 * 65536 {
		m.add(uint16(i), 1)
	}
	if m.expected() != 3*65536 || m.lost() != 0 {
		t.Fatalf("after 3 wraps: expected %d lost %d", m.expected(), m.lost())
	}
}

func TestSeqLineReorderAndDuplicates(t *testing.T) {
	var l seqLine
	feed(&l, 1, 2, 4, 3, 5, 5, 2, 7)
	// 1..7 expected, 6 missing; 3 reordered; one 5 and one 2 duplicated
	if l.expected() != 7 {
		t.Fatalf("expected %d, want 7", l.expected())
	}
	if l.received != 6 || l.lost() != 1 {
		t.Fatalf("received %d lost %d, want 6 1", l.received, l.lost())
	}
	if l.reorders != 1 || l.dups != 2 {
		t.Fatalf("reorders %d dups %d, want 1 2", l.reorders, l.dups)
	}
	// the missing packet arriving late is a reorder that closes the gap
	feed(&l, 6)
	if l.lost() != 0 || l.reorders != 2 {
		t.Fatalf("after late 6: lost %d reorders %d", l.lost(), l.reorders)
	}
}

func TestSeqLineReorderBeforeFirst(t *testing.T) {
	var l seqLine
	feed(&l, 100, 98, 99, 101)
	if l.expected() != 4 || l.lost() != 0 || l.reorders != 2 {
		t.Fatalf("expected %d lost %d reorders %d", l.expected(), l.lost(), l.reorders)
	}
}

func TestSeqLineDuplicateAcrossWrap(t *testing.T) {
	var l seqLine
	feed(&l, 65535, 0, 65535, 0)
	if l.dups != 2 || l.received != 2 || l.lost() != 0 {
		t.Fatalf("dups %d received %d lost %d", l.dups, l.received, l.lost())
	}
}

func TestSeqLineBigJumpClearsWindow(t *testing.T) {
	var l seqLine
	feed(&l, 0, 1, 2)
	feed(&l, 2000) // 1997 lost; the duplicate window moves past everything seen
	feed(&l, 2000)
	if l.dups != 1 || l.lost() != 1997 {
		t.Fatalf("dups %d lost %d", l.dups, l.lost())
	}
	feed(&l, 500) // older than the window: cannot be told from a duplicate, counted as late
	if l.late != 1 || l.lost() != 1996 {
		t.Fatalf("late %d lost %d", l.late, l.lost())
	}
}

func TestSeqWindow(t *testing.T) {
	var l seqLine
	feed(&l, 1, 2, 3)
	a := l.snap()
	feed(&l, 4, 6, 7, 7) // 5 lost, one duplicate
	w := seqWindow(a, l.snap())
	if w.Expected != 4 || w.Received != 3 || w.Lost != 1 || w.Dups != 1 || w.Bytes != 300 {
		t.Fatalf("window %+v", w)
	}
	// a line that starts inside the window counts from its first packet
	var m seqLine
	a = m.snap()
	feed(&m, 10, 12)
	w = seqWindow(a, m.snap())
	if w.Expected != 3 || w.Lost != 1 {
		t.Fatalf("late start window %+v", w)
	}
	// a line that never started did nothing
	if w := seqWindow(seqSnap{}, seqSnap{}); w != (lineWindow{}) {
		t.Fatalf("idle window %+v", w)
	}
	// a packet from before the window arriving inside it must not make loss negative
	var n seqLine
	feed(&n, 1, 2, 4)
	a = n.snap()
	feed(&n, 3)
	if w := seqWindow(a, n.snap()); w.Lost != 0 || w.Expected != 0 || w.Received != 1 {
		t.Fatalf("straddling reorder window %+v", w)
	}
}
