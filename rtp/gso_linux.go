//go:build linux

package rtp

import (
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
