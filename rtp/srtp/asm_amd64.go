//go:build amd64 && !purego

package srtp

import "golang.org/x/sys/cpu"

// haveCTR8 reports whether ctr8 can run here (AES-NI; SSE2 is part of amd64).
func haveCTR8() bool { return cpu.X86.HasAES }

// ctr8 writes src XOR eight blocks of AES-CM key stream into dst: the counter blocks are iv with
// its last two bytes set to n, n+1, ..., n+7 (big-endian; n+7 < 2^16), encrypted with rk. dst
// and src may be the same array.
//
//go:noescape
func ctr8(rk *roundKeys, iv *[16]byte, n uint64, dst, src *[ctrBatch]byte)
