package st2110

import (
	"sync/atomic"
	"time"
)

// Frame is one reassembled video frame in a pooled buffer. Data holds the frame in RFC 4175
// pixel-group order, line after line (Stride bytes each; for interlaced video the two fields are
// woven back into one frame): for 4:2:2 8-bit that is UYVY, for 4:2:2 10-bit the packed UYVP
// that ffmpeg calls bitpacked. The receiver of a Frame owns one reference and must Release it.
type Frame struct {
	// Width, Height, Sampling, Depth and Stride describe Data.
	Width, Height int
	Sampling      string
	Depth         int
	Stride        int
	Interlaced    bool
	// Data is the frame; its length is Stride×Height (in pixel-group lines).
	Data []byte
	// Timestamp is the RTP timestamp of the frame (of its first field when interlaced), on the
	// 90 kHz media clock.
	Timestamp uint32
	// FirstSeq is the extended sequence number of its first packet.
	FirstSeq uint32
	// Counter numbers the frames the reassembler started, from 1; a gap means frames were
	// skipped (no free buffer) or lost whole.
	Counter uint64
	// Packets and Bytes are what filled it; Complete says every byte arrived with no sequence
	// gap. An incomplete frame reaches the sink only when the reassembler is configured to pass
	// them on; its missing bytes hold an older frame's pixels.
	Packets, Bytes int
	Complete       bool
	// First and Last are the arrival times of its first and last packet.
	First, Last time.Time

	fields uint8  // bit per field seen (interlaced)
	ts2    uint32 // the second field's timestamp
	lossy  bool
	refs   atomic.Int32
	pool   *FramePool
}

// Retain adds a reference, for a sink that hands the frame to more than one consumer.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release drops a reference; the last one returns the buffer to its pool.
func (f *Frame) Release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		f.pool.put(f)
	case n < 0:
		panic("st2110: Frame released more often than retained")
	}
}

// FramePool is a fixed set of frame buffers of one size, allocated once: frames are recycled,
// never allocated on the packet path.
type FramePool struct {
	free chan *Frame
	n    int
}

// NewFramePool allocates n buffers of size bytes.
func NewFramePool(n, size int) *FramePool {
	p := &FramePool{free: make(chan *Frame, n), n: n}
	for range n {
		p.free <- &Frame{Data: make([]byte, size), pool: p}
	}
	return p
}

// Free is how many buffers are not held by a frame in flight.
func (p *FramePool) Free() int { return len(p.free) }

// Len is the pool's size.
func (p *FramePool) Len() int { return p.n }

// get takes a buffer without waiting; nil when all are in use.
func (p *FramePool) get() *Frame {
	select {
	case f := <-p.free:
		f.refs.Store(1)
		return f
	default:
		return nil
	}
}

func (p *FramePool) put(f *Frame) { p.free <- f }

// FrameSink receives the reassembler's frames. WriteFrame runs on the packet path's goroutine:
// it must not block (queue the frame, or drop it and Release). It owns one reference.
type FrameSink interface {
	WriteFrame(f *Frame)
}

// FrameSinkFunc adapts a function to FrameSink.
type FrameSinkFunc func(*Frame)

// WriteFrame calls fn(f).
func (fn FrameSinkFunc) WriteFrame(f *Frame) { fn(f) }
