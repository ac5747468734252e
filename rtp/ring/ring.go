package ring

// Queue is a FIFO of T kept in a ring, grown by doubling up to a bound and
// halved again once a window of the consumer's batches (Note) shows the backlog
// stays far below its size. The zero Queue holds nothing and accepts nothing; New makes one. It
// is not safe for concurrent use: the sinks guard theirs with their own lock.
type Queue[T any] struct {
	buf        []T
	head, tail int // next to pop, next to fill
	n          int
	max        int
	min        int // initial size: never shrunk below
	peak       int // most items queued at a Note in the current window
	notes      int // Notes (consumer batches) in the current window
}

// shrinkWindow is how many consumer batches (Notes) make one window of Queue's
// shrink check: long enough to span many keyframe bursts of a reader (a sending
// goroutine wakes about once per frame, so some 10 s of a 25 fps stream), so a
// ring sized for its bursts keeps its size and allocates nothing; a ring a stall
// grew to thousands of slots comes back down within two windows of the backlog
// draining instead of holding that memory for the session's life.
const shrinkWindow = 256

// New returns a queue with room for initial items at first that grows up to
// limit items (initial is clipped to [1, limit]; limit < 1 accepts nothing).
func New[T any](initial, limit int) Queue[T] {
	if limit < 1 {
		return Queue[T]{}
	}
	size := min(max(initial, 1), limit)
	return Queue[T]{buf: make([]T, size), max: limit, min: size}
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int { return q.n }

// Cap is the ring's current size (not its bound): how many items fit before
// it grows again.
func (q *Queue[T]) Cap() int { return len(q.buf) }

// Push appends v, growing the ring if it is full and below its bound. It
// reports false, and keeps nothing, when the queue holds its limit of items: the caller
// drops (and counts) instead of waiting.
func (q *Queue[T]) Push(v T) bool {
	if q.n == len(q.buf) {
		return q.growPush(v)
	}
	q.buf[q.tail] = v
	if q.tail++; q.tail == len(q.buf) {
		q.tail = 0
	}
	q.n++
	return true
}

// growPush is Push into a full ring, apart so that Push stays small enough to
// inline on the per-packet path.
func (q *Queue[T]) growPush(v T) bool {
	if len(q.buf) >= q.max {
		return false
	}
	q.grow()
	return q.Push(v)
}

// grow doubles the ring (up to the limit), keeping the items in order from
// head. It allocates, but only while a reader's queue reaches a new
// high-water mark, never in steady state. The old array is left as it was,
// so a View taken before stays valid.
func (q *Queue[T]) grow() {
	q.resize(min(2*len(q.buf), q.max))
}

// resize moves the queued items, in order from head, into a new array of size
// items (at least Len).
func (q *Queue[T]) resize(size int) {
	buf := make([]T, size)
	for i := 0; i < q.n; i++ {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head, q.tail = buf, 0, q.n
	if q.tail == size {
		q.tail = 0
	}
}

// Front returns the oldest item, in place; the queue must not be empty. The
// pointer is good until the next Push or Pop.
func (q *Queue[T]) Front() *T { return &q.buf[q.head] }

// Pop removes and returns the oldest item; the queue must not be empty. Its
// slot is cleared, so the ring keeps no reference to what it handed out.
func (q *Queue[T]) Pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	if q.head++; q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
	return v
}

// Note tells the queue that its consumer is about to pop a batch. The consumer
// calls it once per batch, under the lock it pops under, so the per-item Pop
// stays as cheap as before: the depth at a batch's start is the most items
// queued since the last batch (only pops lower it). After shrinkWindow notes
// it settles the ring's size, which may move the items into a smaller array
// (a View taken before stays valid, as with growing).
func (q *Queue[T]) Note() {
	if q.n > q.peak {
		q.peak = q.n
	}
	if q.notes++; q.notes == shrinkWindow {
		q.settle()
	}
}

// settle ends a window of Notes: when the most items queued in it fit in a
// quarter of the ring, the ring is halved (repeatedly, not below its initial
// size) to the smallest size that still holds twice that peak, so the next
// bursts of the same size fit without growing again. It allocates, but only
// after a ring has grown and its backlog has since fallen, never in steady
// state.
func (q *Queue[T]) settle() {
	size := len(q.buf)
	for size/2 >= q.min && size/2 >= 2*q.peak {
		size /= 2
	}
	q.notes, q.peak = 0, q.n
	if size == len(q.buf) {
		return
	}
	q.resize(size)
}

// View returns the oldest k items (at most Len) without removing them. The
// view may be read without the queue's lock while its owner goes on pushing:
// pushes fill only slots past the viewed ones, and growing copies into a new
// array. The viewed items must stay queued (not popped) until it is done.
func (q *Queue[T]) View(k int) View[T] {
	return View[T]{buf: q.buf, head: q.head, n: min(k, q.n)}
}

// View is a read-only window on the oldest items of a Queue; see Queue.View.
type View[T any] struct {
	buf     []T
	head, n int
}

// Len is the number of items in the view.
func (v View[T]) Len() int { return v.n }

// At returns the i-th oldest item of the view, in place (0 <= i < Len).
func (v View[T]) At(i int) *T {
	j := v.head + i
	if j >= len(v.buf) {
		j -= len(v.buf)
	}
	return &v.buf[j]
}
