package rtp

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp/srtp"
)

// seqRec is a chain's end that records the sequence numbers it gets.
type seqRec struct {
	mu   sync.Mutex
	seqs []uint16
}

func (r *seqRec) WriteRTP(b []byte) {
	r.mu.Lock()
	r.seqs = append(r.seqs, binary.BigEndian.Uint16(b[2:]))
	r.mu.Unlock()
}

func (r *seqRec) got() []uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// tagStage appends its tag to a packet's payload, so the order of the stages shows.
type tagStage struct {
	tag  byte
	next Writer
	buf  []byte
}

func (s *tagStage) Bind(next Writer) Writer { s.next = next; return s }
func (s *tagStage) WriteRTP(b []byte) {
	s.buf = append(append(s.buf[:0], b...), s.tag)
	s.next.WriteRTP(s.buf)
}

type lastBytes struct{ b []byte }

func (l *lastBytes) WriteRTP(b []byte) { l.b = slices.Clone(b) }

// TestChainOrder: a chain runs its stages in the order listed, leaves nil ones out and ends in
// the writer given to To.
func TestChainOrder(t *testing.T) {
	end := &lastBytes{}
	var none Stage
	head := Chain(&tagStage{tag: 'a'}, none, &tagStage{tag: 'b'}).To(end)
	head.WriteRTP(mkRTP(1, 1, 0, 0))
	if got := string(end.b[12:]); got != "ab" {
		t.Fatalf("stages ran as %q, want \"ab\"", got)
	}
	if Chain().To(end) != Writer(end) {
		t.Error("an empty chain is not its end")
	}
}

func newUnprotect(t *testing.T, k *srtp.Key) *Unprotect {
	u := &Unprotect{Ctx: new(atomic.Pointer[srtp.Unprotector]), Errors: new(atomic.Uint64), Last: new(atomic.Int64)}
	if k != nil {
		un, err := srtp.NewUnprotector(*k, nil)
		if err != nil {
			t.Fatal(err)
		}
		u.Ctx.Store(un)
	}
	return u
}

// TestUnprotectStage: with a context the stage passes what the key's holder protected,
// decrypted, and counts and drops the rest; without one it passes everything. Both stamp the
// last activity of what passes.
func TestUnprotectStage(t *testing.T) {
	k, err := srtp.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	prot, err := srtp.NewProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	rec := &seqRec{}
	u := newUnprotect(t, &k)
	head := Chain(u).To(rec)
	wire := make([]byte, 2048)
	n, err := prot.ProtectRTP(wire, mkRTP(9, 5, 0, 100))
	if err != nil {
		t.Fatal(err)
	}
	head.WriteRTP(wire[:n])
	head.WriteRTP(mkRTP(9, 6, 0, 100)) // plain: fails authentication
	if got := rec.got(); !slices.Equal(got, []uint16{5}) || u.Errors.Load() != 1 || u.Last.Load() == 0 {
		t.Fatalf("passed %v, %d errors, last %d; want [5], 1 error, a last activity", got, u.Errors.Load(), u.Last.Load())
	}
	plain := newUnprotect(t, nil)
	Chain(plain).To(rec).WriteRTP(mkRTP(9, 7, 0, 100))
	if got := rec.got(); !slices.Equal(got, []uint16{5, 7}) || plain.Errors.Load() != 0 {
		t.Fatalf("plain stage passed %v with %d errors", got, plain.Errors.Load())
	}
}

// TestMergeStage: the legs of a merge stage meet in one line, each number once, in order.
func TestMergeStage(t *testing.T) {
	rec := &seqRec{}
	var mu sync.Mutex
	m := NewMerge(MergeConfig{Skew: 20 * time.Millisecond, Unprotect: newUnprotect(t, nil), Mu: &mu})
	head := Chain(m).To(rec)
	defer m.Close()
	if head != m.Leg(0) {
		t.Error("the chain's head is not leg 0")
	}
	for _, s := range []uint16{1, 2, 4} {
		m.Leg(0).WriteRTP(mkRTP(3, s, 0, 10))
	}
	for _, s := range []uint16{1, 2, 3, 4, 5} {
		m.Leg(1).WriteRTP(mkRTP(3, s, 0, 10))
	}
	want := []uint16{1, 2, 3, 4, 5}
	deadline := time.Now().Add(2 * time.Second)
	for !slices.Equal(rec.got(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("merged %v, want %v", rec.got(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := m.Stats(); st.Legs[1].Duplicates != 3 {
		t.Errorf("leg 1 duplicates %d, want 3", st.Legs[1].Duplicates)
	}
}
