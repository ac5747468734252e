package rtp

import (
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/meshgw/meshgw/rtp/ring"
	"github.com/meshgw/meshgw/rtp/srtp"
)

const (
	// udpBatchPackets bounds the packets one batch holds across its messages
	// (a GSO message carries several).
	udpBatchPackets = 512
	// gsoMaxSegments is UDP_MAX_SEGMENTS of older kernels (newer allow 128).
	gsoMaxSegments = 64
	// gsoMaxBytes keeps a GSO datagram under the 64 KiB IP limit.
	gsoMaxBytes = 60000
	// paceSlack lets a paced packet leave up to this early, so one timer
	// wake-up sends what falls due together (and as GSO runs) instead of
	// waking once per packet per millisecond.
	paceSlack = int64(time.Millisecond)
	// gsoMaxSegment is the largest segment that still fits a 1500-byte MTU
	// over IPv6; a GSO segment may not need IP fragmentation, so larger
	// packets are sent one per message.
	gsoMaxSegment = 1452
)

// udpItem is one queued packet of a sink and the socket it leaves from.
type udpItem struct {
	p    *Packet
	rtcp bool
}

// UDPSink sends one reader's track over the pair. It implements Sink:
// delivery appends to a bounded ring (drop and count when full) and wakes
// the sink's egress worker without blocking.
type UDPSink struct {
	pair            *UDPPair
	w               *egressWorker
	rtpDst, rtcpDst *net.UDPAddr

	// queued is 1 while the ring holds packets: the worker's scan skips idle
	// sinks without taking their locks.
	queued atomic.Int32

	mu     sync.Mutex
	q      ring.Queue[udpItem]
	closed bool

	// srtp, when set, protects every packet on the sink's egress worker (never on the hub's
	// path, which fans out to every reader of a stream on one goroutine); only that worker
	// uses it.
	srtp *srtp.Protector

	packets, bytes, dropped, errors atomic.Uint64
}

// SRTPState reports where an SRTP sink's sender state stands (for another node to resume it);
// ok is false for a plain sink and before its first packet.
func (s *UDPSink) SRTPState() (srtp.SendState, bool) {
	if s.srtp == nil {
		return srtp.SendState{}, false
	}
	return s.srtp.State()
}

// DeliverRTP implements Sink.
func (s *UDPSink) DeliverRTP(p *Packet) { s.enqueue(p, false) }

// DeliverRTCP implements Sink.
func (s *UDPSink) DeliverRTCP(p *Packet) { s.enqueue(p, true) }

func (s *UDPSink) enqueue(p *Packet, rtcp bool) {
	s.mu.Lock()
	if s.closed || !s.q.Push(udpItem{p: p, rtcp: rtcp}) {
		s.mu.Unlock()
		s.dropped.Add(1)
		p.Release()
		return
	}
	s.queued.Store(1)
	s.mu.Unlock()
	if s.w != nil {
		s.w.notify()
	}
}

// Stats returns the sink's counters.
func (s *UDPSink) Stats() SinkStats {
	return SinkStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Dropped: s.dropped.Load(), Errors: s.errors.Load()}
}

// Close stops sending and releases the queued packets. Packets the egress
// worker has already taken into a batch are still sent. Idempotent.
func (s *UDPSink) Close() {
	u := s.pair
	u.sinksMu.Lock()
	if _, ok := u.sinks[s]; ok {
		delete(u.sinks, s)
		s.w.remove(s)
	}
	u.sinksMu.Unlock()
	s.close()
}

func (s *UDPSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for s.q.Len() > 0 {
		s.q.Pop().p.Release()
	}
	s.queued.Store(0)
}

// EgressStats are a UDP pair's sending counters, summed over its workers.
type EgressStats struct {
	Syscalls    uint64 // sendmmsg calls
	Datagrams   uint64 // messages handed to the kernel (a GSO message counts once)
	GSOSegments uint64 // packets that left inside GSO messages
}

