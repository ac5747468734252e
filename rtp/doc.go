// Package rtp is the node data plane of meshgw: pooled packet buffers, track
// hubs that rewrite a source's packets into one continuous RTP line and fan
// them out to sinks, and the egress/ingress transports (batched UDP with
// sendmmsg/recvmmsg, RTSP-interleaved TCP).
//
// The rules it is built around (DESIGN.md §4): a hub has one active source;
// each sink gets each packet once; a slow sink drops and counts instead of
// blocking anyone; packet buffers are pooled, reference counted and shared
// read-only; nothing on the per-packet path allocates in steady state.
package rtp
