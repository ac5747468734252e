// Package roq carries RTP and RTCP over QUIC (RoQ, draft-ietf-avtcore-rtp-over-quic-14): the
// flow-ID framing of QUIC datagrams and unidirectional streams (frame.go), meshgw's small
// signalling exchange on a connection's first bidirectional stream that names a route and
// answers its session description and flow IDs (signal.go), the egress side of one client
// connection as rtp.Sink per track that queues off the hub's goroutine and drops whole frames
// when the connection cannot keep up (conn.go), and the client that pulls a route (client.go).
//
// The QUIC transport itself is quic-go; varints are its quicvarint package. What is written by
// hand here is only what no library does: RoQ's framing on top of those varints and the
// signalling, which the draft leaves to the application.
package roq
