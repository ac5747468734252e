package access

import (
	"net/netip"
	"sync"
	"time"
)

// BanConfig bounds failed authentication attempts per client address.
type BanConfig struct {
	// MaxFailures failed attempts within Window ban the address for BanTime.
	MaxFailures int
	Window      time.Duration
	BanTime     time.Duration
	// MaxTracked caps the addresses remembered (memory bound under a spread attack); 0 means 65536.
	MaxTracked int
}

// Bans counts failed attempts per address and bans addresses that fail too often. It runs no
// goroutine: stale entries are dropped when the table is full.
type Bans struct {
	cfg BanConfig
	now func() time.Time

	mu    sync.Mutex
	addrs map[netip.Addr]*banRecord
}

type banRecord struct {
	fails  []time.Time // times of recent failures, oldest first, at most MaxFailures
	until  time.Time   // banned until; zero when not banned
	latest time.Time
}

// ClientKey is the address a client is counted under, for bans and per-address limits: an IPv4
// address itself, and for IPv6 its /64, because one host usually holds a whole /64 and could
// otherwise step around a ban or a cap by changing addresses.
func ClientKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// NewBans makes a failure counter; now is the clock (nil: time.Now), replaceable in tests.
func NewBans(cfg BanConfig, now func() time.Time) *Bans {
	if now == nil {
		now = time.Now
	}
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 65536
	}
	return &Bans{cfg: cfg, now: now, addrs: map[netip.Addr]*banRecord{}}
}

// Banned reports whether addr is banned now and until when.
func (b *Bans) Banned(addr netip.Addr) (time.Time, bool) {
	if b == nil {
		return time.Time{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.addrs[ClientKey(addr)]
	if r == nil || r.until.IsZero() {
		return time.Time{}, false
	}
	if !b.now().Before(r.until) {
		r.until = time.Time{}
		r.fails = r.fails[:0]
		return time.Time{}, false
	}
	return r.until, true
}

// Fail records a failed attempt from addr. It returns the number of failures inside the window
// and whether this one banned the address.
func (b *Bans) Fail(addr netip.Addr) (int, bool) {
	if b == nil || b.cfg.MaxFailures <= 0 {
		return 0, false
	}
	addr = ClientKey(addr)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.addrs[addr]
	if r == nil {
		if len(b.addrs) >= b.cfg.MaxTracked {
			b.evictLocked(now)
		}
		r = &banRecord{}
		b.addrs[addr] = r
	}
	r.latest = now
	kept := r.fails[:0]
	for _, t := range r.fails {
		if now.Sub(t) < b.cfg.Window {
			kept = append(kept, t)
		}
	}
	r.fails = append(kept, now)
	if len(r.fails) > b.cfg.MaxFailures {
		r.fails = r.fails[len(r.fails)-b.cfg.MaxFailures:]
	}
	n := len(r.fails)
	if n >= b.cfg.MaxFailures && r.until.IsZero() {
		r.until = now.Add(b.cfg.BanTime)
		return n, true
	}
	return n, false
}

// evictLocked makes room: first everything stale, then, if the table is still full (an attack
// from very many addresses), the entry that failed least recently and is not banned.
func (b *Bans) evictLocked(now time.Time) {
	var oldest netip.Addr
	var oldestT time.Time
	for a, r := range b.addrs {
		if (r.until.IsZero() || !now.Before(r.until)) && now.Sub(r.latest) >= b.cfg.Window {
			delete(b.addrs, a)
			continue
		}
		if r.until.IsZero() && (oldestT.IsZero() || r.latest.Before(oldestT)) {
			oldest, oldestT = a, r.latest
		}
	}
	if len(b.addrs) >= b.cfg.MaxTracked && oldest.IsValid() {
		delete(b.addrs, oldest)
	}
}

// Tracked is the number of addresses remembered (for tests and metrics).
func (b *Bans) Tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.addrs)
}
