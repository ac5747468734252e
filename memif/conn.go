package memif

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one connected memif interface, as master or slave: its mapped regions, its rings and
// the control socket that watches for the peer's DISCONNECT. Its owner uses Tx and Rx from one
// goroutine each, watches Done, and Closes it (only Close unmaps the memory, so a peer leaving
// never pulls memory from under a reader).
type Conn struct {
	master   bool
	ctl      *ctl
	peerName string
	id       uint32
	regions  []region
	s2m, m2s []*ring
	ringAt   []ringAt // master: where the rings are, for the cookie check at CONNECT
	bufSize  uint32   // slave: its buffer size

	txs []*Tx
	rxs []*Rx

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	err       error
	onGone    func()
	log       *slog.Logger // nil: no line when the peer goes
}

// ID is the interface id the connection was made for.
func (c *Conn) ID() uint32 { return c.id }

// PeerName is the name the peer gave (INIT's name for a master's peer, HELLO's for a slave's).
func (c *Conn) PeerName() string { return c.peerName }

// Queues is the number of queue pairs (rings per direction) the connection has.
func (c *Conn) Queues() int { return min(len(c.s2m), len(c.m2s)) }

// Done is closed when the peer disconnected or the connection failed; Err says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection with err (the first reason wins).
func (c *Conn) fail(err error) {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = err
	}
	c.mu.Unlock()
	if first {
		close(c.done)
		if c.onGone != nil {
			c.onGone()
		}
	}
}

// watch reads the control socket after CONNECTED: the peer's DISCONNECT or its going away.
func (c *Conn) watch() {
	defer c.wg.Done()
	if c.log != nil {
		defer func() { c.log.Info("memif peer gone", "reason", c.Err()) }()
	}
	for {
		m, fd, err := c.ctl.recv(time.Time{})
		closeFD(fd)
		switch {
		case err != nil:
			c.fail(fmt.Errorf("%w: %w", ErrClosed, err))
			return
		case m.Type == TypeDisconnect:
			c.fail(fmt.Errorf("%w: peer disconnected: %s (code %d)", ErrClosed, m.Reason, m.Code))
			return
		default:
			// nothing but DISCONNECT is valid once connected
			c.disconnect(fmt.Sprintf("unexpected %s after CONNECTED", m.Type))
			c.fail(fmt.Errorf("%w: unexpected %s after CONNECTED", ErrPeer, m.Type))
			return
		}
	}
}

// disconnect tells the peer why it is being dropped.
func (c *Conn) disconnect(reason string) {
	_ = c.ctl.send(Message{Type: TypeDisconnect, Code: 1, Reason: reason}, -1)
}

// drop ends the connection for a protocol error found on the data path.
func (c *Conn) drop(err error) error {
	c.disconnect(err.Error())
	c.fail(err)
	_ = c.ctl.c.Close()
	return err
}

// Close disconnects (if the peer is still there), stops the control goroutine and unmaps the
// shared memory. The owner must not use Tx or Rx during or after it.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		select {
		case <-c.done:
		default:
			c.disconnect("closed")
			c.fail(ErrClosed)
		}
		_ = c.ctl.c.Close()
		c.wg.Wait()
		c.release()
	})
	return nil
}

// release unmaps the regions and closes the rings' eventfds.
func (c *Conn) release() {
	for i := range c.regions {
		c.regions[i].unmap()
	}
	for _, rs := range [][]*ring{c.s2m, c.m2s} {
		for _, r := range rs {
			closeFD(r.efd)
			r.efd = -1
		}
	}
}

// Tx is queue q's sending side: M2S for a master, S2M for a slave.
func (c *Conn) Tx(q int) *Tx { return c.txs[q] }

// Rx is queue q's receiving side: S2M for a master, M2S for a slave.
func (c *Conn) Rx(q int) *Rx { return c.rxs[q] }

func (c *Conn) setup() {
	tx, rx := c.m2s, c.s2m
	if !c.master {
		tx, rx = c.s2m, c.m2s
	}
	for i := range c.Queues() {
		t := &Tx{c: c, r: tx[i], q: i}
		r := &Rx{c: c, r: rx[i], q: i}
		if c.master {
			t.pos = t.r.tail()
			r.pos = r.r.tail()
		} else {
			t.pos = t.r.head()
			r.pos = r.r.tail()
			// a slave posts every buffer of its receive rings at once
			for s := r.pos; s != r.pos+r.r.size; s++ {
				c.repost(r.r, s)
			}
			r.posted = r.pos + r.r.size
			r.r.setHead(r.posted)
		}
		c.txs = append(c.txs, t)
		c.rxs = append(c.rxs, r)
	}
}

