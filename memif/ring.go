package memif

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring layout (protocol 2.0): cache line 0 holds u32 cookie, u16 flags, u16 head; cache line 1
// (offset 64) u16 tail; the descriptors start at offset 128, 16 bytes each: u16 flags, u16
// region, u32 length, u32 offset, u32 metadata.
const (
	ringHeader = 128
	descSize   = 16

	// FlagMaskInt in a ring's flags asks its producer not to kick the eventfd: the consumer polls.
	FlagMaskInt = 1
	// DescNext marks a descriptor whose packet continues in the next one (a chain).
	DescNext = 1
)

// MaxLog2Ring is the largest ring this package maps (2^14 descriptors, DPDK's largest `rsize`);
// u16 head and tail need a ring of at most 2^15.
const MaxLog2Ring = 14

// Errors of the data path.
var (
	// ErrFull: the ring has too few free buffers for the packet; nothing was written.
	ErrFull = errors.New("memif: ring full")
	// ErrClosed: the connection is closed or the peer disconnected.
	ErrClosed = errors.New("memif: connection closed")
	// ErrPeer wraps what a peer did wrong in shared memory (a descriptor outside its region, a
	// head beyond the ring); the connection is dropped with the reason.
	ErrPeer = errors.New("memif: peer broke the protocol")
)

// region is one shared-memory region a slave sent, mapped.
type region struct {
	mem []byte
	fd  int
}

// mapRegion checks that fd is shared memory sealed against shrinking (a peer that could
// truncate it would make every access a SIGBUS) and at least size bytes, and maps it.
func mapRegion(fd int, size uint64) (region, error) {
	if size == 0 || size > maxRegionSize {
		return region{}, fmt.Errorf("region size %d outside 1..%d", size, uint64(maxRegionSize))
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return region{}, fmt.Errorf("region fd is not shared memory (memfd): %w", err)
	}
	if seals&unix.F_SEAL_SHRINK == 0 {
		return region{}, errors.New("region memfd is not sealed against shrinking (F_SEAL_SHRINK)")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return region{}, fmt.Errorf("region fd: %w", err)
	}
	if uint64(st.Size) < size {
		return region{}, fmt.Errorf("region memfd holds %d bytes, %d announced", st.Size, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return region{}, fmt.Errorf("mapping region: %w", err)
	}
	return region{mem: mem, fd: fd}, nil
}

func (r *region) unmap() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
}

// maxRegionSize bounds a region: descriptor offsets are u32, so a larger one is of no use.
const maxRegionSize = 1 << 32

// ring is one mapped ring. Head and tail are u16 inside 32-bit words, read and written with
// sync/atomic on those words (Go has no 16-bit atomics; the other half is preserved by CAS).
type ring struct {
	size  uint16 // 1 << log2
	mask  uint16
	hdr   *uint32 // cookie+4: flags (low half), head (high half)
	tailw *uint32 // offset 64: tail (low half)
	desc  []byte  // size descriptors
	efd   int     // the ring's eventfd
	base  uint32  // slave: offset of the ring's first buffer in region 0
}

// checkRing is the placement check of an ADD_RING: the ring lies inside its region, aligned.
func checkRing(regionLen int, offset uint32, log2 uint8) error {
	if log2 > MaxLog2Ring {
		return fmt.Errorf("ring of 2^%d descriptors, at most 2^%d", log2, MaxLog2Ring)
	}
	if offset%8 != 0 {
		return fmt.Errorf("ring offset %d not 8-byte aligned", offset)
	}
	if uint64(offset)+ringHeader+descSize<<log2 > uint64(regionLen) {
		return fmt.Errorf("ring 2^%d at %d ends beyond its region (%d bytes)", log2, offset, regionLen)
	}
	return nil
}

// newRing makes a ring over mem at offset (already checked with checkRing).
func newRing(mem []byte, offset uint32, log2 uint8, efd int) *ring {
	o := int(offset)
	n := 1 << log2
	return &ring{
		size:  uint16(n),
		mask:  uint16(n - 1),
		hdr:   (*uint32)(unsafe.Pointer(&mem[o+4])),
		tailw: (*uint32)(unsafe.Pointer(&mem[o+64])),
		desc:  mem[o+ringHeader : o+ringHeader+descSize*n : o+ringHeader+descSize*n],
		efd:   efd,
	}
}

func cookieOf(mem []byte, offset uint32) uint32 { return le.Uint32(mem[offset:]) }

func (r *ring) head() uint16  { return uint16(atomic.LoadUint32(r.hdr) >> 16) }
func (r *ring) flags() uint16 { return uint16(atomic.LoadUint32(r.hdr)) }
func (r *ring) tail() uint16  { return uint16(atomic.LoadUint32(r.tailw)) }

func (r *ring) setHead(h uint16) {
	for {
		old := atomic.LoadUint32(r.hdr)
		if atomic.CompareAndSwapUint32(r.hdr, old, old&0xffff|uint32(h)<<16) {
			return
		}
	}
}

func (r *ring) setFlags(f uint16) {
	for {
		old := atomic.LoadUint32(r.hdr)
		if atomic.CompareAndSwapUint32(r.hdr, old, old&0xffff0000|uint32(f)) {
			return
		}
	}
}

func (r *ring) setTail(t uint16) {
	for {
		old := atomic.LoadUint32(r.tailw)
		if atomic.CompareAndSwapUint32(r.tailw, old, old&0xffff0000|uint32(t)) {
			return
		}
	}
}

// descriptor is one descriptor read once from shared memory (a peer may change it meanwhile:
// everything is checked on this copy).
type descriptor struct {
	flags  uint16
	region uint16
	length uint32
	offset uint32
}

func (r *ring) load(slot uint16) descriptor {
	d := r.desc[int(slot&r.mask)*descSize:]
	d = d[:descSize]
	return descriptor{flags: le.Uint16(d), region: le.Uint16(d[2:]), length: le.Uint32(d[4:]), offset: le.Uint32(d[8:])}
}

func (r *ring) store(slot uint16, d descriptor) {
	b := r.desc[int(slot&r.mask)*descSize:]
	b = b[:descSize]
	le.PutUint16(b, d.flags)
	le.PutUint16(b[2:], d.region)
	le.PutUint32(b[4:], d.length)
	le.PutUint32(b[8:], d.offset)
}

// setLength writes a descriptor's flags and length, leaving its region and offset.
func (r *ring) setLength(slot uint16, flags uint16, length uint32) {
	b := r.desc[int(slot&r.mask)*descSize:]
	b = b[:8]
	le.PutUint16(b, flags)
	le.PutUint32(b[4:], length)
}

// kick wakes the consumer through the ring's eventfd unless it polls (FlagMaskInt).
func (r *ring) kick() {
	if r.flags()&FlagMaskInt != 0 || r.efd < 0 {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(r.efd, one[:])
}

// buffer is the bytes a descriptor names, checked against the regions: the only way the data
// path turns a peer's offsets into memory.
func buffer(regions []region, d descriptor, length uint32) ([]byte, error) {
	if int(d.region) >= len(regions) || regions[d.region].mem == nil {
		return nil, fmt.Errorf("%w: descriptor names region %d of %d", ErrPeer, d.region, len(regions))
	}
	mem := regions[d.region].mem
	end := uint64(d.offset) + uint64(length)
	if end > uint64(len(mem)) {
		return nil, fmt.Errorf("%w: buffer at %d of %d bytes ends beyond region %d (%d bytes)", ErrPeer, d.offset, length, d.region, len(mem))
	}
	return mem[d.offset:end:end], nil
}
