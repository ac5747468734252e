//go:build amd64 && !purego

#include "textflag.h"

// COUNTER sets X to the IV (X8) with its last 16-bit word the block number CX, big-endian, and
// steps CX.
#define COUNTER(X) \
	MOVOU  X8, X; \
	MOVQ   CX, DX; \
	ROLW   $8, DX; \
	PINSRW $7, DX, X; \
	INCQ   CX

// ROUND applies one AES round (INSTR: AESENC or AESENCLAST) with the round key at offset OFF of
// AX to the eight blocks.
#define ROUND(INSTR, OFF) \
	MOVOU OFF(AX), X9; \
	INSTR X9, X0; \
	INSTR X9, X1; \
	INSTR X9, X2; \
	INSTR X9, X3; \
	INSTR X9, X4; \
	INSTR X9, X5; \
	INSTR X9, X6; \
	INSTR X9, X7

// func ctr8(rk *roundKeys, iv *[16]byte, n uint64, dst, src *[ctrBatch]byte)
//
// Eight AES-128 counter blocks encrypted side by side, so AES-NI works on eight independent
// blocks instead of waiting on one block's latency per round.
TEXT ·ctr8(SB), NOSPLIT, $0-40
	MOVQ rk+0(FP), AX
	MOVQ iv+8(FP), BX
	MOVQ n+16(FP), CX
	MOVQ dst+24(FP), DI
	MOVQ src+32(FP), SI

	MOVOU (BX), X8
	COUNTER(X0)
	COUNTER(X1)
	COUNTER(X2)
	COUNTER(X3)
	COUNTER(X4)
	COUNTER(X5)
	COUNTER(X6)
	COUNTER(X7)

	ROUND(PXOR, 0)
	ROUND(AESENC, 16)
	ROUND(AESENC, 32)
	ROUND(AESENC, 48)
	ROUND(AESENC, 64)
	ROUND(AESENC, 80)
	ROUND(AESENC, 96)
	ROUND(AESENC, 112)
	ROUND(AESENC, 128)
	ROUND(AESENC, 144)
	ROUND(AESENCLAST, 160)

	// XOR with src, all of it loaded before dst is written
	MOVOU 0(SI), X8
	MOVOU 16(SI), X9
	MOVOU 32(SI), X10
	MOVOU 48(SI), X11
	MOVOU 64(SI), X12
	MOVOU 80(SI), X13
	MOVOU 96(SI), X14
	MOVOU 112(SI), X15
	PXOR  X8, X0
	PXOR  X9, X1
	PXOR  X10, X2
	PXOR  X11, X3
	PXOR  X12, X4
	PXOR  X13, X5
	PXOR  X14, X6
	PXOR  X15, X7
	MOVOU X0, 0(DI)
	MOVOU X1, 16(DI)
	MOVOU X2, 32(DI)
	MOVOU X3, 48(DI)
	MOVOU X4, 64(DI)
	MOVOU X5, 80(DI)
	MOVOU X6, 96(DI)
	MOVOU X7, 112(DI)
	RET
