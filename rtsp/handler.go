// Package rtsp is meshgw's RTSP front door: it speaks RTSP 1.0 to players and publishers, negotiates
// transports and rewrites session descriptions, and hands every decision about routes and packets to a
// Handler (the control). It is the only gateway package that imports gortsplib, and it uses only
// gortsplib's message and header codecs here, not its Server: gortsplib's server owns its UDP sockets
// and sends one datagram per packet per reader, while meshgw's data plane (package rtp, on nodes) must
// own every socket so that fan-out can be batched and readers can be served by another host.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/meshgw/meshgw/rtp"
)

// ConnInfo says who is asking, so the handler can place, authorize and log.
type ConnInfo struct {
	Remote netip.AddrPort
	Local  netip.AddrPort
	// Query is the raw query string of the request URL, without "?".
	Query string
	// Secure is true when the connection is TLS (RTSPS).
	Secure bool
	// User is the authenticated user name, "" for anonymous clients.
	User string
}

// Handler is the control behind the front door.
type Handler interface {
	// OpenRead resolves path for a reader and returns the live stream, starting an on-demand source
	// and waiting for it if needed. Errors carrying a Status are answered with that status.
	OpenRead(ctx context.Context, c ConnInfo, path string) (ReadStream, error)
	// OpenPublish claims path for a publisher whose announced tracks are given.
	OpenPublish(ctx context.Context, c ConnInfo, path string, sdp []byte, tracks []rtp.Track) (PublishStream, error)
}

// UDPSetup is where a UDP reader's or publisher's packets flow on the serving node.
type UDPSetup struct {
	// Source is the node's data address, sent as source= so players accept packets from it.
	// An invalid Addr means "the address the client connected to".
	Source   netip.Addr
	RTPPort  int
	RTCPPort int
	// SSRC is the SSRC the reader will receive (0 for publishers).
	SSRC uint32
}

// MulticastSetup is the group a multicast reader joins.
type MulticastSetup struct {
	Group    netip.Addr
	RTPPort  int
	RTCPPort int
	TTL      int
	SSRC     uint32
}

// TrackPosition is what RTP-Info announces for a track at PLAY.
type TrackPosition struct {
	Seq uint16
	TS  uint32
	OK  bool
}

// ReadStream is one reader session's handle on a stream.
type ReadStream interface {
	// SDP is the stream's session description as received from its source.
	SDP() []byte
	Tracks() []rtp.Track
	SetupUDP(ctx context.Context, track int, rtpDst, rtcpDst netip.AddrPort) (UDPSetup, error)
	SetupMulticast(ctx context.Context, track int) (MulticastSetup, error)
	// SetupTCP returns the hub of a track for an interleaved reader served by this process.
	SetupTCP(ctx context.Context, track int) (*rtp.Hub, error)
	// Play starts delivery of every set-up UDP and multicast track; interleaved tracks are attached
	// by the front door itself.
	Play(ctx context.Context) ([]TrackPosition, error)
	Pause(ctx context.Context) error
	// LastActivity is when the reader last showed life on the data plane (RTCP), zero if never.
	LastActivity() time.Time
	// Done is closed when the stream ends under the reader (route removed, source gone for good).
	Done() <-chan struct{}
	Close()
}

// PublishStream is one publisher session's handle on the stream it feeds.
type PublishStream interface {
	SetupUDP(ctx context.Context, track int, rtpSrc, rtcpSrc netip.AddrPort) (UDPSetup, error)
	// Hub returns the hub interleaved packets of a track are written to.
	Hub(track int) (*rtp.Hub, error)
	Record(ctx context.Context) error
	// LastActivity is when the publisher's last UDP packet arrived, zero if never.
	LastActivity() time.Time
	// Done is closed when the publication is ended by the control (e.g. replaced by another publisher).
	Done() <-chan struct{}
	Close()
}

// Error is an error with the RTSP status it should be answered with.
type Error struct {
	Status base.StatusCode
	Msg    string
	Err    error
	// RetryAfter, when positive, is sent as Retry-After (whole seconds, at least 1): the refusal
	// is temporary and the client may come back then.
	RetryAfter time.Duration
}

// Errorf builds an *Error with a formatted message.
func Errorf(status base.StatusCode, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap gives the cause.
func (e *Error) Unwrap() error { return e.Err }

// StatusOf maps an error to the RTSP status it should be answered with (500 when it carries none).
func StatusOf(err error) base.StatusCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return base.StatusServiceUnavailable
	}
	return base.StatusInternalServerError
}

// Status codes re-exported so the control need not import gortsplib.
const (
	StatusBadRequest          = base.StatusBadRequest
	StatusUnauthorized        = base.StatusUnauthorized
	StatusForbidden           = base.StatusForbidden
	StatusNotFound            = base.StatusNotFound
	StatusConflict            = base.StatusCode(409)
	StatusNotAcceptable       = base.StatusNotAcceptable
	StatusUnsupportedMedia    = base.StatusUnsupportedMediaType
	StatusUnsupportedTransp   = base.StatusUnsupportedTransport
	StatusInternal            = base.StatusInternalServerError
	StatusServiceUnavailable  = base.StatusServiceUnavailable
	StatusNotEnoughBandwidth  = base.StatusNotEnoughBandwidth
	StatusDestinationProhibit = base.StatusDestinationProhibited
)
