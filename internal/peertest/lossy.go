package peertest

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// LossyConfig configures a LossyRelay. The drop rules add up: a datagram is
// dropped when any of them says so.
type LossyConfig struct {
	// To is where datagrams are forwarded (a loopback address in tests).
	To netip.AddrPort
	// Random is the probability that a datagram is dropped, 0..1. Draws
	// come from a generator seeded with Seed, one per datagram whatever
	// the other rules decide, so a run with the same datagrams drops the
	// same ones.
	Random float64
	Seed   int64
	// Burst consecutive datagrams are dropped in every BurstEvery: the last
	// Burst of each group of BurstEvery datagrams (so the stream starts
	// clean). Both must be above 0 to take effect.
	Burst      int
	BurstEvery int
	// BurstOffset shifts the burst rule's count, so relays with the same
	// rule (two paths) drop at different places.
	BurstOffset int
	// Delay is added to every forwarded datagram; order is kept.
	Delay time.Duration
	// Listen is the address the relay listens on; the zero value picks a
	// free 127.0.0.1 port. Senders that derive ports from one base (2022-1
	// FEC on port+2 and port+4) need relays on chosen ports.
	Listen netip.AddrPort
}

// NamedLoss is one row of a residual-loss table: a name and the loss a LossyRelay induces.
type NamedLoss struct {
	Name string
	Cfg  LossyConfig
}

// TableLosses are the induced losses the protection tables measure against (random 1, 5 and
// 10 %, bursts of 5 and 20 in every 250), seeded so runs compare.
func TableLosses() []NamedLoss {
	return []NamedLoss{
		{"random 1 %", LossyConfig{Random: 0.01, Seed: 1}},
		{"random 5 %", LossyConfig{Random: 0.05, Seed: 2}},
		{"random 10 %", LossyConfig{Random: 0.10, Seed: 3}},
		{"bursts of 5 (every 250)", LossyConfig{Burst: 5, BurstEvery: 250}},
		{"bursts of 20 (every 250)", LossyConfig{Burst: 20, BurstEvery: 250}},
	}
}

// LossyStats are a relay's counters. Received = Forwarded + Dropped +
// Errors, plus what was still delayed when the relay stopped.
type LossyStats struct {
	Received  uint64 // datagrams read
	Forwarded uint64 // datagrams sent to To
	Dropped   uint64 // datagrams dropped by the rules
	Errors    uint64 // datagrams lost to send errors
}

// LossyRelay is a one-way UDP relay on 127.0.0.1 that drops and delays
// datagrams on purpose: the packet loss this kernel has no netem for. It
// forwards from its own socket, so To sees the relay's address as the
// source. Datagrams coming from To itself are ignored, so a receiver that
// answers cannot loop through the relay.
type LossyRelay struct {
	cfg  LossyConfig
	conn *net.UDPConn
	addr netip.AddrPort
	rng  *rand.Rand // owned by the read goroutine

	mu       sync.Mutex
	cutUntil time.Time
	dropped  []uint16
	st       LossyStats

	queue     chan delayed // read goroutine → delay goroutine (Delay > 0)
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type delayed struct {
	due time.Time
	b   []byte
}

// lossyQueue bounds the datagrams in flight in the delay line; at 100k
// datagrams/s it holds 160 ms. A full queue stalls the reader (the kernel
// buffer then absorbs) rather than dropping silently.
const lossyQueue = 16384

// StartLossyRelay starts a relay listening on a free 127.0.0.1 UDP port and
// forwarding to cfg.To. It stops, its goroutines ended, when the test ends
// (or at Close).
func StartLossyRelay(t testing.TB, cfg LossyConfig) *LossyRelay {
	t.Helper()
	if !cfg.To.IsValid() {
		t.Fatalf("StartLossyRelay: no destination")
	}
	if cfg.Random < 0 || cfg.Random > 1 {
		t.Fatalf("StartLossyRelay: Random %v outside 0..1", cfg.Random)
	}
	la := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if cfg.Listen.IsValid() {
		la = net.UDPAddrFromAddrPort(cfg.Listen)
	}
	c, err := net.ListenUDP("udp4", la)
	if err != nil {
		t.Fatalf("StartLossyRelay: %v", err)
	}
	// Bursts of a video frame arrive at once; a large buffer keeps the
	// relay from adding loss of its own. The kernel may cap it.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	cfg.To = netip.AddrPortFrom(cfg.To.Addr().Unmap(), cfg.To.Port())
	r := &LossyRelay{
		cfg:  cfg,
		conn: c,
		addr: c.LocalAddr().(*net.UDPAddr).AddrPort(),
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6f737379)),
		done: make(chan struct{}),
	}
	r.wg.Add(1)
	if cfg.Delay > 0 {
		r.queue = make(chan delayed, lossyQueue)
		r.wg.Add(1)
		go r.delayLoop()
	}
	go r.readLoop()
	t.Cleanup(r.Close)
	return r
}

