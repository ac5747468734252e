//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2); x/sys/unix does not
// define it. Go pads it to Msghdr's alignment exactly as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgBatch is the most messages one recvmmsg/sendmmsg call carries, the
// same batch the gateway's fan-out uses.
const mmsgBatch = 64

func sockaddrOf(ip net.IP, port int) unix.Sockaddr {
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return sa
}

func portOf(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// udpSocket opens a UDP socket bound to ip:port (port 0: any) and returns it
// with its port. Sockets a worker polls are non-blocking.
func udpSocket(ip net.IP, port int, nonblock bool) (int, int, error) {
	family := unix.AF_INET6
	if ip.To4() != nil {
		family = unix.AF_INET
	}
	typ := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if nonblock {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(family, typ, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("udp socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddrOf(ip, port)); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("udp bind %s: %w", net.JoinHostPort(ip.String(), fmt.Sprint(port)), err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("udp getsockname: %w", err)
	}
	return fd, portOf(sa), nil
}

// udpPair binds an RTP/RTCP pair on ip: RTP on an even port, RTCP on the
// next, as RTP/AVP's client_port=a-b requires.
func udpPair(ip net.IP, nonblock bool) (rtpFd, rtcpFd, rtpPort int, err error) {
	for range 100 {
		fd, p, err := udpSocket(ip, 0, nonblock)
		if err != nil {
			return -1, -1, 0, err
		}
		if p%2 == 0 && p < 65535 {
			if fd2, _, err := udpSocket(ip, p+1, nonblock); err == nil {
				return fd, fd2, p, nil
			}
		} else if p%2 == 1 {
			if fd0, _, err := udpSocket(ip, p-1, nonblock); err == nil {
				return fd0, fd, p - 1, nil
			}
		}
		unix.Close(fd)
	}
	return -1, -1, 0, errors.New("udp: no free even/odd port pair found")
}

// setRcvBuf sizes a socket's receive buffer and returns the size the kernel
// reports back (which counts its bookkeeping, typically twice the request).
// SO_RCVBUFFORCE, allowed to root, passes net.core.rmem_max; SO_RCVBUF is
// capped by it. n == 0 leaves the kernel default.
func setRcvBuf(fd, n int) (int, error) {
	if n > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n); err != nil {
				return 0, fmt.Errorf("SO_RCVBUF %d: %w", n, err)
			}
		}
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, fmt.Errorf("getsockopt SO_RCVBUF: %w", err)
	}
	return v, nil
}

// sendmmsg sends hs in calls of at most mmsgBatch messages and returns how
// many messages failed. A failing message is skipped: sendmmsg reports an
// error only for the first message of a call, so one bad destination must
// not stop the others.
func sendmmsg(fd int, hs []mmsghdr) (failed int) {
	for i := 0; i < len(hs); {
		n := min(mmsgBatch, len(hs)-i)
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[i])), uintptr(n), 0, 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0 || r == 0:
			failed++
			i++
		default:
			i += int(r)
		}
	}
	return failed
}