// egressWorker sends for its share of the pair's sinks. Sinks are not put
// on a shared ready list: a delivery only marks its own sink and pokes the
// worker's wake channel (lock-free when a wake is already pending), and the
// worker scans its sinks. With hundreds of readers of one stream almost
// every sink has a packet at each wake, so the scan costs nothing extra.
type egressWorker struct {
	u     *UDPPair
	count int // sinks assigned; guarded by u.sinksMu
	sinks atomic.Pointer[[]*UDPSink]
	wake  chan struct{} // capacity 1; never blocks a producer

	// owned by the worker goroutine
	rtp, rtcp *udpBatchBuf
	taken     [udpBurst]udpItem // one turn's packets of one sink, moved out under its lock
	timer     *time.Timer       // paced packets not yet due
	single    []ipv4.Message

	syscalls, datagrams, gsoSegments atomic.Uint64
}

func newEgressWorker(u *UDPPair) *egressWorker {
	w := &egressWorker{
		u:      u,
		wake:   make(chan struct{}, 1),
		rtp:    newUDPBatch(),
		rtcp:   newUDPBatch(),
		timer:  time.NewTimer(time.Hour),
		single: make([]ipv4.Message, 1),
	}
	w.timer.Stop()
	w.single[0].Buffers = make([][]byte, 1)
	empty := []*UDPSink{}
	w.sinks.Store(&empty)
	return w
}

func (w *egressWorker) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// add appends to the sink list in place, as Hub.AddSink does and for the same reason
// (the scan reads only up to its own list's length, and remove publishes a fresh array);
// remove copies it. The caller holds u.sinksMu.
func (w *egressWorker) add(s *UDPSink) {
	old := *w.sinks.Load()
	next := append(old, s)
	w.sinks.Store(&next)
	w.count++
}

