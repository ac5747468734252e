//go:build linux

package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxBufSize is the room for one datagram. The gateway's own ingress buffers
// are 2048 bytes, so it never forwards anything larger; a truncated datagram
// is counted as stray, never as media.
const rxBufSize = 4096

// stopSlot is the epoll data of the eventfd that tells a worker to end.
const stopSlot = -1

// rxSock is one socket a worker polls: which line it feeds, and whether it
// is that line's RTCP socket.
type rxSock struct {
	fd   int
	line int
	rtcp bool
}

// udpWorker receives the UDP readers' datagrams of its share of sockets:
// one goroutine on its own OS thread waits in epoll_wait and drains every
// ready socket with recvmmsg into preallocated buffers. One thread for
// hundreds of sockets is what keeps the tool cheap next to the gateway; a
// goroutine per socket would cost a scheduler round trip per datagram.
type udpWorker struct {
	g        *rxGroup
	clock    clock
	coalesce int64 // ns: least time between two epoll_wait calls
	epfd     int
	evfd     int

	// socks is indexed by the epoll data of each registration; it is
	// appended under g.mu, which the worker holds while it reads it.
	socks []rxSock
	errs  uint64 // recvmmsg failures other than EAGAIN, under g.mu
	trunc uint64 // datagrams larger than rxBufSize, under g.mu

	hs   []mmsghdr
	iovs []unix.Iovec
	buf  []byte

	done chan struct{}
	err  error // why the loop ended early; read after done
}

func newUDPWorker(g *rxGroup, c clock, coalesce time.Duration) (*udpWorker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	w := &udpWorker{
		g: g, clock: c, coalesce: int64(coalesce), epfd: epfd, evfd: evfd,
		hs:   make([]mmsghdr, mmsgBatch),
		iovs: make([]unix.Iovec, mmsgBatch),
		buf:  make([]byte, mmsgBatch*rxBufSize),
		done: make(chan struct{}),
	}
	for i := range w.hs {
		w.iovs[i].Base = &w.buf[i*rxBufSize]
		w.iovs[i].SetLen(rxBufSize)
		w.hs[i].hdr.Iov = &w.iovs[i]
		w.hs[i].hdr.SetIovlen(1)
	}
	go w.loop()
	return w, nil
}

// add registers a non-blocking socket feeding line of the worker's group
// and returns its slot. From then on the socket belongs to the worker: it is
// closed by close(slot) or, after stop, by closeAll.
func (w *udpWorker) add(fd, line int, rtcp bool) (int, error) {
	w.g.mu.Lock()
	slot := len(w.socks)
	w.socks = append(w.socks, rxSock{fd: fd, line: line, rtcp: rtcp})
	w.g.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(slot)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return slot, fmt.Errorf("epoll_ctl: %w", err)
	}
	return slot, nil
}

// close closes the socket of slot while the worker runs. It happens under
// g.mu and marks the slot dead because an event for it may already sit in
// the worker's last epoll_wait result, and the descriptor number may be
// reused at once by a socket of another reader.
func (w *udpWorker) close(slot int) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if s := &w.socks[slot]; s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// closeAll closes every socket still open; call it after stop.
func (w *udpWorker) closeAll() {
	for i := range w.socks {
		w.close(i)
	}
}

// counters returns the worker's error and truncation counts.
func (w *udpWorker) counters() (errs, trunc uint64) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	return w.errs, w.trunc
}

// stop ends the worker and closes its epoll and eventfd descriptors; the
// sockets stay open (their owners close them).
func (w *udpWorker) stop() error {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; 1 is non-zero either way
	if _, err := unix.Write(w.evfd, one[:]); err != nil {
		return fmt.Errorf("wake receive worker: %w", err)
	}
	<-w.done
	unix.Close(w.epfd)
	unix.Close(w.evfd)
	return w.err
}

func (w *udpWorker) loop() {
	defer close(w.done)
	// The thread is the worker's alone, so the blocking epoll_wait costs
	// no handoff of other goroutines and the CPU it uses is easy to see.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.err = fmt.Errorf("epoll_wait: %w", err)
			return
		}
		woke := w.clock.now()
		stop := false
		w.g.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd == stopSlot {
				stop = true
				continue
			}
			if s := &w.socks[ev.Fd]; s.fd >= 0 {
				w.drain(s)
			}
		}
		w.g.mu.Unlock()
		if stop {
			return
		}
		w.pause(woke)
	}
}

// pause lets datagrams pile up in the socket buffers until coalesce has
// passed since the last wakeup. Without it the worker wakes for nearly every
// datagram: the gateway's sendmmsg delivers to one reader socket after
// another and each delivery wakes a thread waiting in epoll_wait, so the
// tool would pay a context switch per packet and the gateway a wakeup per
// packet, both of which would be measured as cost of the fan-out. A sleeping
// (not epoll-waiting) thread costs the sender nothing to notify.
func (w *udpWorker) pause(woke int64) {
	d := w.coalesce - (w.clock.now() - woke)
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(d)
	for {
		err := unix.Nanosleep(&ts, &ts)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// drain reads s until the kernel has no more datagrams queued: recvmmsg on
// a non-blocking socket fills fewer than mmsgBatch messages exactly when its
// next receive would have returned EAGAIN, so a short batch ends the drain
// without the extra syscall that would only report EAGAIN. The caller holds
// w.g.mu. Nothing here allocates.
func (w *udpWorker) drain(s *rxSock) {
	for {
		// RawSyscall: the socket is non-blocking, so the call cannot park the thread and
		// needs none of the scheduler bookkeeping of Syscall.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&w.hs[0])), uintptr(len(w.hs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return
		default:
			w.errs++
			return
		}
		n := int(r)
		now := w.clock.now()
		for i := 0; i < n; i++ {
			h := &w.hs[i]
			switch {
			case s.rtcp:
				w.g.onRTCP(s.line)
			case h.hdr.Flags&unix.MSG_TRUNC != 0:
				w.trunc++
				w.g.lines[s.line].stray++
			default:
				w.g.onRTP(s.line, w.buf[i*rxBufSize:i*rxBufSize+int(h.len)], now)
			}
		}
		if n < len(w.hs) {
			return
		}
	}
}
