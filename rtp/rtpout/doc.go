// Package rtpout carries one stream track out as plain RTP to a fixed
// destination (gateway/node's sink kind "rtp"): every packet goes to one leg,
// or to two SMPTE 2022-7 legs with identical bytes, and through an SMPTE
// 2022-1 FEC encoder whose column and row packets go to each leg's ports +2
// and +4. It is the per-packet part of such an output; gateway/node keeps the
// contract (Flow, OutputSpec) and builds, counts and closes one from it.
package rtpout
