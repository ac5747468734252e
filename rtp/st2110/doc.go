// Package st2110 carries the per-packet and per-frame work of SMPTE ST 2110 on meshgw's side of a
// socket: reading a 2110 session description (ST 2110-10/-20/-30/-40 and -22 passthrough, SSM
// source filters, 2022-7 DUP groups), and turning RFC 4175 (ST 2110-20) packets back into whole
// video frames in pooled buffers, counting what was incomplete, late or malformed.
//
// It is a leaf: it imports no meshgw package, so rtp and the node runner can both use it. The
// sockets, the 2022-7 merge and the reorder stay in rtp.RTPSource; this package sees packets
// after them.
//
// The frame-out contract: a Reassembler hands each finished frame to its FrameSink as a *Frame
// taken from a FramePool fixed at construction (no per-frame allocation). The sink owns one
// reference and calls Frame.Release exactly once when it is done with the pixels; until then the
// buffer is not reused. When the sink holds every buffer, new frames are skipped and counted
// (ReassemblerStats.NoBuffer), never blocking the packet path.
package st2110
