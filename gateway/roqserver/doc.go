// Package roqserver is the control's RTP-over-QUIC front door (the quic: listener): it accepts
// QUIC connections offering the RoQ ALPNs, reads the one-line request on each connection's
// first bidirectional stream (rtp/roq's signalling), opens the route for a reader through the
// same rtsp.Handler the RTSP front door uses, and serves it like an interleaved (TCP) reader:
// from the control's local node, one rtp/roq track sink per track on the track's hub. The
// client's RTCP receiver reports are read as a UDP reader's are.
package roqserver