type ringAt struct {
	region uint16
	offset uint32
}

// Tx writes packets into one ring. A master fills the buffers its slave posted (from tail up
// to head) and advances tail; a slave fills its own buffers and advances head. Writes are
// published by Flush.
type Tx struct {
	c     *Conn
	r     *ring
	q     int
	pos   uint16 // next slot to fill
	dirty bool
}

// room is how many slots may be filled from pos.
func (t *Tx) room() (uint16, error) {
	if t.c.master {
		n := t.r.head() - t.pos
		if n > t.r.size {
			return 0, fmt.Errorf("%w: M2S ring %d head is %d slots ahead of tail", ErrPeer, t.q, n)
		}
		return n, nil
	}
	used := t.pos - t.r.tail()
	if used > t.r.size {
		return 0, fmt.Errorf("%w: S2M ring %d tail is %d slots behind head", ErrPeer, t.q, used)
	}
	return t.r.size - used, nil
}

// Free is how many buffers the ring has for new packets now.
func (t *Tx) Free() int {
	n, err := t.room()
	if err != nil {
		return 0
	}
	return int(n)
}

// WritePacket writes one packet made of a then b (either may be empty) into the ring,
// chaining buffers when it is longer than one; ErrFull (nothing written) when the free
// buffers cannot hold it. Call Flush to publish.
func (t *Tx) WritePacket(a, b []byte) error {
	select {
	case <-t.c.done:
		return ErrClosed
	default:
	}
	room, err := t.room()
	if err != nil {
		return t.c.drop(err)
	}
	if err := t.fits(room, len(a)+len(b)); err != nil {
		return err
	}
	// Buffers that follow each other in a region (the peer lays its buffers out in a row; only
	// the ring's wrap breaks the row) are filled by one copy per run rather than one per buffer:
	// a run of a megabyte or more lets memmove use non-temporal stores, which a frame of
	// megabytes copied in 64 KiB pieces never gets.
	src := packetSrc{a: a, b: b}
	rest := len(a) + len(b)
	slot := t.pos
	var used uint16
	var run bufRun
	for {
		if used == room {
			return ErrFull
		}
		var reg uint16
		var off, size uint32
		if t.c.master {
			d := t.r.load(slot)
			if d.length == 0 {
				return t.c.drop(fmt.Errorf("%w: M2S ring %d posted an empty buffer", ErrPeer, t.q))
			}
			if _, err = buffer(t.c.regions, d, d.length); err != nil {
				return t.c.drop(err)
			}
			reg, off, size = d.region, d.offset, d.length
		} else {
			off, size = t.r.base+uint32(slot&t.r.mask)*t.c.bufSize, t.c.bufSize
		}
		n := min(uint32(rest), size)
		if !run.extend(reg, off, n) {
			src.fill(run.bytes(t.c.regions))
			run = bufRun{region: reg, off: off, n: n}
		}
		rest -= int(n)
		used++
		if rest == 0 {
			t.r.setLength(slot, 0, n)
			break
		}
		t.r.setLength(slot, DescNext, n)
		slot++
	}
	src.fill(run.bytes(t.c.regions))
	t.pos += used
	t.dirty = true
	return nil
}

// packetSrc is a packet given in two parts, consumed front to back.
type packetSrc struct{ a, b []byte }

// fill copies the next len(dst) bytes of the packet into dst.
func (p *packetSrc) fill(dst []byte) {
	n := copy(dst, p.a)
	p.a = p.a[n:]
	m := copy(dst[n:], p.b)
	p.b = p.b[m:]
}

// bufRun is a row of buffers adjacent in one region, filled with one copy; n == 0 is none.
type bufRun struct {
	region uint16
	off, n uint32
}

// extend adds n bytes at off of region to the run if they follow it.
func (r *bufRun) extend(region uint16, off, n uint32) bool {
	if r.n == 0 || region != r.region || uint64(off) != uint64(r.off)+uint64(r.n) {
		return false
	}
	r.n += n
	return true
}

// bytes is the run's memory (checked buffer by buffer as it was built); nil for none.
func (r *bufRun) bytes(regions []region) []byte {
	if r.n == 0 {
		return nil
	}
	return regions[r.region].mem[r.off : r.off+r.n]
}

