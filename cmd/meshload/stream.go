//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The load header starts the payload of every packet meshload sends: a magic,
// the send time on the run's monotonic clock, and the frame number. Readers
// recognise it to measure latency; the gateway does not parse payloads.
const (
	loadMagic  = "MLD1"
	loadHdrLen = 4 + 8 + 4
	rtpHdrLen  = 12
	// minPacket is the smallest packet that still carries the load header.
	minPacket = rtpHdrLen + loadHdrLen

	synthPT    = 96
	synthClock = 90000
)

// streamParams shape the synthetic H.264-like stream: bitrate counts whole
// RTP packets (header and payload), the unit readers measure delivered bytes
// in, so the two can be compared directly.
type streamParams struct {
	Bitrate   int     // bits per second
	FPS       int     // frames per second
	GOP       int     // frames per group of pictures (one keyframe each)
	KeyRatio  float64 // keyframe size / P-frame size
	MaxPacket int     // largest RTP packet, header included
}

func (p streamParams) validate() error {
	switch {
	case p.Bitrate <= 0:
		return errors.New("bitrate must be positive")
	case p.FPS <= 0 || p.FPS > 1000:
		return fmt.Errorf("fps %d is not in 1..1000", p.FPS)
	case p.GOP <= 0:
		return errors.New("gop must be positive")
	case p.KeyRatio < 1:
		return fmt.Errorf("keyframe ratio %g is below 1", p.KeyRatio)
	case p.MaxPacket < minPacket || p.MaxPacket > 65000:
		return fmt.Errorf("packet size %d is not in %d..65000", p.MaxPacket, minPacket)
	}
	return nil
}

// gopBytes is the byte budget of one group of pictures.
func (p streamParams) gopBytes() float64 {
	return float64(p.Bitrate) / 8 * float64(p.GOP) / float64(p.FPS)
}

// cumBytes is the number of bytes in frames 0..n-1. Frame sizes derive from
// differences of this running total, so rounding never accumulates and any
// whole number of GOPs carries the bitrate exactly (to one byte).
func (p streamParams) cumBytes(n uint64) float64 {
	g, k := n/uint64(p.GOP), n%uint64(p.GOP)
	unit := p.gopBytes() / (p.KeyRatio + float64(p.GOP) - 1)
	var in float64
	if k > 0 {
		in = unit * (p.KeyRatio + float64(k) - 1)
	}
	return float64(g)*p.gopBytes() + in
}

// frameBytes is the size of frame n: its packets' bytes, headers included.
func (p streamParams) frameBytes(n uint64) int {
	return int(math.Floor(p.cumBytes(n+1)) - math.Floor(p.cumBytes(n)))
}

// packetSizes appends the packet sizes of a frame of size bytes: full packets
// then the remainder, as an encoder's packetizer fills the MTU. Each packet
// is at least minPacket, so a tiny frame may round up.
func (p streamParams) packetSizes(size int, dst []int) []int {
	for size > p.MaxPacket {
		dst = append(dst, p.MaxPacket)
		size -= p.MaxPacket
	}
	return append(dst, max(size, minPacket))
}

// maxFramePackets bounds the packets of any frame, for preallocation.
func (p streamParams) maxFramePackets() int {
	key := int(math.Ceil(p.gopBytes()/(p.KeyRatio+float64(p.GOP)-1)*p.KeyRatio)) + 2
	return key/p.MaxPacket + 2
}

// synth generates the synthetic stream's packets frame by frame into one
// reused buffer, so a publisher allocates nothing per frame.
type synth struct {
	p      streamParams
	ssrc   uint32
	seq    uint16
	frame  uint64
	prefix int // bytes reserved before each packet (4 for an interleaved frame header)

	buf   []byte
	sizes []int
	offs  []int
}

func newSynth(p streamParams, ssrc uint32, prefix int) *synth {
	n := p.maxFramePackets()
	return &synth{
		p: p, ssrc: ssrc, prefix: prefix,
		buf:   make([]byte, n*(p.MaxPacket+prefix)),
		sizes: make([]int, 0, n),
		offs:  make([]int, 0, n),
	}
}

// next builds the next frame's packets, stamped with send time now (ns on
// the run's clock). It returns the buffer holding them back to back, each
// preceded by prefix reserved bytes, and their sizes (without prefix); both
// are valid until the next call.
func (s *synth) next(now int64) (buf []byte, offs, sizes []int) {
	s.sizes = s.p.packetSizes(s.p.frameBytes(s.frame), s.sizes[:0])
	s.offs = s.offs[:0]
	ts := uint32(s.frame * synthClock / uint64(s.p.FPS))
	off := 0
	for i, sz := range s.sizes {
		off += s.prefix
		s.offs = append(s.offs, off)
		b := s.buf[off : off+sz]
		marker := i == len(s.sizes)-1
		putRTPHeader(b, s.seq, ts, s.ssrc, marker)
		putLoadHeader(b[rtpHdrLen:], now, uint32(s.frame))
		s.seq++
		off += sz
	}
	s.frame++
	return s.buf[:off], s.offs, s.sizes
}

// putRTPHeader writes a version 2 RTP header without CSRCs or extension.
func putRTPHeader(b []byte, seq uint16, ts, ssrc uint32, marker bool) {
	b[0] = 0x80
	b[1] = synthPT
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

func putLoadHeader(b []byte, now int64, frame uint32) {
	copy(b, loadMagic)
	binary.BigEndian.PutUint64(b[4:], uint64(now))
	binary.BigEndian.PutUint32(b[12:], frame)
}

// synthSDP is the description announced for a synthetic stream.
func synthSDP() []byte {
	return []byte("v=0\r\n" +
		"o=- 0 0 IN IP4 0.0.0.0\r\n" +
		"s=meshload\r\n" +
		"c=IN IP4 0.0.0.0\r\n" +
		"t=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\n" +
		"a=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1\r\n" +
		"a=control:trackID=0\r\n")
}
