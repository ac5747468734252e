package srtp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is the SRTP default transform (RFC 3711 §4.2.1), not a free choice
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"
)

// Protector protects one sender's RTP and RTCP with an AES_CM_128_HMAC_SHA1_80 key, allocating
// nothing: the sending half of the suite (RFC 3711 §4.1.1, §4.2.1, §4.3), which the egress
// workers and interleaved writers run per reader, and senders outside the data plane (load
// generators, benchmarks of the receiving side) use too. pion/srtp's context does the same but
// allocates twice per packet in its HMAC (Sum(nil)), and this runs once per packet per reader;
// so the egress keeps its own transform, checked against pion's unprotect in the tests.
//
// It is not safe for concurrent use; rtp's SRTP sinks serialise calls (State excepted).
type Protector struct {
	rtp, rtcp sessionKeys

	// RTP sender state of the one SSRC a reader's line carries: the highest
	// sequence number sent and the rollover counter (RFC 3711 §3.3.1). A new
	// SSRC restarts it.
	ssrc    uint32
	started bool
	maxSeq  uint16
	roc     uint32

	rtcpSSRC  uint32
	rtcpIndex uint32 // next SRTCP index (31 bits)

	// The sender state above, published after every packet for State (the fields above belong
	// to the egress worker).
	pubRTP  atomic.Uint64 // 1<<63 | roc<<16 | maxSeq, 0 before the first packet
	pubSSRC atomic.Uint32
	pubRTCP atomic.Uint32 // next SRTCP index

	ks   [aes.BlockSize]byte // key stream block
	iv   [aes.BlockSize]byte // fields, not locals: a local passed to cipher.Block escapes
	tail [ctrBatch]byte      // a packet's last, shorter batch of counter mode
	tag  [sha1.Size]byte
	roc4 [4]byte
}

// sessionKeys are the session keys of one direction's RTP or RTCP.
type sessionKeys struct {
	block cipher.Block
	rk    *roundKeys // the encryption key's round keys for ctr8; nil where it cannot run
	salt  [14]byte
	mac   hash.Hash
}

// RFC 3711 §4.3.1 key derivation labels.
const (
	labelRTPEnc  = 0x00
	labelRTPAuth = 0x01
	labelRTPSalt = 0x02
	labelRTCPEnc = 0x03
	labelRTCPAut = 0x04
	labelRTCPSlt = 0x05
)

const tagLen = 10

var errRTCPLimit = errors.New("srtp: key used for 2^31 SRTCP packets; a new key is needed")

// NewProtector returns a protector for k; rollover counters start at 0.
func NewProtector(k Key) (*Protector, error) {
	master, err := aes.NewCipher(k[:16])
	if err != nil {
		return nil, fmt.Errorf("srtp: %w", err)
	}
	var salt [14]byte
	copy(salt[:], k[16:])
	p := &Protector{}
	for _, d := range []struct {
		keys                 *sessionKeys
		enc, auth, saltLabel byte
	}{{&p.rtp, labelRTPEnc, labelRTPAuth, labelRTPSalt}, {&p.rtcp, labelRTCPEnc, labelRTCPAut, labelRTCPSlt}} {
		var encKey [16]byte
		var authKey [20]byte
		kdf(master, salt, d.enc, encKey[:])
		kdf(master, salt, d.auth, authKey[:])
		kdf(master, salt, d.saltLabel, d.keys.salt[:])
		if d.keys.block, err = aes.NewCipher(encKey[:]); err != nil {
			return nil, fmt.Errorf("srtp: %w", err)
		}
		if haveCTR8() {
			d.keys.rk = expandKey128(encKey[:])
		}
		d.keys.mac = hmac.New(sha1.New, authKey[:])
	}
	return p, nil
}

// kdf fills out with the AES-CM PRF output for label (key derivation rate
// 0): the key stream of the master key from IV = (label at byte 7 XOR the
// master salt) * 2^16.
func kdf(master cipher.Block, salt [14]byte, label byte, out []byte) {
	var iv, ks [aes.BlockSize]byte
	copy(iv[:14], salt[:])
	iv[7] ^= label
	for off, n := 0, uint16(0); off < len(out); off, n = off+aes.BlockSize, n+1 {
		binary.BigEndian.PutUint16(iv[14:], n)
		master.Encrypt(ks[:], iv[:])
		copy(out[off:], ks[:])
	}
}

// SendState is where an SRTP sender stands on its one SSRC: what another sender (a node a
// reader moves to) needs to go on under the same key without ever reusing a packet index, and
// within the receiver's replay window.
type SendState struct {
	SSRC      uint32
	ROC       uint32 // rollover counter of MaxSeq
	MaxSeq    uint16 // highest sequence number sent
	RTCPIndex uint32 // next SRTCP index
}

// srtcpResumeGap is how far a sender continuing another's state skips ahead in the SRTCP index:
// the other may have sent reports since its state was read (a report every few seconds per
// track), and an index must never serve twice.
const srtcpResumeGap = 1000

