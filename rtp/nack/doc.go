// Package nack is loss repair on relay links between meshgw nodes by RTCP generic NACK (RFC 4585
// §6.2.1; docs/ARCHITECTURE.md, "On edge-a" step 9): on the sending side a History keeps the last
// packets a relay sink sent and sends again those a NACK asks for; on the receiving side a Repairer
// passes a relayed track's packets to its hub in sequence order, holds those behind a gap, asks the
// upstream for the missing ones and gives a gap up after its wait. Reader and Append read and write
// the NACKs without allocating.
//
// Retransmissions go on the original SSRC with the original sequence number, not as RFC 4588
// RTX (own payload type, SSRC and sequence space, OSN prefix). RFC 4588 keeps retransmissions
// apart so that a receiver's RTCP statistics and a non-aware receiver's decoder are not fooled;
// neither concern exists here: both ends of a relay link are meshgw nodes, RTCP is terminated per
// hop, and the receiving side already demultiplexes relays by SSRC and holds packets behind a gap
// in order. A same-SSRC retransmission is to it exactly a late original, which the reorder window
// places (or drops as a duplicate) with no unwrapping step, no second SSRC per track to signal
// and route, and no copy to strip an OSN.
//
// pion/interceptor's nack package (v0.1.40 resolves against the pinned pion/rtp v1.8.21 and
// pion/rtcp v1.2.15) is not used: its responder allocates per packet sent (a RetainablePacket
// for its buffer, on pion's parsed rtp.Header), its interceptors allocate attribute maps on the
// read path and its generator fresh slices per NACK round, which the hot-path rule (0 allocs per
// packet) forbids; and its generator does not hold packets for reordering. Both halves are
// small enough to write against the node's pooled packets.
//
// It builds on package rtp (pooled packets, hubs, UDP sinks), which does
// not import it. gateway/node does the wiring: a History in front of each
// NACK relay sink, a Repairer per track of a NACK relay source, the
// Feedback sinks aimed at the upstream, and answering the NACKs that reach
// the node's pair.
package nack