func (w *egressWorker) remove(s *UDPSink) {
	old := *w.sinks.Load()
	next := make([]*UDPSink, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	w.sinks.Store(&next)
	w.count--
}

func (w *egressWorker) run() {
	defer w.u.wg.Done()
	defer w.timer.Stop()
	for {
		select {
		case <-w.wake:
		case <-w.timer.C:
		case <-w.u.done:
			return
		}
		w.drain()
	}
}

// drain sends everything due, in rounds of up to udpBurst packets per sink
// so one busy sink cannot starve the others, then arms the timer for the
// earliest paced packet still waiting.
func (w *egressWorker) drain() {
	for {
		now := Now() + paceSlack
		next := int64(math.MaxInt64)
		took := false
		for _, s := range *w.sinks.Load() {
			if s.queued.Load() == 0 {
				continue
			}
			n, wait := w.take(s, now)
			took = took || n > 0
			if wait != 0 && wait < next {
				next = wait
			}
		}
		w.flush()
		if !took {
			if next != math.MaxInt64 {
				w.timer.Reset(time.Duration(next - paceSlack - Now()))
			}
			return
		}
	}
}

// take moves up to udpBurst due packets of s into the batches. It returns
// how many it took and, when it stopped at a paced packet not yet due, that
// packet's departure time.
func (w *egressWorker) take(s *UDPSink, now int64) (taken int, wait int64) {
	gso := w.u.gso.Load()
	for taken < udpBurst {
		if w.rtp.room() == 0 || w.rtcp.room() == 0 {
			w.flush() // never under s.mu: the hub must not wait for a syscall
		}
		room := min(udpBurst-taken, w.rtp.room(), w.rtcp.room())
		s.mu.Lock()
		s.q.Note() // once per batch: the ring's shrink check after a backlog
		k := 0
		for ; k < room && s.q.Len() > 0; k++ {
			if it := s.q.Front(); !it.rtcp && it.p.depart > now {
				wait = it.p.depart
				break
			}
			w.taken[k] = s.q.Pop()
		}
		if s.q.Len() == 0 {
			s.queued.Store(0)
		}
		more := s.q.Len() > 0
		s.mu.Unlock()
		// protection and batching happen outside the lock: the hub must not wait for them
		for _, it := range w.taken[:k] {
			p := it.p
			if s.srtp != nil {
				if p = w.protect(s, it); p == nil {
					continue
				}
			}
			if it.rtcp {
				w.rtcp.add(s, p, s.rtcpDst, false)
			} else {
				w.rtp.add(s, p, s.rtpDst, gso)
			}
		}
		clear(w.taken[:k])
		taken += k
		if wait != 0 || !more {
			return taken, wait
		}
	}
	return taken, 0
}

// protect encrypts a taken packet into a buffer of the sink's own and releases the shared
// one; nil means it could not be protected (counted as an error, dropped).
func (w *egressWorker) protect(s *UDPSink, it udpItem) *Packet {
	in := it.p
	over := srtp.RTPOverhead
	if it.rtcp {
		over = srtp.RTCPOverhead
	}
	q := w.u.pool.Get(len(in.buf) + over)
	var n int
	var err error
	if it.rtcp {
		n, err = s.srtp.ProtectRTCP(q.buf, in.buf)
	} else {
		n, err = s.srtp.ProtectRTP(q.buf, in.buf)
	}
	in.Release()
	if err != nil {
		q.Release()
		s.errors.Add(1)
		return nil
	}
	q.buf = q.buf[:n]
	return q
}

func (w *egressWorker) flush() {
	w.send(w.u.rtpW, w.rtp)
	w.send(w.u.rtcpW, w.rtcp)
}

// send writes a batch with as few sendmmsg calls as the kernel allows. A
// failing message (sendmmsg reports an error only for the first message of a
// call) is counted against its sink and skipped, so one bad destination does
// not stall the others.
func (w *egressWorker) send(bw batchWriter, b *udpBatchBuf) {
	u := w.u
	for i := 0; i < b.n; {
		n, err := bw.WriteBatch(b.msgs[i:b.n], 0)
		w.syscalls.Add(1)
		for j := i; j < i+n; j++ {
			b.sent(j)
		}
		w.datagrams.Add(uint64(n))
		i += n
		if err == nil && n > 0 {
			continue
		}
		select {
		case <-u.done: // sockets closed: the rest cannot be sent
			for ; i < b.n; i++ {
				b.sinks[i].errors.Add(uint64(b.nseg[i]))
			}
		default:
			if b.nseg[i] > 1 && gsoRefused(err) {
				w.resendSegments(bw, b, i, err)
			} else {
				s := b.sinks[i]
				if s.errors.Add(uint64(b.nseg[i])) == uint64(b.nseg[i]) {
					u.log.Warn("rtp: UDP send failed", "dst", b.msgs[i].Addr, "err", err)
				}
			}
			i++
		}
	}
	for _, j := range b.gsoMsgs[:b.ng] {
		w.gsoSegments.Add(uint64(b.nseg[j]))
	}
	b.reset()
}

// gsoRefused tells the errors with which a kernel or egress device turns
// down UDP_SEGMENT (no support, no checksum offload, segment over the MTU).
func gsoRefused(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, syscall.EOPNOTSUPP)
}

// resendSegments switches GSO off for the pair (for good: a refusal is a
// property of the kernel or the route, not of one packet) and sends message
// i's packets one by one.
func (w *egressWorker) resendSegments(bw batchWriter, b *udpBatchBuf, i int, cause error) {
	if w.u.gso.Swap(false) {
		w.u.log.Warn("rtp: UDP GSO refused, sending one datagram per packet", "dst", b.msgs[i].Addr, "err", cause)
	}
	m := &w.single[0]
	m.Addr = b.msgs[i].Addr
	s := b.sinks[i]
	for _, seg := range b.msgs[i].Buffers {
		m.Buffers[0] = seg
		n, err := bw.WriteBatch(w.single, 0)
		w.syscalls.Add(1)
		if n == 1 && err == nil {
			s.packets.Add(1)
			s.bytes.Add(uint64(len(seg)))
			w.datagrams.Add(1)
		} else {
			s.errors.Add(1)
		}
	}
	m.Buffers[0] = nil
	m.Addr = nil
}

