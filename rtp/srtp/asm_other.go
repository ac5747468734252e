//go:build !amd64 || purego

package srtp

// haveCTR8 reports whether ctr8 can run here: not without its assembly.
func haveCTR8() bool { return false }

// ctr8 is never called where haveCTR8 is false.
func ctr8(*roundKeys, *[16]byte, uint64, *[ctrBatch]byte, *[ctrBatch]byte) {
	panic("srtp: ctr8 without AES-NI")
}
