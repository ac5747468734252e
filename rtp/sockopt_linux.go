//go:build linux

package rtp

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoAvailable: Linux has UDP_SEGMENT since 4.18; older kernels refuse it
// at the first send and the pair falls back (see resendSegments).
const gsoAvailable = true

// gsoCmsgSpace is the room of one UDP_SEGMENT control message.
func gsoCmsgSpace() int { return unix.CmsgSpace(2) }

// putGSOSize writes a UDP_SEGMENT control message asking the kernel to cut
// the datagram into segments of size bytes.
func putGSOSize(oob []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
}

// forceBuffers raises a socket's buffers past net.core.[rw]mem_max where the
// process may (CAP_NET_ADMIN): the default cap of 208 KiB holds about 90
// full-size packets, fewer than one keyframe of a 50 Mbit/s ingest. Without
// the capability the plain setsockopt of setupSockets (capped) stands.
func forceBuffers(c *net.UDPConn, size int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
	})
}
