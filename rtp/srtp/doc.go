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
package srtp
