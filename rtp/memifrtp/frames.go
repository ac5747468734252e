package memifrtp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/memif"
)

// The "frames" form: each memif buffer chain carries one complete raw frame (a video frame or an
// audio block reassembled by a receiver) behind a FrameHeaderLen-byte header, little-endian:
//
//	offset  0  u8   version, 1
//	offset  1  u8   kind, 2 = frame
//	offset  2  u8   track
//	offset  3  u8   flags, 0
//	offset  4  u32  width in pixels (0 for audio)
//	offset  8  u32  height in pixels (0 for audio)
//	offset 12  u32  pixel format, a FourCC such as "UYVY" read as a little-endian u32 (0: none)
//	offset 16  u32  RTP timestamp of the frame
//	offset 20  u32  length of the frame data that follows
//	offset 24  u64  frame counter (frames of the track, from 0; a gap is a frame lost)
//	offset 32  the frame data
const (
	FrameHeaderLen = 32
	KindFrame      = 2
)

// FrameMeta describes one frame of the frames form.
type FrameMeta struct {
	Track         uint8
	Width, Height uint32
	PixelFormat   uint32 // FourCC, little-endian
	RTPTimestamp  uint32
	Counter       uint64
}

// FourCC is the pixel format code of a four-letter name ("UYVY").
func FourCC(s string) uint32 {
	var b [4]byte
	copy(b[:], s)
	return binary.LittleEndian.Uint32(b[:])
}

// Put writes m's header for a frame of n bytes into b (FrameHeaderLen bytes).
func (m FrameMeta) Put(b []byte, n int) {
	b = b[:FrameHeaderLen]
	b[0], b[1], b[2], b[3] = HeaderVersion, KindFrame, m.Track, 0
	binary.LittleEndian.PutUint32(b[4:], m.Width)
	binary.LittleEndian.PutUint32(b[8:], m.Height)
	binary.LittleEndian.PutUint32(b[12:], m.PixelFormat)
	binary.LittleEndian.PutUint32(b[16:], m.RTPTimestamp)
	binary.LittleEndian.PutUint32(b[20:], uint32(n))
	binary.LittleEndian.PutUint64(b[24:], m.Counter)
}

// ParseFrame reads a frames-form buffer chain: its header and the frame data.
func ParseFrame(b []byte) (FrameMeta, []byte, error) {
	if len(b) < FrameHeaderLen {
		return FrameMeta{}, nil, fmt.Errorf("%w: %d bytes", ErrHeader, len(b))
	}
	if b[0] != HeaderVersion || b[1] != KindFrame {
		return FrameMeta{}, nil, fmt.Errorf("%w: version %d kind %d, want %d and %d", ErrHeader, b[0], b[1], HeaderVersion, KindFrame)
	}
	m := FrameMeta{Track: b[2], Width: binary.LittleEndian.Uint32(b[4:]), Height: binary.LittleEndian.Uint32(b[8:]),
		PixelFormat: binary.LittleEndian.Uint32(b[12:]), RTPTimestamp: binary.LittleEndian.Uint32(b[16:]),
		Counter: binary.LittleEndian.Uint64(b[24:])}
	if n := binary.LittleEndian.Uint32(b[20:]); uint64(n) != uint64(len(b)-FrameHeaderLen) {
		return FrameMeta{}, nil, fmt.Errorf("%w: length %d, chain holds %d", ErrHeader, n, len(b)-FrameHeaderLen)
	}
	return m, b[FrameHeaderLen:], nil
}

// FrameStats count an FrameOut's frames.
type FrameStats struct {
	Frames, Bytes uint64
	// Dropped are whole frames not delivered: no consumer, or too few free buffers for the
	// whole chain (a consumer that fell behind). A frame is never delivered in part.
	Dropped uint64
}

// FrameOut serves one memif interface's consumer whole frames (the frames form). WriteFrame
// copies a frame straight into the consumer's buffers on the caller's goroutine: one copy, the
// floor, and no queue, so a consumer that falls behind costs whole frames, never a torn one.
// The producer of the frames (a receiver's reassembler) calls WriteFrame; it never blocks on the
// consumer.
type FrameOut struct {
	ep  *memif.Endpoint
	log *slog.Logger

	mu  sync.Mutex // the connection in use: WriteFrame against the accept goroutine
	cur *memif.Conn

	frames, bytes, dropped, consumers atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewFrameOut serves ep's consumers frames.
func NewFrameOut(ep *memif.Endpoint, log *slog.Logger) *FrameOut {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &FrameOut{ep: ep, log: log, cancel: cancel}
	o.wg.Add(1)
	go o.run(ctx)
	return o
}

// Stats are the FrameOut's counters.
func (o *FrameOut) Stats() FrameStats {
	return FrameStats{Frames: o.frames.Load(), Bytes: o.bytes.Load(), Dropped: o.dropped.Load()}
}

// Connected reports whether a consumer is connected now.
func (o *FrameOut) Connected() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cur != nil
}

// WriteFrame delivers one whole frame to the consumer and reports whether it did; without a
// consumer, or without free buffers for all of it, the frame is dropped and counted.
func (o *FrameOut) WriteFrame(m FrameMeta, frame []byte) bool {
	var hdr [FrameHeaderLen]byte
	m.Put(hdr[:], len(frame))
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur == nil {
		o.dropped.Add(1)
		return false
	}
	tx := o.cur.Tx(0)
	if err := tx.WritePacket(hdr[:], frame); err != nil {
		o.dropped.Add(1)
		if !errors.Is(err, memif.ErrFull) && !errors.Is(err, memif.ErrClosed) {
			o.log.Warn("memif frame consumer dropped", "err", err)
		}
		return false
	}
	tx.Flush()
	o.frames.Add(1)
	o.bytes.Add(uint64(len(frame)))
	return true
}

// Close disconnects the consumer and stops; the endpoint stays its owner's.
func (o *FrameOut) Close() {
	o.cancel()
	o.wg.Wait()
}

func (o *FrameOut) run(ctx context.Context) {
	defer o.wg.Done()
	for {
		c, err := o.ep.Accept(ctx)
		if err != nil {
			return
		}
		o.consumers.Add(1)
		o.mu.Lock()
		o.cur = c
		o.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-c.Done():
			o.log.Info("memif frame consumer gone", "id", c.ID(), "reason", c.Err())
		}
		o.mu.Lock()
		o.cur = nil
		o.mu.Unlock()
		c.Close()
		if ctx.Err() != nil {
			return
		}
	}
}
