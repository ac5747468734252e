package srtp

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
)

// rtpUnprotector is the receiving half of AES_CM_128_HMAC_SHA1_80 for SRTP
// (RFC 3711 §3.3): rollover counter estimation per SSRC (Appendix A), a
// replayWindow-packet replay window (§3.3.2), authentication before anything else is
// trusted, then decryption. It allocates nothing per packet once an SSRC is
// known (pion/srtp's context allocates three times per packet, and this runs
// for every packet a publisher, camera or relay sends).
//
// Not safe for concurrent use; Unprotector serialises calls.
type rtpUnprotector struct {
	p     *Protector // session keys (and its scratch buffers)
	ssrcs map[uint32]*rxState
	// startROC is the rollover counter a sender announced for an SSRC (MIKEY).
	startROC map[uint32]uint32
}

// rxState is what the receiver knows of one SSRC.
type rxState struct {
	roc     uint32
	maxSeq  uint16
	highest uint64                    // highest packet index authenticated so far
	window  [replayWindow / 64]uint64 // bit index%replayWindow: index was received
}

// maxRxSSRCs bounds the SSRCs one context tracks: one stream has a handful, and a sender that
// keeps inventing SSRCs with valid tags is still not allowed to grow memory without bound.
const maxRxSSRCs = 64

var (
	errSRTPShort  = errors.New("too short for SRTP")
	errSRTPAuth   = errors.New("authentication failed")
	errSRTPReplay = errors.New("replayed or too old")
	errSRTPSSRCs  = errors.New("too many SSRCs under one key")
)

func newRTPUnprotector(k Key, rocs map[uint32]uint32) (*rtpUnprotector, error) {
	p, err := NewProtector(k)
	if err != nil {
		return nil, err
	}
	u := &rtpUnprotector{p: p, ssrcs: map[uint32]*rxState{}}
	if len(rocs) > 0 {
		u.startROC = make(map[uint32]uint32, len(rocs))
		for s, r := range rocs {
			u.startROC[s] = r
		}
	}
	return u, nil
}

// guessROC estimates the rollover counter of seq from the SSRC's state (RFC 3711 Appendix A).
func (st *rxState) guessROC(seq uint16) uint32 {
	const half = 1 << 15
	if st.maxSeq < half {
		if int(seq)-int(st.maxSeq) > half {
			return st.roc - 1
		}
		return st.roc
	}
	if int(st.maxSeq)-half > int(seq) {
		return st.roc + 1
	}
	return st.roc
}

// seen reports whether index was already received or is too old for the window.
func (st *rxState) seen(index uint64) bool {
	if index > st.highest {
		return false
	}
	if st.highest-index >= replayWindow {
		return true
	}
	i := index % replayWindow
	return st.window[i/64]&(1<<(i%64)) != 0
}

// accept records index as received. The window is a ring of bits indexed by packet index modulo
// its size: moving the highest index forward clears the bits of the indexes skipped over.
func (st *rxState) accept(index uint64, roc uint32, seq uint16) {
	if index > st.highest {
		if index-st.highest >= replayWindow {
			st.window = [replayWindow / 64]uint64{}
		} else {
			for j := st.highest + 1; j < index; j++ {
				i := j % replayWindow
				st.window[i/64] &^= 1 << (i % 64)
			}
		}
		st.highest = index
		st.roc, st.maxSeq = roc, seq
	}
	i := index % replayWindow
	st.window[i/64] |= 1 << (i % 64)
}

// unprotect authenticates b and writes the plain packet into dst (room for len(b) bytes),
// returning its length.
func (u *rtpUnprotector) unprotect(dst, b []byte) (int, error) {
	hl, err := clearLen(b)
	if err != nil {
		return 0, err
	}
	n := len(b) - tagLen
	if n < hl {
		return 0, errSRTPShort
	}
	if len(dst) < n {
		return 0, errors.New("srtp: output buffer too small")
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	st, known := u.ssrcs[ssrc]
	var roc uint32
	if known {
		roc = st.guessROC(seq)
	} else {
		roc = u.startROC[ssrc]
	}
	index := uint64(roc)<<16 | uint64(seq)
	if known && st.seen(index) {
		return 0, errSRTPReplay
	}
	p := u.p
	binary.BigEndian.PutUint32(p.roc4[:], roc)
	m := p.rtp.mac
	m.Reset()
	m.Write(b[:n])
	m.Write(p.roc4[:])
	if !hmac.Equal(m.Sum(p.tag[:0])[:tagLen], b[n:]) {
		return 0, errSRTPAuth
	}
	if !known {
		if len(u.ssrcs) >= maxRxSSRCs {
			return 0, errSRTPSSRCs
		}
		st = &rxState{roc: roc, maxSeq: seq, highest: index}
		u.ssrcs[ssrc] = st
	}
	copy(dst, b[:hl])
	p.xorCM(&p.rtp, ssrc, index, dst[hl:n], b[hl:n])
	st.accept(index, roc, seq)
	return n, nil
}

// ReplayFilter drops RTP packets whose SSRC and extended sequence number were already seen or
// are older than the replayWindow (RFC 3711 §3.3.2 applied to packets that were
// authenticated elsewhere: gortsplib's pull client decrypts SRTP without replay protection).
// It allocates only for a new SSRC. Not safe for concurrent use.
type ReplayFilter struct {
	ssrcs map[uint32]*rxState
}

// NewReplayFilter returns an empty filter.
func NewReplayFilter() *ReplayFilter { return &ReplayFilter{ssrcs: map[uint32]*rxState{}} }

// Fresh reports whether the RTP packet b is new, and records it; false means a replay, a
// packet too old for the window, or one that is too short to tell.
func (f *ReplayFilter) Fresh(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	st, ok := f.ssrcs[ssrc]
	if !ok {
		if len(f.ssrcs) >= maxRxSSRCs {
			// a source that keeps changing SSRC: start over rather than grow
			clear(f.ssrcs)
		}
		st = &rxState{maxSeq: seq, highest: uint64(seq)}
		st.accept(uint64(seq), 0, seq)
		f.ssrcs[ssrc] = st
		return true
	}
	roc := st.guessROC(seq)
	index := uint64(roc)<<16 | uint64(seq)
	if st.seen(index) {
		return false
	}
	st.accept(index, roc, seq)
	return true
}