// fits checks, before anything is copied, that the free buffers hold n bytes: a packet that
// does not fit costs no copy (a frame of megabytes would otherwise be copied in part for nothing).
func (t *Tx) fits(room uint16, n int) error {
	if !t.c.master {
		if need := (n + int(t.c.bufSize) - 1) / int(t.c.bufSize); need > int(room) || (n == 0 && room == 0) {
			return ErrFull
		}
		return nil
	}
	slot, have := t.pos, 0
	for used := uint16(0); used < room; used++ {
		have += int(t.r.load(slot).length)
		if have >= n {
			return nil
		}
		slot++
	}
	return ErrFull
}

// Flush publishes what WritePacket wrote and kicks the peer unless it polls.
func (t *Tx) Flush() {
	if !t.dirty {
		return
	}
	t.dirty = false
	if t.c.master {
		t.r.setTail(t.pos)
	} else {
		t.r.setHead(t.pos)
	}
	t.r.kick()
}

// Rx reads packets from one ring: a master reads what its slave filled (tail up to head) and
// advances tail; a slave reads what its master filled (up to tail) and posts the buffers again
// by advancing head.
type Rx struct {
	c      *Conn
	r      *ring
	q      int
	pos    uint16 // next slot to read
	posted uint16 // slave: the head it posted up to
	dirty  bool
	pfd    [1]unix.PollFd
}

// SetPolling asks the peer not to kick this ring's eventfd (FlagMaskInt): the reader polls.
func (r *Rx) SetPolling(on bool) {
	if on {
		r.r.setFlags(FlagMaskInt)
	} else {
		r.r.setFlags(0)
	}
}

// ErrTooBig is returned by ReadPacket for a packet longer than dst; the packet is consumed.
var ErrTooBig = errors.New("memif: packet longer than the read buffer")

// ReadPacket copies the next packet (all of its chain) into dst and returns its length; 0 and
// no error when the ring holds no complete packet. Call Flush to hand the buffers back.
func (r *Rx) ReadPacket(dst []byte) (int, error) {
	var limit uint16
	if r.c.master {
		limit = r.r.head()
	} else {
		limit = r.r.tail()
	}
	avail := limit - r.pos
	if avail > r.r.size {
		return 0, r.c.drop(fmt.Errorf("%w: ring %d has %d slots filled, holds %d", ErrPeer, r.q, avail, r.r.size))
	}
	slot, n, too := r.pos, 0, false
	for used := uint16(0); ; {
		if used == avail {
			return 0, nil // no complete packet yet
		}
		d := r.r.load(slot)
		buf, err := buffer(r.c.regions, d, d.length)
		if err != nil {
			return 0, r.c.drop(err)
		}
		if !r.c.master && d.length > r.c.bufSize {
			return 0, r.c.drop(fmt.Errorf("%w: length %d beyond the buffer of %d", ErrPeer, d.length, r.c.bufSize))
		}
		if n+len(buf) > len(dst) {
			too = true
		} else {
			n += copy(dst[n:], buf)
		}
		used++
		slot++
		if d.flags&DescNext == 0 {
			r.pos = slot
			r.dirty = true
			if too {
				return 0, ErrTooBig
			}
			return n, nil
		}
	}
}

// Flush hands the read buffers back to the producer.
func (r *Rx) Flush() {
	if !r.dirty {
		return
	}
	r.dirty = false
	if r.c.master {
		r.r.setTail(r.pos)
		return
	}
	for s := r.posted; s != r.pos+r.r.size; s++ {
		r.c.repost(r.r, s)
	}
	r.posted = r.pos + r.r.size
	r.r.setHead(r.posted)
}

// Wait blocks until the peer kicks the ring's eventfd or timeout passes, and drains the
// eventfd (an undrained eventfd keeps waking its poller). With the peer polling instead of
// kicking, use a short timeout.
func (r *Rx) Wait(timeout time.Duration) error {
	select {
	case <-r.c.done:
		return ErrClosed
	default:
	}
	if r.r.efd < 0 {
		time.Sleep(timeout)
		return nil
	}
	r.pfd[0] = unix.PollFd{Fd: int32(r.r.efd), Events: unix.POLLIN}
	if _, err := unix.Poll(r.pfd[:], int(timeout/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("memif: waiting on ring %d: %w", r.q, err)
	}
	var b [8]byte
	_, _ = unix.Read(r.r.efd, b[:])
	return nil
}

// repost hands a slot's buffer to the master again, whole.
func (c *Conn) repost(r *ring, slot uint16) {
	r.store(slot, descriptor{length: c.bufSize, offset: r.base + uint32(slot&r.mask)*c.bufSize})
}
