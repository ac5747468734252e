// Package sdp reads session descriptions (SDP): the tracks of a publisher's
// or an upstream source's description, the codec of each track, and the
// SDP files of plain RTP (rtp://) sources.
//
// It is apart from package rtsp so that a node, which pulls sources and
// reads their descriptions but serves no RTSP clients, does not link the
// RTSP server.
package sdp
