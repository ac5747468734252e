package access

import (
	"net/netip"
	"testing"
	"time"
)

func TestBansCounts(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBans(BanConfig{MaxFailures: 2, Window: time.Minute, BanTime: time.Minute}, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	b.Fail(a)
	att, ok := b.Reserve(a)
	if !ok {
		t.Fatal("reserve refused before the ban")
	}
	att.Fail() // second failure: banned
	if f, bans, banned := b.Counts(); f != 2 || bans != 1 || banned != 1 {
		t.Errorf("counts %d %d %d, want 2 1 1", f, bans, banned)
	}
	now = now.Add(2 * time.Minute)
	if f, bans, banned := b.Counts(); f != 2 || bans != 1 || banned != 0 {
		t.Errorf("after the ban: %d %d %d, want 2 1 0", f, bans, banned)
	}
	// a Bans that never bans still counts failures
	nb := NewBans(BanConfig{}, nil)
	att, _ = nb.Reserve(a)
	att.Fail()
	nb.Fail(a)
	if f, bans, _ := nb.Counts(); f != 2 || bans != 0 {
		t.Errorf("never-ban counts %d %d, want 2 0", f, bans)
	}
	var nilBans *Bans
	if f, _, _ := nilBans.Counts(); f != 0 {
		t.Error("nil Bans counted")
	}
}
