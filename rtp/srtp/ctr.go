package srtp

import (
	"crypto/aes"
	"encoding/binary"
)

// AES-CM (RFC 3711 §4.1.1) is AES in counter mode with a 16-bit block counter in the last two
// bytes of the IV. The standard library's CTR stream would do it with its multi-block assembly,
// but crypto/cipher.NewCTR allocates its stream on every call and a stream cannot be moved to
// another IV, and crypto/aes's Block encrypts one block per call, which leaves AES-NI waiting on
// each block's latency (the figures are in doc.go). So on amd64
// with AES-NI the key stream comes from ctr8 (ctr_amd64.s), eight counter blocks in flight at
// once with the round keys expandKey128 computed once per session key; elsewhere, and for the
// key derivation, crypto/aes's Block does it block by block.

// ctrBatch is what ctr8 encrypts in one call: eight counter blocks.
const ctrBatch = 8 * aes.BlockSize

// roundKeys are the eleven AES-128 encryption round keys, in the byte order AESENC takes them.
type roundKeys [11 * aes.BlockSize]byte

// xorCM encrypts (or decrypts) src into dst with AES in counter mode from the
// IV (session salt * 2^16) XOR (ssrc * 2^64) XOR (index * 2^16).
func (p *Protector) xorCM(k *sessionKeys, ssrc uint32, index uint64, dst, src []byte) {
	iv := &p.iv
	copy(iv[:14], k.salt[:])
	iv[14], iv[15] = 0, 0
	iv[4] ^= byte(ssrc >> 24)
	iv[5] ^= byte(ssrc >> 16)
	iv[6] ^= byte(ssrc >> 8)
	iv[7] ^= byte(ssrc)
	for i := range 6 {
		iv[8+i] ^= byte(index >> (8 * (5 - i)))
	}
	if k.rk == nil {
		p.xorBlocks(k, dst, src)
		return
	}
	// A packet is at most 64 KiB, 4096 blocks: the 16-bit counter never wraps.
	n := uint64(0)
	for len(src) >= ctrBatch {
		ctr8(k.rk, iv, n, (*[ctrBatch]byte)(dst), (*[ctrBatch]byte)(src))
		dst, src = dst[ctrBatch:], src[ctrBatch:]
		n += 8
	}
	if len(src) > 0 {
		// the last, shorter batch goes through a buffer of the batch's size: the surplus key
		// stream costs less than a call per block
		t := &p.tail
		copy(t[:], src)
		ctr8(k.rk, iv, n, t, t)
		copy(dst, t[:len(src)])
	}
}

// xorBlocks is xorCM's key stream one crypto/aes block at a time, from p.iv.
func (p *Protector) xorBlocks(k *sessionKeys, dst, src []byte) {
	iv := &p.iv
	for off, n := 0, uint16(0); off < len(src); off, n = off+aes.BlockSize, n+1 {
		binary.BigEndian.PutUint16(iv[14:], n)
		k.block.Encrypt(p.ks[:], iv[:])
		end := min(off+aes.BlockSize, len(src))
		for i := off; i < end; i++ {
			dst[i] = src[i] ^ p.ks[i-off]
		}
	}
}

// expandKey128 returns the AES-128 encryption round keys of key (FIPS 197 §5.2).
func expandKey128(key []byte) *roundKeys {
	var rk roundKeys
	copy(rk[:16], key)
	rcon := byte(1)
	for i := 16; i < len(rk); i += 4 {
		t := [4]byte(rk[i-4 : i])
		if i%16 == 0 {
			t = [4]byte{sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])}
			rcon = gmul(rcon, 2)
		}
		for j := range 4 {
			rk[i+j] = rk[i-16+j] ^ t[j]
		}
	}
	return &rk
}

// sbox is the AES S-box (FIPS 197 §5.1.1): the multiplicative inverse in GF(2^8), then an affine
// map. Computed rather than tabled: the key expansion needs 40 of them per key.
func sbox(b byte) byte {
	// b^-1 = b^254 = b^2 * b^4 * ... * b^128 (and 0 stays 0)
	inv, sq := byte(1), b
	for range 7 {
		sq = gmul(sq, sq)
		inv = gmul(inv, sq)
	}
	rotl := func(x byte, n int) byte { return x<<n | x>>(8-n) }
	return inv ^ rotl(inv, 1) ^ rotl(inv, 2) ^ rotl(inv, 3) ^ rotl(inv, 4) ^ 0x63
}

// gmul multiplies in AES's GF(2^8) (polynomial x^8 + x^4 + x^3 + x + 1). It runs the same
// eight steps with no branch on its operands, since they are key bytes.
func gmul(a, b byte) byte {
	var r byte
	for range 8 {
		r ^= a & -(b & 1)
		a = a<<1 ^ 0x1b&-(a>>7)
		b >>= 1
	}
	return r
}
