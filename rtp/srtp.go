package rtp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	prtcp "github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

// SRTPKeyLen is the length of an AES_CM_128_HMAC_SHA1_80 master key and
// salt together (16 + 14 bytes), the only suite meshgw speaks: it is the one
// gortsplib, GStreamer and FFmpeg all agree on.
const SRTPKeyLen = 30

// srtpOverhead is what protection adds to an RTP packet (the 80-bit tag);
// SRTCP adds the 4-byte index on top. Readers' packets are protected where
// they leave: UDPPair.NewSRTPSink on the egress workers, and
// InterleavedWriter.SRTPSink on the connection's writer goroutine.
const (
	srtpOverhead  = 10
	srtcpOverhead = 14
)

// srtpReplayWindow is the replay window of unprotecting contexts, in
// packets (RFC 3711 §3.3.2 asks for at least 64). It is as long as a relay
// sink's retransmission history (gateway/node's NACK repair), so a packet a
// far node asked for again is still inside the window when it arrives
// however fast the stream runs; a multiple of 64.
const srtpReplayWindow = 1024

// ErrSRTP marks packets that failed SRTP or SRTCP authentication, replay
// checks or parsing.
var ErrSRTP = errors.New("srtp: packet rejected")

// SRTPKey is an AES_CM_128_HMAC_SHA1_80 master key followed by its master
// salt. Its String and GoString never show the bytes, so a key that reaches a
// log line or an error by accident leaks nothing.
type SRTPKey [SRTPKeyLen]byte

// NewSRTPKey draws a fresh random key.
func NewSRTPKey() (SRTPKey, error) {
	var k SRTPKey
	if _, err := rand.Read(k[:]); err != nil {
		return SRTPKey{}, fmt.Errorf("srtp: draw key: %w", err)
	}
	return k, nil
}

// SRTPKeyFromBytes checks b's length and copies it into a key.
func SRTPKeyFromBytes(b []byte) (SRTPKey, error) {
	var k SRTPKey
	if len(b) != SRTPKeyLen {
		return k, fmt.Errorf("srtp: key is %d bytes, want %d (AES_CM_128_HMAC_SHA1_80 key and salt)", len(b), SRTPKeyLen)
	}
	copy(k[:], b)
	return k, nil
}

// String redacts the key.
func (k SRTPKey) String() string { return "SRTPKey(redacted)" }

// GoString redacts the key in %#v too.
func (k SRTPKey) GoString() string { return k.String() }

// Base64 is the key in the form SDES inline: parameters carry it. It is the
// one deliberate way to see the key's bytes as text.
func (k SRTPKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

func newSRTPContext(k SRTPKey, unprotect bool) (*srtp.Context, error) {
	var opts []srtp.ContextOption
	if unprotect {
		opts = append(opts, srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtpReplayWindow))
	}
	c, err := srtp.CreateContext(k[:16], k[16:], srtp.ProtectionProfileAes128CmHmacSha1_80, opts...)
	if err != nil {
		return nil, fmt.Errorf("srtp: context: %w", err)
	}
	return c, nil
}

// SRTPUnprotector authenticates and decrypts one publisher's, camera's or
// relay's SRTP and SRTCP, with replay protection (RFC 3711 §3.3.2). It keeps
// one scratch buffer for plain RTP and one for plain RTCP, so RTP and RTCP may
// come from two goroutines (a UDP pair reads its two sockets separately), but
// each from one at a time: a result is valid until the next call of the same
// method.
type SRTPUnprotector struct {
	rtpMu  sync.Mutex
	rx     *rtpUnprotector // meshgw's own: allocation-free on the per-packet path
	rtpBuf []byte

	rtcpMu  sync.Mutex
	ctx     *srtp.Context // pion's, for SRTCP (a few packets a second)
	ch      prtcp.Header
	rtcpBuf []byte
}

// NewSRTPUnprotector returns an unprotector for key k; rocs gives the
// starting rollover counter of SSRCs announced by the key exchange (MIKEY),
// which matters for a sender that joined its stream after a wrap.
func NewSRTPUnprotector(k SRTPKey, rocs map[uint32]uint32) (*SRTPUnprotector, error) {
	ctx, err := newSRTPContext(k, true)
	if err != nil {
		return nil, err
	}
	rx, err := newRTPUnprotector(k, rocs)
	if err != nil {
		return nil, fmt.Errorf("srtp: %w", err)
	}
	return &SRTPUnprotector{rx: rx, ctx: ctx, rtpBuf: make([]byte, LargePacketSize), rtcpBuf: make([]byte, SmallPacketSize)}, nil
}

// RTP returns the plain packet of an SRTP packet. The result aliases a
// buffer of u's and is valid until the next call.
func (u *SRTPUnprotector) RTP(b []byte) ([]byte, error) {
	u.rtpMu.Lock()
	defer u.rtpMu.Unlock()
	if len(b) > len(u.rtpBuf) {
		return nil, fmt.Errorf("%w: %d bytes", ErrSRTP, len(b))
	}
	n, err := u.rx.unprotect(u.rtpBuf, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	return u.rtpBuf[:n], nil
}

// RTCP returns the plain packet of an SRTCP packet, like RTP.
func (u *SRTPUnprotector) RTCP(b []byte) ([]byte, error) {
	u.rtcpMu.Lock()
	defer u.rtcpMu.Unlock()
	out, err := u.ctx.DecryptRTCP(u.rtcpBuf[:0], b, &u.ch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	return out, nil
}

// SRTPProtector protects one sender's RTP and RTCP with an
// AES_CM_128_HMAC_SHA1_80 key, allocating nothing: what the egress workers
// use per reader, for senders outside the data plane (load generators,
// benchmarks of the receiving side). Not safe for concurrent use.
type SRTPProtector struct{ p *protector }

// NewSRTPProtector returns a protector for k; rollover counters start at 0.
func NewSRTPProtector(k SRTPKey) (*SRTPProtector, error) {
	p, err := newProtector(k)
	if err != nil {
		return nil, fmt.Errorf("srtp: %w", err)
	}
	return &SRTPProtector{p: p}, nil
}

// ProtectRTP writes the SRTP form of the RTP packet in into dst, which needs
// len(in)+10 bytes, and returns its length.
func (s *SRTPProtector) ProtectRTP(dst, in []byte) (int, error) { return s.p.protectRTP(dst, in) }

// ProtectRTCP writes the SRTCP form of a compound RTCP packet into dst
// (len(in)+14 bytes) and returns its length.
func (s *SRTPProtector) ProtectRTCP(dst, in []byte) (int, error) { return s.p.protectRTCP(dst, in) }
