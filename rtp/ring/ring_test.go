package ring

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueueWrapAround: items come out in order while head and tail wrap around the ring many
// times, and while it grows with the queued items split across the wrap.
func TestQueueWrapAround(t *testing.T) {
	q := New[int](4, 64)
	next, want := 0, 0
	for round := range 200 {
		for range round%7 + 1 { // pushes outrun pops: the queue grows while wrapped
			if !q.Push(next) {
				break
			}
			next++
		}
		for range round%5 + 1 {
			if q.Len() == 0 {
				break
			}
			if f := *q.Front(); f != want {
				t.Fatalf("round %d: front %d, want %d", round, f, want)
			}
			if got := q.Pop(); got != want {
				t.Fatalf("round %d: popped %d, want %d", round, got, want)
			}
			want++
		}
	}
	if q.Len() != next-want {
		t.Fatalf("len %d, want %d", q.Len(), next-want)
	}
	if q.Cap() != 64 {
		t.Fatalf("ring of %d after a backlog over 32, want 64", q.Cap())
	}
}

// TestQueueFullEmpty: the ring grows by doubling up to its limit, refuses what comes past it
// without losing what it holds, and takes items again once one is popped.
func TestQueueFullEmpty(t *testing.T) {
	q := New[int](3, 10)
	if q.Len() != 0 || q.Cap() != 3 {
		t.Fatalf("new queue: len %d, cap %d", q.Len(), q.Cap())
	}
	var caps []int
	for i := range 10 {
		if !q.Push(i) {
			t.Fatalf("push %d refused below the limit", i)
		}
		caps = append(caps, q.Cap())
	}
	if q.Push(10) {
		t.Fatal("push past the limit accepted")
	}
	if want := []int{3, 3, 3, 6, 6, 6, 10, 10, 10, 10}; !slices.Equal(caps, want) {
		t.Fatalf("ring sizes %v, want %v", caps, want)
	}
	if q.Pop() != 0 || !q.Push(10) || q.Push(11) {
		t.Fatal("a popped slot is not reused, or the limit moved")
	}
	for want := 1; want <= 10; want++ {
		if got := q.Pop(); got != want {
			t.Fatalf("popped %d, want %d", got, want)
		}
	}
	if q.Len() != 0 || q.View(5).Len() != 0 {
		t.Fatal("not empty after popping everything")
	}
	var zero Queue[int]
	if zero.Push(1) || zero.Len() != 0 {
		t.Fatal("the zero queue accepted an item")
	}
	if none := New[int](4, 0); none.Push(1) {
		t.Fatal("a queue with limit 0 accepted an item")
	}
	if one := New[int](0, 5); one.Cap() != 1 || !one.Push(1) || !one.Push(2) {
		t.Fatal("a queue with no initial room does not start at 1 and grow")
	}
}

// TestQueueViewSurvivesGrowth: a view taken before pushes that grow the ring still shows the
// same items in order (the writer goroutine reads its batch outside the lock).
func TestQueueViewSurvivesGrowth(t *testing.T) {
	q := New[int](4, 100)
	for i := range 6 { // wrap: head at 2 after two pops
		q.Push(i)
		if i == 3 {
			q.Pop()
			q.Pop()
		}
	}
	v := q.View(10)
	if v.Len() != 4 {
		t.Fatalf("view of %d items, want 4 (all queued)", v.Len())
	}
	for i := 6; i < 50; i++ {
		q.Push(i)
	}
	for i := range v.Len() {
		if got := *v.At(i); got != i+2 {
			t.Fatalf("view item %d is %d after growth, want %d", i, got, i+2)
		}
	}
	for want := 2; want < 50; want++ {
		if got := q.Pop(); got != want {
			t.Fatalf("popped %d, want %d", got, want)
		}
	}
}

