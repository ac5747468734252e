package rtp

// SourceHandler is the one way a source hands a stream to what consumes it:
// the RTSP pull client (rtsp/pull), the demo clip player (rtsp/demo), the
// plain RTP receiver (RTPSource) and a relay's repair and merge stages all
// drive one, and a node's stream input (its hubs) and a backup selector's
// legs (rtp/backup) implement it, so any source sits behind any consumer
// unchanged.
//
// A source's calls never overlap between sessions: OnReady, then packets,
// then OnDisconnect.
type SourceHandler interface {
	// OnReady is called when packets start to flow (again), before the
	// first of them, with the stream's description exactly as the source
	// has it and one Track per media in SDP order. No packet is delivered
	// before it returns. An error refuses the session: the source drops
	// its packets and retries (a pull reconnects with backoff, an
	// RTPSource tries again a second later).
	OnReady(sdp []byte, tracks []Track) error
	// WriteRTP gets one marshaled RTP packet of tracks[track]. pkt is
	// reused once the call returns; copy it to keep it. Calls for one
	// track are sequential; different tracks may be delivered
	// concurrently.
	WriteRTP(track int, pkt []byte)
	// WriteRTCP gets one RTCP datagram the source received for
	// tracks[track] (typically a sender report). The same reuse rule
	// applies.
	WriteRTCP(track int, pkt []byte)
	// OnDisconnect is called once for each OnReady that returned nil, when
	// that session ends, with the reason (ErrClosed, or the source's own
	// closed error, after Close).
	OnDisconnect(err error)
}
