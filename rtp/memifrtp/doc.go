// Package memifrtp carries a stream's RTP packets over memif (package memif): Out serves a
// memif consumer the packets of a stream's tracks, one packet per buffer (chain) behind a small
// fixed header naming the track and the marker, and In turns what a memif producer writes in
// the same layout into the packets of an rtp.SourceHandler.
//
// The hub side never waits on the consumer: Out's track sinks queue under a lock and a writer
// goroutine copies the queued packets into the consumer's buffers; a full queue (a consumer
// that fell behind, or none connected) drops and counts.
//
// Buffer layout (the "packets" form), little-endian, HeaderLen (8) bytes then the RTP packet:
//
//	offset 0  u8   version, 1
//	offset 1  u8   kind, 1 = RTP packet
//	offset 2  u8   track: the stream's track index (SDP media order, from 0)
//	offset 3  u8   flags: bit 0 = the RTP marker bit of the packet
//	offset 4  u32  length of the RTP packet that follows (header and payload)
//	offset 8  the RTP packet as the route's readers get it (12-byte header, CSRCs, extension, payload)
//
// A packet longer than one memif buffer is a chain of buffers (descriptor flag NEXT); the
// header is at the start of the first.
//
// FrameOut carries the "frames" form instead: one whole raw frame per buffer chain behind a
// 32-byte header (frames.go), copied once straight into the consumer's buffers. An ST 2110
// reassembler feeds it through a FrameFanout and a FrameQueue per consumer (frames2110.go):
// references to the pooled frames, queued off the packet path, so a consumer that falls behind
// loses whole frames, counted, and never holds up the route. NewFrameIn takes the frames form
// from a producer and cuts each frame into RFC 4175 packets for an rtp.SourceHandler.
package memifrtp