// Addr returns the address senders should send to.
func (r *LossyRelay) Addr() netip.AddrPort { return r.addr }

// Cut drops every datagram for d from now, like a pulled cable. A later
// Cut replaces an earlier one.
func (r *LossyRelay) Cut(d time.Duration) {
	r.mu.Lock()
	r.cutUntil = time.Now().Add(d)
	r.mu.Unlock()
}

// Dropped returns the RTP sequence numbers of the dropped datagrams that
// parse as RTP (version 2, at least 12 bytes), in the order they came.
func (r *LossyRelay) Dropped() []uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint16(nil), r.dropped...)
}

// Stats returns the relay's counters.
func (r *LossyRelay) Stats() LossyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Close stops the relay and waits for its goroutines; datagrams still in
// the delay line are discarded. It is idempotent.
func (r *LossyRelay) Close() {
	r.closeOnce.Do(func() {
		close(r.done)
		r.conn.Close()
		r.wg.Wait()
	})
}

func (r *LossyRelay) readLoop() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	n := uint64(r.cfg.BurstOffset) // datagrams from senders, for the burst rule
	for {
		size, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. a truncated or refused datagram: keep relaying
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == r.cfg.To {
			continue
		}
		b := buf[:size]
		now := time.Now()
		drop := r.rng.Float64() < r.cfg.Random
		if c := r.cfg; c.Burst > 0 && c.BurstEvery > 0 && n%uint64(c.BurstEvery) >= uint64(max(c.BurstEvery-c.Burst, 0)) {
			drop = true
		}
		n++
		r.mu.Lock()
		r.st.Received++
		if now.Before(r.cutUntil) {
			drop = true
		}
		if drop {
			r.st.Dropped++
			if size >= 12 && b[0]>>6 == 2 {
				r.dropped = append(r.dropped, binary.BigEndian.Uint16(b[2:]))
			}
		}
		r.mu.Unlock()
		if drop {
			continue
		}
		if r.queue == nil {
			r.send(b)
			continue
		}
		select {
		case r.queue <- delayed{due: now.Add(r.cfg.Delay), b: append([]byte(nil), b...)}:
		case <-r.done:
			return
		}
	}
}

// delayLoop sends the delayed datagrams in order, each at its due time.
func (r *LossyRelay) delayLoop() {
	defer r.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var d delayed
		select {
		case d = <-r.queue:
		case <-r.done:
			return
		}
		if wait := time.Until(d.due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-r.done:
				return
			}
		}
		r.send(d.b)
	}
}

func (r *LossyRelay) send(b []byte) {
	_, err := r.conn.WriteToUDPAddrPort(b, r.cfg.To)
	r.mu.Lock()
	if err != nil {
		r.st.Errors++
	} else {
		r.st.Forwarded++
	}
	r.mu.Unlock()
}
