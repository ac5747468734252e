package merge

import (
	"encoding/binary"
	"sync"
)

// Buffer sizes, those of rtp.Pool's classes: small takes every packet of an
// Ethernet or loopback datagram, maxPacket is the largest an RTP packet can
// be here (the 16-bit length of an RTSP-interleaved frame; UDP is smaller).
const (
	smallBuffer = 2048
	maxPacket   = 65536
)

// buffer is the copy of a packet that waits in the merger.
type buffer struct{ b []byte }

// buffers are a merger's packet copies. The merger keeps its own rather
// than take rtp.Pool's, so that this package needs nothing of package rtp,
// which uses it (see the package doc). A sync.Pool per size class, as in
// rtp.Pool, recycles them without allocating in steady state and lets the
// GC take them back once a burst of waiting packets has passed. Every
// method runs under the merger's lock.
type buffers struct {
	small, large sync.Pool
	inUse        int // copies handed out and not yet put back (tests check it)
}

// get returns a copy of b, which is at most maxPacket long.
func (p *buffers) get(b []byte) *buffer {
	cls, size := &p.small, smallBuffer
	if len(b) > smallBuffer {
		cls, size = &p.large, maxPacket
	}
	f, _ := cls.Get().(*buffer)
	if f == nil {
		f = &buffer{b: make([]byte, 0, size)}
	}
	f.b = append(f.b[:0], b...)
	p.inUse++
	return f
}

// put takes a copy back.
func (p *buffers) put(f *buffer) {
	p.inUse--
	if cap(f.b) > smallBuffer {
		p.large.Put(f)
	} else {
		p.small.Put(f)
	}
}

// validRTP checks the fixed RTP header and the lengths it announces (CSRC
// list, header extension, padding) against len(b), as rtp's checkRTP does
// for a hub: a packet the merger copies and orders must be one a hub takes.
// It is a copy of that check (without its error messages) because this
// package cannot import rtp; the fuzz test holds the two together through
// pion/rtp, which both must agree with on what a header is.
func validRTP(b []byte) bool {
	if len(b) < 12 || len(b) > maxPacket || b[0]>>6 != 2 {
		return false
	}
	n := 12 + int(b[0]&0x0f)*4
	if b[0]&0x10 != 0 { // header extension: 4-byte head + length in 32-bit words
		if len(b) < n+4 {
			return false
		}
		n += 4 + int(binary.BigEndian.Uint16(b[n+2:]))*4
	}
	if len(b) < n {
		return false
	}
	if b[0]&0x20 != 0 { // padding: the last octet counts the padding, itself included
		pad := int(b[len(b)-1])
		return len(b) > n && pad != 0 && n+pad <= len(b)
	}
	return true
}
