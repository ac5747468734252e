// Package srtp carries SRTP and SRTCP (RFC 3711) with the one suite meshgw
// speaks, AES_CM_128_HMAC_SHA1_80: master keys, the sending transform that
// readers' egress workers and interleaved writers run once per packet per
// reader, the receiving one with its replay window for publishers, cameras
// and relays, and a replay filter for packets authenticated elsewhere.
//
// It is meshgw's own transform rather than pion/srtp's context on the
// per-packet paths because pion's allocates on every packet; pion's context
// is kept for SRTCP on the receiving side (a few packets a second) and as the
// independent oracle the fuzz tests check this one against. It is a leaf
// under rtp: package rtp's sinks import it, never the other way round.
//
// Protecting a packet for every reader is most of what an SRTP reader costs
// beyond a plain one. One piece of it is hand-written for this project: on
// amd64 with AES-NI the AES-CM key stream comes from ctr8 (ctr_amd64.s),
// eight counter blocks in flight at once, with the round keys expandKey128
// (ctr.go) computes once per session key. The standard library's counter
// mode does not fit: crypto/cipher.NewCTR allocates a stream on every call
// (one 512-byte allocation per packet with Go 1.26) and a stream cannot be
// re-pointed to a new IV, while SRTP needs a new IV per packet; and
// crypto/aes's Block encrypts one block per call, which leaves AES-NI
// waiting on each block's latency. Measured with BenchmarkSRTPProtect (one
// 1200-byte packet, the same HMAC either way): 8.0 µs with crypto/aes block
// by block, 2.4 µs with ctr8 (medians of 5 alternating runs on a shared
// 2-core machine; 3.3 and 1.1 µs in its quietest round). Elsewhere (other
// architectures, no AES-NI, or -tags purego) crypto/aes's Block does the key
// stream block by block. The MAC, HMAC-SHA1, is the standard library's:
// crypto/hmac over crypto/sha1, one hmac.New per session key and direction,
// Reset, Write and Sum into the protector's own buffer, so no packet
// allocates.
package srtp
