package merge

import (
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestTimedReleasesOnItsOwn: a packet held behind a gap leaves by the timer
// once it has waited the skew, with no later Push to release it, and Close
// stops the timer and drops what still waits.
func TestTimedReleasesOnItsOwn(t *testing.T) {
	var mu sync.Mutex
	var got []uint16
	m := NewTimed(Config{Skew: ClassA, Logger: slog.New(slog.DiscardHandler), Out: func(b []byte) {
		mu.Lock()
		got = append(got, binary.BigEndian.Uint16(b[2:]))
		mu.Unlock()
	}}, now)
	for _, s := range []uint16{1, 2, 4} { // 3 lost on both legs
		m.Push(0, mkRTP(5, s, 0, 10), now())
		m.Push(1, mkRTP(5, s, 0, 10), now())
	}
	want := []uint16{1, 2, 4}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		done := slices.Equal(got, want)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %v, want %v", got, want)
		}
	}
	if st := m.Stats(); st.Lost != 1 || st.Legs[1].Duplicates != 3 {
		t.Errorf("stats %+v", st)
	}
	m.Push(0, mkRTP(5, 6, 0, 10), now()) // waits for 5
	m.Close()
	checkNoLeak(t, m.m)
	time.Sleep(2 * ClassA)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("output after Close: %v", got)
	}
}
