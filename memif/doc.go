// Package memif speaks the memif shared-memory packet interface (protocol version 2.0), the one
// FD.io VPP's libmemif and DPDK's net_memif driver speak, so local applications exchange packets
// and frames with a meshgw node without a socket copy per packet.
//
// It carries both roles. meshgw is the master (Listen, Master, Endpoint): it listens on a Unix
// SOCK_SEQPACKET socket (a file path or an "@abstract" name) and borrows the shared memory its
// peers allocate. The slave (Dial) allocates and sizes that memory; meshgw uses it for the
// `meshgw memif` operator tool and in tests. The control messages are Message (128 bytes each,
// Decode and Message.Encode); the rings and descriptors live in the regions a slave sends, and
// every ring and descriptor the peer hands over is checked against its region before it is
// used, so a hostile or broken peer is disconnected with a reason and never crashes the node.
//
// This is meshgw's own implementation, written by hand because no usable Go library exists:
// the only one, gomemif (go.fd.io/govpp/extras v0.1.0), is broken past 64 KiB (it writes only
// the low 16 bits of descriptor lengths and re-copies chained buffers from the packet's start),
// can overrun its ring, spins when its eventfds are not drained, reads head and tail without
// atomics, never sends its INIT secret, and panics when a master refuses it. Here lengths are 32 bits, packets larger than a buffer are chains of descriptors with
// the NEXT flag, head and tail go through sync/atomic, and eventfd kicks are drained.
//
// A region must be a memfd sealed against shrinking (F_SEAL_SHRINK), as libmemif and DPDK make
// them: a peer that could truncate a mapped region would turn the next access into a SIGBUS.
// (DPDK's zero-copy client mode, which sends hugepage fds, is refused for that reason.)
//
// Memory layout is native-endian in the protocol; this package supports little-endian hosts
// (amd64, arm64), the ones DPDK and VPP run memif on.
package memif