// Resume makes the protector go on from st, another sender's state under the same key: its first
// packets of st.SSRC continue st's rollover counter, and its SRTCP index starts past st's. Call
// it before the first packet.
func (p *Protector) Resume(st SendState) {
	p.started, p.ssrc, p.maxSeq, p.roc = true, st.SSRC, st.MaxSeq, st.ROC
	p.rtcpSSRC, p.rtcpIndex = st.SSRC, min(st.RTCPIndex+srtcpResumeGap, 1<<31)
	p.publish()
}

// publish makes the sender state readable by State from other goroutines.
func (p *Protector) publish() {
	p.pubSSRC.Store(p.ssrc)
	p.pubRTP.Store(1<<63 | uint64(p.roc)<<16 | uint64(p.maxSeq))
	p.pubRTCP.Store(p.rtcpIndex)
}

// State returns the sender state published after the last packet (for another sender to Resume);
// ok is false before the first packet. Unlike the other methods it may be called from any
// goroutine.
func (p *Protector) State() (SendState, bool) {
	v := p.pubRTP.Load()
	if v == 0 {
		return SendState{}, false
	}
	return SendState{SSRC: p.pubSSRC.Load(), ROC: uint32(v >> 16 & 0xffffffff), MaxSeq: uint16(v), RTCPIndex: p.pubRTCP.Load()}, true
}

// nextROC returns the rollover counter for an outgoing sequence number and
// advances the sender state: the counter steps when the sequence wraps, and a
// late packet from before the wrap keeps the previous one.
func (p *Protector) nextROC(ssrc uint32, seq uint16) uint32 {
	if !p.started || ssrc != p.ssrc {
		p.started, p.ssrc, p.maxSeq, p.roc = true, ssrc, seq, 0
		return 0
	}
	d := int32(seq) - int32(p.maxSeq)
	switch {
	case d > 0 && d <= 1<<15:
		p.maxSeq = seq
		return p.roc
	case d < -(1 << 15): // wrapped forward
		p.roc++
		p.maxSeq = seq
		return p.roc
	case d > 1<<15: // late, from before the last wrap
		if p.roc == 0 {
			return 0
		}
		return p.roc - 1
	default: // late or repeated within this cycle
		return p.roc
	}
}

// ProtectRTP writes the SRTP form of the RTP packet in into dst, which needs
// len(in)+RTPOverhead bytes, and returns its length.
func (p *Protector) ProtectRTP(dst, in []byte) (int, error) {
	hl, err := clearLen(in)
	if err != nil {
		return 0, err
	}
	if len(dst) < len(in)+tagLen {
		return 0, errors.New("srtp: output buffer too small")
	}
	seq := binary.BigEndian.Uint16(in[2:])
	ssrc := binary.BigEndian.Uint32(in[8:])
	roc := p.nextROC(ssrc, seq)
	copy(dst, in[:hl])
	p.xorCM(&p.rtp, ssrc, uint64(roc)<<16|uint64(seq), dst[hl:len(in)], in[hl:])
	binary.BigEndian.PutUint32(p.roc4[:], roc)
	m := p.rtp.mac
	m.Reset()
	m.Write(dst[:len(in)])
	m.Write(p.roc4[:])
	copy(dst[len(in):], m.Sum(p.tag[:0])[:tagLen])
	p.publish()
	return len(in) + tagLen, nil
}

// ProtectRTCP writes the SRTCP form of a compound RTCP packet into dst
// (len(in)+RTCPOverhead bytes) and returns its length.
func (p *Protector) ProtectRTCP(dst, in []byte) (int, error) {
	if len(in) < 8 || in[0]>>6 != 2 {
		return 0, errors.New("srtp: RTCP packet too short or not version 2")
	}
	if len(dst) < len(in)+4+tagLen {
		return 0, errors.New("srtp: output buffer too small")
	}
	ssrc := binary.BigEndian.Uint32(in[4:])
	if ssrc != p.rtcpSSRC {
		p.rtcpSSRC, p.rtcpIndex = ssrc, 0
	}
	if p.rtcpIndex >= 1<<31 {
		return 0, errRTCPLimit
	}
	idx := p.rtcpIndex
	p.rtcpIndex++
	copy(dst, in[:8])
	p.xorCM(&p.rtcp, ssrc, uint64(idx), dst[8:len(in)], in[8:])
	binary.BigEndian.PutUint32(dst[len(in):], idx|1<<31) // E flag: the payload is encrypted
	n := len(in) + 4
	m := p.rtcp.mac
	m.Reset()
	m.Write(dst[:n])
	copy(dst[n:], m.Sum(p.tag[:0])[:tagLen])
	p.publish()
	return n + tagLen, nil
}

// errInvalidRTP rejects a packet too short or malformed for an RTP header
// (worded as rtp.ErrInvalidRTP, which this package may not import).
var errInvalidRTP = errors.New("invalid RTP packet")

// clearLen is the length of a packet's RTP header with CSRCs and
// extension, the part SRTP leaves in clear.
func clearLen(b []byte) (int, error) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, errInvalidRTP
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return 0, errInvalidRTP
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if n > len(b) {
		return 0, errInvalidRTP
	}
	return n, nil
}
