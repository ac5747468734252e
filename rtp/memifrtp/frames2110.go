package memifrtp

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/rtp/st2110"
)

// FrameQueueDepth is how many reassembled frames wait for one frames-form consumer. The queue
// holds references to the reassembler's pooled frames, not copies: a deeper queue only pins
// more pool buffers.
const FrameQueueDepth = 2

// PixelFormat is the frames-form FourCC of an RFC 4175 frame: 4:2:2 8-bit is "UYVY", 4:2:2
// 10-bit the packed "UYVP" (ffmpeg's bitpacked, GStreamer's UYVP); other samplings get 0 (the
// consumer reads the route's SDP).
func PixelFormat(sampling string, depth int) uint32 {
	if sampling == "YCbCr-4:2:2" {
		switch depth {
		case 8:
			return FourCC("UYVY")
		case 10:
			return FourCC("UYVP")
		}
	}
	return 0
}

// FrameQueue feeds a FrameOut the frames of an ST 2110 reassembler off the reassembler's
// goroutine: Push queues a reference to the pooled frame (no copy) and never blocks; the
// queue's goroutine copies each frame once, straight into the consumer's buffers, and releases
// it. When the queue is full the frame is released at once and counted in the FrameOut's
// Dropped: a consumer that falls behind loses whole frames and never holds up the packet path.
type FrameQueue struct {
	out   *FrameOut
	track uint8
	q     chan *st2110.Frame

	mu     sync.Mutex // Push against Close: a frame pushed after Close is released, not lost
	closed bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewFrameQueue queues frames of track for out; the caller closes it (before out).
func NewFrameQueue(out *FrameOut, track uint8) *FrameQueue {
	ctx, cancel := context.WithCancel(context.Background())
	fq := &FrameQueue{out: out, track: track, q: make(chan *st2110.Frame, FrameQueueDepth), cancel: cancel}
	fq.wg.Add(1)
	go fq.run(ctx)
	return fq
}

// Push takes over one reference to f: it is queued, or released and counted as dropped.
func (fq *FrameQueue) Push(f *st2110.Frame) {
	fq.mu.Lock()
	defer fq.mu.Unlock()
	if fq.closed {
		f.Release()
		return
	}
	select {
	case fq.q <- f:
	default:
		f.Release()
		fq.out.dropped.Add(1)
	}
}

// Close stops the queue's goroutine and releases the frames still queued.
func (fq *FrameQueue) Close() {
	fq.cancel()
	fq.wg.Wait()
	fq.mu.Lock()
	defer fq.mu.Unlock()
	fq.closed = true
	for {
		select {
		case f := <-fq.q:
			f.Release()
		default:
			return
		}
	}
}

func (fq *FrameQueue) run(ctx context.Context) {
	defer fq.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-fq.q:
			fq.out.WriteFrame(FrameMeta{Track: fq.track, Width: uint32(f.Width), Height: uint32(f.Height),
				PixelFormat: PixelFormat(f.Sampling, f.Depth), RTPTimestamp: f.Timestamp, Counter: f.Counter}, f.Data)
			f.Release()
		}
	}
}

// FrameFanout is an st2110.FrameSink that hands each finished frame to the FrameQueues attached
// now (one reference each); queues come and go while frames flow. With none attached it
// releases the frame at once.
type FrameFanout struct {
	mu   sync.Mutex // serialises Add and Remove
	subs atomic.Pointer[[]*FrameQueue]
}

// Add attaches q.
func (ff *FrameFanout) Add(q *FrameQueue) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	var next []*FrameQueue
	if cur := ff.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, q)
	ff.subs.Store(&next)
}

// Remove detaches q; frames already pushed to it stay its own.
func (ff *FrameFanout) Remove(q *FrameQueue) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	cur := ff.subs.Load()
	if cur == nil {
		return
	}
	next := make([]*FrameQueue, 0, len(*cur))
	for _, s := range *cur {
		if s != q {
			next = append(next, s)
		}
	}
	ff.subs.Store(&next)
}

// Len is how many queues are attached.
func (ff *FrameFanout) Len() int {
	if cur := ff.subs.Load(); cur != nil {
		return len(*cur)
	}
	return 0
}

// WriteFrame implements st2110.FrameSink: it runs on the packet path and never blocks.
func (ff *FrameFanout) WriteFrame(f *st2110.Frame) {
	if cur := ff.subs.Load(); cur != nil {
		for _, q := range *cur {
			f.Retain()
			q.Push(f)
		}
	}
	f.Release()
}