// udpBatchBuf is one preallocated sendmmsg batch. Consecutive equal-size
// packets of one sink share a message as GSO segments.
type udpBatchBuf struct {
	msgs    []ipv4.Message // Buffers preallocated with gsoMaxSegments slots
	oob     [][]byte       // per message: room for the UDP_SEGMENT cmsg
	sinks   []*UDPSink     // per message
	nseg    []int          // per message: packets in it
	segSize []int          // per message: size of its first packet
	msgLen  []int          // per message: bytes
	closed  []bool         // per message: a short segment ended the run
	gsoMsgs []int          // indexes of messages with more than one segment
	ng      int
	pkts    []*Packet // flat, in message order; released after the send
	n, np   int
}

func newUDPBatch() *udpBatchBuf {
	b := &udpBatchBuf{
		msgs:    make([]ipv4.Message, udpBatch),
		oob:     make([][]byte, udpBatch),
		sinks:   make([]*UDPSink, udpBatch),
		nseg:    make([]int, udpBatch),
		segSize: make([]int, udpBatch),
		msgLen:  make([]int, udpBatch),
		closed:  make([]bool, udpBatch),
		gsoMsgs: make([]int, udpBatch),
		pkts:    make([]*Packet, udpBatchPackets),
	}
	for i := range b.msgs {
		b.msgs[i].Buffers = make([][]byte, 0, gsoMaxSegments)
		b.oob[i] = make([]byte, gsoCmsgSpace())
	}
	return b
}

// room is how many more packets the batch surely takes.
func (b *udpBatchBuf) room() int { return min(len(b.msgs)-b.n, len(b.pkts)-b.np) }

func (b *udpBatchBuf) add(s *UDPSink, p *Packet, dst *net.UDPAddr, gso bool) {
	l := len(p.buf)
	b.pkts[b.np] = p
	b.np++
	if gso && b.n > 0 {
		i := b.n - 1
		if b.sinks[i] == s && !b.closed[i] && l <= b.segSize[i] &&
			b.nseg[i] < gsoMaxSegments && b.msgLen[i]+l <= gsoMaxBytes {
			m := &b.msgs[i]
			m.Buffers = append(m.Buffers, p.buf)
			if b.nseg[i] == 1 {
				putGSOSize(b.oob[i], b.segSize[i])
				m.OOB = b.oob[i]
				b.gsoMsgs[b.ng] = i
				b.ng++
			}
			b.nseg[i]++
			b.msgLen[i] += l
			b.closed[i] = l < b.segSize[i]
			return
		}
	}
	i := b.n
	b.n++
	m := &b.msgs[i]
	m.Buffers = append(m.Buffers[:0], p.buf)
	m.Addr = dst
	m.OOB = nil
	b.sinks[i] = s
	b.nseg[i] = 1
	b.segSize[i] = l
	b.msgLen[i] = l
	b.closed[i] = l > gsoMaxSegment
}

// sent credits message j's packets to its sink.
func (b *udpBatchBuf) sent(j int) {
	s := b.sinks[j]
	s.packets.Add(uint64(b.nseg[j]))
	s.bytes.Add(uint64(b.msgLen[j]))
}

func (b *udpBatchBuf) reset() {
	for j := 0; j < b.np; j++ {
		b.pkts[j].Release()
		b.pkts[j] = nil
	}
	for j := 0; j < b.n; j++ {
		m := &b.msgs[j]
		clear(m.Buffers)
		m.Buffers = m.Buffers[:0]
		m.Addr = nil
		m.OOB = nil
		b.sinks[j] = nil
	}
	b.n, b.np, b.ng = 0, 0, 0
}

// EgressStats returns the pair's egress counters.
func (u *UDPPair) EgressStats() EgressStats {
	var st EgressStats
	for _, w := range u.workers {
		st.Syscalls += w.syscalls.Load()
		st.Datagrams += w.datagrams.Load()
		st.GSOSegments += w.gsoSegments.Load()
	}
	return st
}
