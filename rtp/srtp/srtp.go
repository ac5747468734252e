package srtp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	prtcp "github.com/pion/rtcp"
	pionsrtp "github.com/pion/srtp/v3"
)

// KeyLen is the length of an AES_CM_128_HMAC_SHA1_80 master key and
// salt together (16 + 14 bytes), the only suite meshgw speaks: it is the one
// gortsplib, GStreamer and FFmpeg all agree on.
const KeyLen = 30

// RTPOverhead is what protection adds to an RTP packet (the 80-bit tag);
// RTCPOverhead adds SRTCP's 4-byte index on top: a sender sizes its output
// buffers with them. Readers' packets are protected where they leave:
// rtp.UDPPair.NewSRTPSink on the egress workers, and
// rtp.InterleavedWriter.SRTPSink on the connection's writer goroutine.
const (
	RTPOverhead  = 10
	RTCPOverhead = 14
)

// A plain packet is never longer than its protected form, so the
// unprotector's RTP scratch buffer holds the largest packet a UDP datagram or
// an interleaved frame can carry (rtp.LargePacketSize), and its RTCP one a
// usual compound packet (rtp.SmallPacketSize; pion grows it when needed).
const (
	maxRTPSize  = 65536
	rtcpBufSize = 2048
)

// replayWindow is the replay window of unprotecting contexts, in
// packets (RFC 3711 §3.3.2 asks for at least 64). It is as long as a relay
// sink's retransmission history (gateway/node's NACK repair), so a packet a
// far node asked for again is still inside the window when it arrives
// however fast the stream runs; a multiple of 64.
const replayWindow = 1024

// ErrRejected marks packets that failed SRTP or SRTCP authentication, replay
// checks or parsing.
var ErrRejected = errors.New("srtp: packet rejected")

// Key is an AES_CM_128_HMAC_SHA1_80 master key followed by its master
// salt. Its String and GoString never show the bytes, so a key that reaches a
// log line or an error by accident leaks nothing.
type Key [KeyLen]byte

// NewKey draws a fresh random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("srtp: draw key: %w", err)
	}
	return k, nil
}

// KeyFromBytes checks b's length and copies it into a key.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeyLen {
		return k, fmt.Errorf("srtp: key is %d bytes, want %d (AES_CM_128_HMAC_SHA1_80 key and salt)", len(b), KeyLen)
	}
	copy(k[:], b)
	return k, nil
}

// String redacts the key.
func (k Key) String() string { return "SRTPKey(redacted)" }

// GoString redacts the key in %#v too.
func (k Key) GoString() string { return k.String() }

// Base64 is the key in the form SDES inline: parameters carry it. It is the
// one deliberate way to see the key's bytes as text.
func (k Key) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

func newContext(k Key, unprotect bool) (*pionsrtp.Context, error) {
	var opts []pionsrtp.ContextOption
	if unprotect {
		opts = append(opts, pionsrtp.SRTPReplayProtection(replayWindow), pionsrtp.SRTCPReplayProtection(replayWindow))
	}
	c, err := pionsrtp.CreateContext(k[:16], k[16:], pionsrtp.ProtectionProfileAes128CmHmacSha1_80, opts...)
	if err != nil {
		return nil, fmt.Errorf("srtp: context: %w", err)
	}
	return c, nil
}

// Unprotector authenticates and decrypts one publisher's, camera's or
// relay's SRTP and SRTCP, with replay protection (RFC 3711 §3.3.2). It keeps
// one scratch buffer for plain RTP and one for plain RTCP, so RTP and RTCP may
// come from two goroutines (a UDP pair reads its two sockets separately), but
// each from one at a time: a result is valid until the next call of the same
// method.
type Unprotector struct {
	rtpMu  sync.Mutex
	rx     *rtpUnprotector // meshgw's own: allocation-free on the per-packet path
	rtpBuf []byte

	rtcpMu  sync.Mutex
	ctx     *pionsrtp.Context // pion's, for SRTCP (a few packets a second)
	ch      prtcp.Header
	rtcpBuf []byte
}

// NewUnprotector returns an unprotector for key k; rocs gives the
// starting rollover counter of SSRCs announced by the key exchange (MIKEY),
// which matters for a sender that joined its stream after a wrap.
func NewUnprotector(k Key, rocs map[uint32]uint32) (*Unprotector, error) {
	ctx, err := newContext(k, true)
	if err != nil {
		return nil, err
	}
	rx, err := newRTPUnprotector(k, rocs)
	if err != nil {
		return nil, err
	}
	return &Unprotector{rx: rx, ctx: ctx, rtpBuf: make([]byte, maxRTPSize), rtcpBuf: make([]byte, rtcpBufSize)}, nil
}

// RTP returns the plain packet of an SRTP packet. The result aliases a
// buffer of u's and is valid until the next call.
func (u *Unprotector) RTP(b []byte) ([]byte, error) {
	u.rtpMu.Lock()
	defer u.rtpMu.Unlock()
	if len(b) > len(u.rtpBuf) {
		return nil, fmt.Errorf("%w: %d bytes", ErrRejected, len(b))
	}
	n, err := u.rx.unprotect(u.rtpBuf, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return u.rtpBuf[:n], nil
}

// RTCP returns the plain packet of an SRTCP packet, like RTP.
func (u *Unprotector) RTCP(b []byte) ([]byte, error) {
	u.rtcpMu.Lock()
	defer u.rtcpMu.Unlock()
	out, err := u.ctx.DecryptRTCP(u.rtcpBuf[:0], b, &u.ch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return out, nil
}
