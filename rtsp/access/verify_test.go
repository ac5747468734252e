package access

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestBansReserve(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBans(BanConfig{MaxFailures: 3, Window: time.Minute, BanTime: 10 * time.Minute, MaxTracked: 2}, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	// three checks in flight fill the address's allowance; a fourth is refused before it runs
	var atts []*Attempt
	for i := range 3 {
		att, ok := b.Reserve(a)
		if !ok {
			t.Fatalf("reservation %d refused", i)
		}
		atts = append(atts, att)
	}
	if _, ok := b.Reserve(netip.MustParseAddr("::ffff:192.0.2.1")); ok {
		t.Fatal("a fourth check in flight was allowed (v4-mapped address)")
	}
	// a right password gives its place back without counting
	atts[0].Release()
	atts[0].Fail() // settled already: does nothing
	if _, banned := b.Banned(a); banned {
		t.Fatal("banned after a release")
	}
	att, ok := b.Reserve(a)
	if !ok {
		t.Fatal("released place not reusable")
	}
	// failures confirm; the third bans, and the ban refuses reservations
	atts[1].Fail()
	atts[2].Fail()
	if n, banned := att.Fail(); n != 3 || !banned {
		t.Fatalf("third confirmed failure: n=%d banned=%v", n, banned)
	}
	att.Release() // settled already: does nothing
	if _, ok := b.Reserve(a); ok {
		t.Fatal("banned address got a reservation")
	}
	// a record with checks in flight is not evicted by a spread attack: its places stay taken
	now = now.Add(20 * time.Minute)
	c := netip.MustParseAddr("192.0.2.3")
	var held []*Attempt
	for range 3 {
		h, _ := b.Reserve(c)
		held = append(held, h)
	}
	for i := range 50 {
		b.Fail(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if _, ok := b.Reserve(c); ok {
		t.Error("checks in flight forgotten under a spread attack: a fourth was reserved")
	}
	for _, h := range held {
		h.Release()
	}
	// the ban ran out for a: reservations are granted again
	if _, ok := b.Reserve(a); !ok {
		t.Error("reservation refused after the ban ran out")
	}
	// nil Bans and a Bans that never bans always grant
	var nilBans *Bans
	if att, ok := nilBans.Reserve(a); !ok || att != nil {
		t.Error("nil Bans refused")
	}
	never := NewBans(BanConfig{}, nil)
	for range 10 {
		att, ok := never.Reserve(a)
		if !ok {
			t.Fatal("max_failures 0 refused")
		}
		att.Fail()
	}
}

func TestVerifier(t *testing.T) {
	v := NewVerifier(VerifierConfig{Slots: 1, Wait: 20 * time.Millisecond})
	if v.Slots() != 1 || v.Wait() != 20*time.Millisecond {
		t.Fatalf("slots %d wait %v", v.Slots(), v.Wait())
	}
	if d := NewVerifier(VerifierConfig{}); d.Slots() < 1 || d.Wait() != DefaultHashWait {
		t.Errorf("defaults: slots %d wait %v", d.Slots(), d.Wait())
	}
	enc, err := HashBcrypt("pw")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParsePasswordHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := v.Verify(context.Background(), h, "pw"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := v.Verify(context.Background(), nil, "pw"); ok || err != nil {
		t.Fatalf("dummy check: %v %v", ok, err)
	}
	// a held slot: a check waits its bounded time and is refused without hashing
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- v.Run(context.Background(), func() { close(held); <-release })
	}()
	<-held
	if ok, err := v.Verify(context.Background(), h, "pw"); ok || !errors.Is(err, ErrBusy) {
		t.Errorf("saturated: %v %v, want ErrBusy", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, h, "pw"); !errors.Is(err, context.Canceled) && !errors.Is(err, ErrBusy) {
		t.Errorf("cancelled: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := v.Runs(); n != 2 {
		t.Errorf("%d hashes counted, want 2 (the refused checks ran none)", n)
	}
	if h.MemoryKiB() != bcryptMemoryKiB {
		t.Errorf("bcrypt memory %d KiB", h.MemoryKiB())
	}
}
