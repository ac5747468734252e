package srtp

import (
	"bytes"
	"crypto/aes"
	"testing"
)

// TestExpandKey128: the round keys are FIPS 197 Appendix A.1's for its example key.
func TestExpandKey128(t *testing.T) {
	key := []byte{0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c}
	rk := expandKey128(key)
	last := []byte{0xd0, 0x14, 0xf9, 0xa8, 0xc9, 0xee, 0x25, 0x89, 0xe1, 0x3f, 0x0c, 0xc8, 0xb6, 0x63, 0x0c, 0xa6}
	if !bytes.Equal(rk[160:], last) {
		t.Fatalf("round key 10 = %x, want %x", rk[160:], last)
	}
}

// TestCTR8MatchesBlocks: the batched key stream is crypto/aes's block by block, for every
// payload length around the batch and block boundaries and in place.
func TestCTR8MatchesBlocks(t *testing.T) {
	if !haveCTR8() {
		t.Skip("no AES-NI assembly here")
	}
	for _, k := range []Key{{}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, testKey(t)} {
		p, err := NewProtector(k)
		if err != nil {
			t.Fatal(err)
		}
		if p.rtp.rk == nil || p.rtcp.rk == nil {
			t.Fatal("AES-NI here but no round keys")
		}
		src := make([]byte, 3*ctrBatch+2*aes.BlockSize+1)
		for i := range src {
			src[i] = byte(i * 7)
		}
		for n := 0; n <= len(src); n++ {
			for _, keys := range []*sessionKeys{&p.rtp, &p.rtcp} {
				want := make([]byte, n)
				plain := *keys
				plain.rk = nil
				p.xorCM(&plain, 0xdeadbeef, 0x123456789a, want, src[:n])
				got := make([]byte, n)
				p.xorCM(keys, 0xdeadbeef, 0x123456789a, got, src[:n])
				if !bytes.Equal(got, want) {
					t.Fatalf("%d bytes: ctr8 key stream differs from crypto/aes's", n)
				}
				inPlace := bytes.Clone(src[:n])
				p.xorCM(keys, 0xdeadbeef, 0x123456789a, inPlace, inPlace)
				if !bytes.Equal(inPlace, want) {
					t.Fatalf("%d bytes in place: differs", n)
				}
			}
		}
	}
}
