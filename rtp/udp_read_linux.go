//go:build linux

package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2). Go pads the struct to Msghdr's
// alignment exactly as C does, on 32- and 64-bit alike.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batchReader reads datagrams with recvmmsg into preallocated headers,
// sockaddrs and pool buffers. It exists because x/net's ReadBatch allocates
// a net.UDPAddr (and its IP) per datagram; here the source address is
// decoded into a netip.AddrPort on the stack.
type batchReader struct {
	rc    syscall.RawConn
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // big enough for IPv4 too
	pkts  []*Packet

	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // bound once: a method value per call would allocate
}

func newBatchReader(c *net.UDPConn, pool *Pool) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("rtp: UDP raw conn: %w", err)
	}
	r := &batchReader{
		rc:    rc,
		hs:    make([]mmsghdr, udpBatch),
		iovs:  make([]unix.Iovec, udpBatch),
		names: make([]unix.RawSockaddrInet6, udpBatch),
		pkts:  make([]*Packet, udpBatch),
	}
	for i := range r.hs {
		r.pkts[i] = pool.Get(SmallPacketSize)
		r.iovs[i].Base = &r.pkts[i].buf[0]
		r.iovs[i].SetLen(SmallPacketSize)
		r.hs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hs[i].hdr.Iov = &r.iovs[i]
		r.hs[i].hdr.SetIovlen(1)
	}
	r.fn = r.recvmmsg
	return r, nil
}

func (r *batchReader) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(len(r.hs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // let the netpoller wait for readability
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// read fills the batch and calls fn for each datagram.
func (r *batchReader) read(fn func(from netip.AddrPort, b []byte, truncated bool)) error {
	for i := range r.hs {
		r.hs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		r.hs[i].hdr.Flags = 0
		r.hs[i].len = 0
	}
	r.n, r.errno = 0, 0
	if err := r.rc.Read(r.fn); err != nil {
		return err
	}
	if r.errno != 0 {
		return fmt.Errorf("recvmmsg: %w", r.errno)
	}
	for i := 0; i < r.n; i++ {
		h := &r.hs[i]
		fn(sockaddrToAddrPort(&r.names[i]), r.pkts[i].buf[:h.len], h.hdr.Flags&unix.MSG_TRUNC != 0)
	}
	return nil
}

func (r *batchReader) release() {
	for i, p := range r.pkts {
		p.Release()
		r.pkts[i] = nil
	}
}

// sockaddrToAddrPort decodes a kernel sockaddr_in/sockaddr_in6; the port
// is in network byte order in both.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// readLoop reads one socket until Close.
func (u *UDPPair) readLoop(c *net.UDPConn, d *demux) {
	defer u.wg.Done()
	r, err := newBatchReader(c, u.pool)
	if err != nil {
		u.log.Error("rtp: UDP ingress disabled", "err", err)
		return
	}
	defer r.release()
	deliver := func(from netip.AddrPort, b []byte, truncated bool) { u.dispatch(d, from, b, truncated) }
	for {
		if err := r.read(deliver); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-u.done:
				return
			default:
			}
			u.log.Warn("rtp: UDP read failed", "err", err)
		}
	}
}
