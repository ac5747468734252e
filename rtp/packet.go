package rtp

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Size classes of a Pool. Small covers every RTP packet that fits an
// Ethernet or loopback datagram we expect; large covers the 16-bit length of
// an RTSP-interleaved frame and jumbo/loopback datagrams.
const (
	SmallPacketSize = 2048
	LargePacketSize = 65536
)

// monoBase is the immutable origin of the package's monotonic clock. It is
// set once at init and never written again, so it is not shared mutable
// state; it exists because the runtime exposes the monotonic clock only as a
// difference between two time.Time values.
var monoBase = time.Now()

// Now returns the monotonic clock in nanoseconds on the same scale as
// Packet.RecvTime, so callers can measure latency as Now()-p.RecvTime().
func Now() int64 { return int64(time.Since(monoBase)) }

// Packet is a pooled, reference-counted packet buffer shared read-only by
// sinks. The hub (or whoever called Pool.Get) holds the first reference;
// every additional holder calls Ref and every holder calls Release exactly
// once. After its last Release the buffer is reused, so nobody may touch it.
type Packet struct {
	buf  []byte // len = current packet length, cap = size class
	refs atomic.Int32
	recv int64
	// depart is when a paced packet may leave (monotonic, see Now); 0 means
	// at once. Set by the hub before the packet is shared.
	depart int64
	pool   *Pool
	cls    *sync.Pool // nil for an oversize, unpooled packet
}

// Bytes returns the packet bytes. They are shared: do not modify them once
// the packet has been handed to more than one holder.
func (p *Packet) Bytes() []byte { return p.buf }

// RecvTime returns the monotonic time (see Now) at which the packet entered
// the node.
func (p *Packet) RecvTime() int64 { return p.recv }

// SetRecvTime records when the packet entered the node (monotonic, see Now).
func (p *Packet) SetRecvTime(t int64) { p.recv = t }

// Depart returns when a paced packet may leave (monotonic, see Now); 0 is at once.
func (p *Packet) Depart() int64 { return p.depart }

// SetDepart makes a packet leave no earlier than t (monotonic, see Now), so a packet made from
// others (2022-1 FEC) follows them when they are paced. Set it before sharing the packet.
func (p *Packet) SetDepart(t int64) { p.depart = t }

// Ref takes one more reference.
func (p *Packet) Ref() { p.refs.Add(1) }

// Release drops one reference; the last one returns the packet to its pool.
// Releasing more often than referenced is a bug that would hand one buffer to
// two owners, so it panics instead of corrupting media silently.
func (p *Packet) Release() {
	switch n := p.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic(fmt.Sprintf("rtp: Packet released %d times too often", -n))
	}
	p.pool.inUse.Add(-1)
	if p.cls != nil {
		p.buf = p.buf[:0]
		p.cls.Put(p)
	}
}

// Pool hands out Packets in two size classes. It is safe for concurrent use.
// Free packets live in sync.Pools (per-P caches, no lock on the fast path);
// the pool also counts packets in use so tests can prove nothing leaks.
type Pool struct {
	small sync.Pool
	large sync.Pool
	inUse atomic.Int64
}

// NewPool returns an empty pool; buffers are allocated on demand and reused.
func NewPool() *Pool {
	p := &Pool{}
	p.small.New = func() any {
		return &Packet{buf: make([]byte, 0, SmallPacketSize), pool: p, cls: &p.small}
	}
	p.large.New = func() any {
		return &Packet{buf: make([]byte, 0, LargePacketSize), pool: p, cls: &p.large}
	}
	return p
}

// Get returns a packet of length n with one reference. Packets larger than
// LargePacketSize (which neither UDP nor interleaved framing can carry) are
// allocated outside the pool and simply dropped on their last Release.
func (p *Pool) Get(n int) *Packet {
	if n < 0 {
		panic(fmt.Sprintf("rtp: Pool.Get(%d): negative length", n))
	}
	var pk *Packet
	switch {
	case n <= SmallPacketSize:
		pk = p.small.Get().(*Packet)
	case n <= LargePacketSize:
		pk = p.large.Get().(*Packet)
	default:
		pk = &Packet{buf: make([]byte, 0, n), pool: p}
	}
	pk.buf = pk.buf[:n]
	pk.recv = 0
	pk.depart = 0
	pk.refs.Store(1)
	p.inUse.Add(1)
	return pk
}

// inUseCount reports packets handed out and not yet fully released (tests).
func (p *Pool) inUseCount() int64 { return p.inUse.Load() }