// TestQueuePopClears: a popped slot keeps no reference, so a pooled packet handed out is not
// kept alive (or seen twice) through the ring.
func TestQueuePopClears(t *testing.T) {
	q := New[*int](2, 2)
	a, b := new(int), new(int)
	q.Push(a)
	q.Push(b)
	if q.Pop() != a {
		t.Fatal("wrong item")
	}
	for i, p := range q.buf {
		if p == a {
			t.Fatalf("slot %d still holds a popped item", i)
		}
	}
}

// TestQueueMatchesSlice: random pushes and pops agree with a plain slice used as a FIFO.
func TestQueueMatchesSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	q := New[int](1, 37)
	var model []int
	for i := range 20000 {
		if r.IntN(3) > 0 {
			ok := q.Push(i)
			if ok != (len(model) < 37) {
				t.Fatalf("op %d: push %v with %d queued", i, ok, len(model))
			}
			if ok {
				model = append(model, i)
			}
		} else if len(model) > 0 {
			if got := q.Pop(); got != model[0] {
				t.Fatalf("op %d: popped %d, want %d", i, got, model[0])
			}
			model = model[1:]
		}
		if q.Len() != len(model) {
			t.Fatalf("op %d: len %d, want %d", i, q.Len(), len(model))
		}
	}
}

type item struct {
	p    *int
	rtcp bool
}

// BenchmarkQueue: one push and one pop of a sink-sized item in steady state. 0 allocs/op.
func BenchmarkQueue(b *testing.B) {
	q := New[item](64, 4096)
	x := new(int)
	for range 100 { // a backlog, so push and pop work on different slots and wrap
		q.Push(item{p: x})
	}
	b.ReportAllocs()
	for b.Loop() {
		if !q.Push(item{p: x}) {
			b.Fatal("full")
		}
		if q.Front().rtcp {
			b.Fatal("wrong item")
		}
		_ = q.Pop()
	}
}

// TestQueueShrinksAfterBacklog: a ring a backlog grew comes back down once the backlog has
// drained and stayed small for a window of consumer batches, keeping every item in order through the
// resize; it never goes below its initial size, and a ring whose bursts keep reaching the
// same depth keeps its size (and allocates nothing) window after window.
func TestQueueShrinksAfterBacklog(t *testing.T) {
	q := New[int](8, 4096)
	next, want := 0, 0
	push := func(k int) {
		for range k {
			if !q.Push(next) {
				t.Fatalf("push %d refused with %d queued", next, q.Len())
			}
			next++
		}
	}
	pop := func(k int) { // one consumer batch
		q.Note()
		for range k {
			if got := q.Pop(); got != want {
				t.Fatalf("popped %d, want %d", got, want)
			}
			want++
		}
	}
	push(3000) // a stall: the ring grows to 4096
	if q.Cap() != 4096 {
		t.Fatalf("cap %d after a 3000-item backlog, want 4096", q.Cap())
	}
	pop(3000)
	// Bursts of 50 that drain, with 3 items left queued across each boundary so the
	// resize moves items split around the wrap.
	push(3)
	for range 2 * shrinkWindow {
		push(50)
		pop(50)
	}
	if q.Cap() != 128 {
		t.Fatalf("cap %d after two windows of 53-deep bursts, want 128 (twice the peak, rounded up by halving)", q.Cap())
	}
	if a := testing.AllocsPerRun(10, func() {
		for range shrinkWindow {
			push(50)
			pop(50)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per window of the same bursts, want 0", a)
	}
	if q.Cap() != 128 {
		t.Fatalf("cap %d after more windows of the same bursts, want 128", q.Cap())
	}
	for range 3 * shrinkWindow { // idle reader: one packet at a time
		push(1)
		pop(1)
	}
	if q.Cap() != 8 {
		t.Fatalf("cap %d after windows of single items, want the initial 8", q.Cap())
	}
	pop(3)
	if q.Len() != 0 {
		t.Fatalf("len %d at the end, want 0", q.Len())
	}
}
