// Package rtp is the node data plane of meshgw: pooled packet buffers, track
// hubs that rewrite a source's packets into one continuous RTP line and fan
// them out to sinks, and the egress/ingress transports (batched UDP with
// sendmmsg/recvmmsg, RTSP-interleaved TCP). Per-packet pieces with one job
// each live in sub-packages: rtp/merge (SMPTE 2022-7 live-live, which an
// RTPSource with two legs uses) and rtp/nack (relay loss repair).
//
// Every source hands its stream on the same way, through a SourceHandler:
// OnReady with the description and tracks, then the packets of each track,
// then OnDisconnect. The RTSP pull client, the demo player and RTPSource
// drive one; a node's stream input (its hubs) and a backup selector's legs
// implement it, so any source can feed a stream or either side of a backup.
//
// The filters in front of a hub are stages (Stage, stage.go): each takes one
// track's packets with one method (Writer) and is bound once, when its flow is
// created, to the stage after it; Chain composes a track's stages (SRTP
// Unprotect, the 2022-7 Merge, nack.Repairer) ending in the hub (HubInput).
//
// The rules it is built around (docs/ARCHITECTURE.md, "Data path rules"): a hub has one active
// source; each sink gets each packet once; a slow sink drops and counts instead of blocking anyone;
// packet buffers are pooled, reference counted and shared read-only; nothing on the per-packet path
// allocates in steady state.
//
// UDP egress is where the CPU goes, so it is shaped around the kernel's
// cost per call: one egress worker per core owns a share of the readers and
// sends sendmmsg batches that mix many readers; consecutive equal-size
// packets to one reader (a keyframe) leave as one UDP GSO datagram; pacing,
// when a route asks for it, is decided once per packet in the hub (a
// departure time) so every reader of a stream is paced alike and still
// shares batches.
package rtp
