// Package merge is the SMPTE ST 2022-7 live-live receiver: it merges two (up
// to MaxLegs) copies of one RTP stream, sent over separate paths with
// identical sequence numbers, into one stream in which a packet is missing
// only when every path lost it, and counts per path what it hid (the health
// signal of each path). Merger is the per-packet core, which owns no
// goroutine and reads no clock; Timed adds the timer for owners without a
// goroutine of their own to drive it.
//
// It is a leaf: it imports nothing of meshgw. Package rtp uses it (an
// RTPSource with two legs merges them before its handler), so it cannot
// import rtp; what it took from there is narrow and copied in small: the
// packets that wait are its own recycled buffers instead of rtp.Pool
// packets (it never shares them, so it needs no reference counts), the RTP
// header check is validRTP, and the caller passes the time (rtp.Now) in.
// Moving RTPSource out of rtp instead would have exported rtp's socket and
// reorder internals for one user.
//
// The relay wiring (gateway/node) and the backup selector's merge mode
// create mergers per track; they keep the SRTP and counters of their flows.
package merge
