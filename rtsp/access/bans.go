package access

import (
	"net/netip"
	"sync"
	"sync/atomic"
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

	// failures and bans count every failed login and every ban since the start, for metrics.
	failures, bans atomic.Uint64
}

type banRecord struct {
	fails  []time.Time // times of recent failures, oldest first, at most MaxFailures
	until  time.Time   // banned until; zero when not banned
	latest time.Time
	// pending counts attempts reserved and not yet confirmed (their password is being checked).
	pending int
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
	if b == nil {
		return 0, false
	}
	if b.cfg.MaxFailures <= 0 {
		b.failures.Add(1)
		return 0, false
	}
	addr = ClientKey(addr)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failLocked(b.recordLocked(addr, now), now)
}

// Attempt is one password check's place in its address's failure count, taken before the check
// runs so that checks already in flight count toward the ban: without it, guesses that arrive
// together are all verified before the first failure is counted. Exactly one of Fail and Release
// settles it; later calls do nothing.
type Attempt struct {
	b    *Bans
	addr netip.Addr
	done bool
	// countOnly: the Bans never bans (MaxFailures 0); Fail only counts the failure.
	countOnly bool
}

// Reserve takes a place for one password check from addr. It refuses (nil, false) when the
// address's failures in the window plus its checks in flight already reach MaxFailures, or it is
// banned: then at most MaxFailures guesses per address are ever verified in a window, however
// many arrive at once. A nil Bans always grants a nil *Attempt, whose methods do nothing; one
// that never bans grants an Attempt that only counts a failure (Counts).
func (b *Bans) Reserve(addr netip.Addr) (*Attempt, bool) {
	if b == nil {
		return nil, true
	}
	if b.cfg.MaxFailures <= 0 {
		return &Attempt{b: b, countOnly: true}, true
	}
	addr = ClientKey(addr)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.recordLocked(addr, now)
	if !r.until.IsZero() {
		if now.Before(r.until) {
			return nil, false
		}
		r.until, r.fails = time.Time{}, r.fails[:0] // the ban ran out, as in Banned
	}
	if b.recentLocked(r, now)+r.pending >= b.cfg.MaxFailures {
		return nil, false
	}
	r.pending++
	return &Attempt{b: b, addr: addr}, true
}

// Fail confirms the attempt as a failed login: it counts like Bans.Fail.
func (a *Attempt) Fail() (int, bool) {
	if a == nil || a.done {
		return 0, false
	}
	a.done = true
	if a.countOnly {
		a.b.failures.Add(1)
		return 0, false
	}
	now := a.b.now()
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	r := a.b.recordLocked(a.addr, now)
	r.pending = max(r.pending-1, 0)
	return a.b.failLocked(r, now)
}

// Release gives the place back without counting a failure (the password was right, or it was
// never checked).
func (a *Attempt) Release() {
	if a == nil || a.done {
		return
	}
	a.done = true
	if a.countOnly {
		return
	}
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	if r := a.b.addrs[a.addr]; r != nil {
		r.pending = max(r.pending-1, 0)
	}
}

// recordLocked is addr's record, made (evicting if the table is full) when there is none.
func (b *Bans) recordLocked(addr netip.Addr, now time.Time) *banRecord {
	r := b.addrs[addr]
	if r == nil {
		if len(b.addrs) >= b.cfg.MaxTracked {
			b.evictLocked(now)
		}
		r = &banRecord{latest: now}
		b.addrs[addr] = r
	}
	return r
}

// recentLocked drops failures older than the window and counts the rest.
func (b *Bans) recentLocked(r *banRecord, now time.Time) int {
	kept := r.fails[:0]
	for _, t := range r.fails {
		if now.Sub(t) < b.cfg.Window {
			kept = append(kept, t)
		}
	}
	r.fails = kept
	return len(kept)
}

func (b *Bans) failLocked(r *banRecord, now time.Time) (int, bool) {
	b.failures.Add(1)
	r.latest = now
	b.recentLocked(r, now)
	r.fails = append(r.fails, now)
	if len(r.fails) > b.cfg.MaxFailures {
		r.fails = r.fails[len(r.fails)-b.cfg.MaxFailures:]
	}
	n := len(r.fails)
	if n >= b.cfg.MaxFailures && r.until.IsZero() {
		r.until = now.Add(b.cfg.BanTime)
		b.bans.Add(1)
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
		if r.pending > 0 {
			continue // an attempt in flight will settle on this record
		}
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

// Counts are the failed logins and the bans since the Bans was made, and the addresses banned
// now. A nil Bans counts nothing.
func (b *Bans) Counts() (failures, bans uint64, banned int) {
	if b == nil {
		return 0, 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for _, r := range b.addrs {
		if !r.until.IsZero() && now.Before(r.until) {
			banned++
		}
	}
	return b.failures.Load(), b.bans.Load(), banned
}

// Tracked is the number of addresses remembered (for tests and metrics).
func (b *Bans) Tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.addrs)
}
