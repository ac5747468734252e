package rtp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp/ring"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// InterleavedConfig configures an InterleavedWriter.
type InterleavedConfig struct {
	QueueLen     int           // bounded queue of frames (default 4096)
	WriteTimeout time.Duration // a write blocked longer than this fails the writer (default 10s)
	// EvictAfter fails the writer (ErrSlowReader) when its queue has stayed
	// full, dropping every new frame, for this long: a reader that drains
	// slower than the stream would otherwise hold its slot forever while
	// seeing a broken stream. 0 never evicts.
	EvictAfter time.Duration
	Logger     *slog.Logger
}

const (
	defaultInterleavedQueueLen = 4096
	defaultWriteTimeout        = 10 * time.Second
	interleavedBatch           = 64 // frames per writev
	maxInterleavedFrame        = 0xffff
)

// ilSlot is one queued frame. The 4-byte "$ channel length" header lives in
// the slot so that a batch can point writev at it without allocating.
type ilSlot struct {
	hdr [4]byte
	p   *Packet
}

// InterleavedWriter owns the write side of one RTSP connection and
// multiplexes RTSP messages and $-framed RTP/RTCP (RFC 2326 §10.12) onto it.
// Only its goroutine writes to the conn, and it writes whole frames, so a
// response can never land inside a frame. Frames are written in batches
// with net.Buffers (writev on a TCP conn). A stuck reader fails only its own
// writer, after WriteTimeout.
type InterleavedWriter struct {
	conn       net.Conn
	timeout    time.Duration
	evictAfter int64
	fullSince  int64 // monotonic time the queue last became full; 0 when it is not; under mu
	log        *slog.Logger

	mu      sync.Mutex
	slots   ring.Queue[ilSlot] // frames
	msgs    [][]byte           // RTSP messages, written before any queued frame
	stopped bool               // closed or failed: nothing more is queued
	err     error

	wake      chan struct{} // capacity 1
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// owned by the writer goroutine; fields so that net.Buffers.WriteTo's
	// receiver does not escape to the heap on every batch
	bufs    net.Buffers
	backing [][]byte

	// srtp[ch] protects the frames of channel ch (an SRTP reader's RTP channel and the RTCP
	// one after it); set before the channel's sink exists, used only by the writer goroutine,
	// which encrypts right before writing so the hub's fan-out never pays for it.
	srtp [256]atomic.Pointer[ilProtector]
	// protected frames of the batch being written, by batch position (nil: the slot's own
	// packet goes out). The slots themselves are never changed outside mu: the ring may be
	// copied into a larger one while a batch is written.
	protHdr [interleavedBatch][4]byte
	prot    [interleavedBatch]*Packet

	packets, bytes, dropped, errs atomic.Uint64
}

// NewInterleavedWriter starts the writer goroutine for w. The caller keeps
// owning w: it reads from it and closes it (typically when Done is closed).
func NewInterleavedWriter(w net.Conn, cfg InterleavedConfig) *InterleavedWriter {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = defaultInterleavedQueueLen
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	iw := &InterleavedWriter{
		conn:       w,
		timeout:    cfg.WriteTimeout,
		evictAfter: int64(cfg.EvictAfter),
		log:        cfg.Logger.With("remote", w.RemoteAddr().String()),
		slots:      ring.New[ilSlot](initialUDPRing, cfg.QueueLen),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		backing:    make([][]byte, 0, 2*interleavedBatch+16),
	}
	go iw.run()
	return iw
}

func (w *InterleavedWriter) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// WriteMessage queues an RTSP response or request ahead of all queued media.
// Messages are never dropped; b is copied. It fails after Close or after the
// writer failed.
func (w *InterleavedWriter) WriteMessage(b []byte) error {
	m := append([]byte(nil), b...)
	w.mu.Lock()
	if w.stopped {
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return fmt.Errorf("rtp: interleaved writer failed: %w", err)
		}
		return ErrClosed
	}
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
	w.notify()
	return nil
}

// enqueue frames p on channel ch, or drops it when the queue is full.
func (w *InterleavedWriter) enqueue(p *Packet, ch uint8) {
	if len(p.buf) > maxInterleavedFrame {
		w.errs.Add(1)
		p.Release()
		return
	}
	w.mu.Lock()
	if w.stopped || !w.slots.Push(ilSlot{hdr: [4]byte{'$', ch, byte(len(p.buf) >> 8), byte(len(p.buf))}, p: p}) {
		if !w.stopped && w.evictAfter > 0 {
			w.evictIfStuckLocked()
		}
		w.mu.Unlock()
		w.dropped.Add(1)
		p.Release()
		return
	}
	wasIdle := w.slots.Len() == 1 && len(w.msgs) == 0
	w.mu.Unlock()
	if wasIdle {
		w.notify()
	}
}

// run is the writer goroutine.
func (w *InterleavedWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		msgs := w.msgs
		w.msgs = nil
		batch := w.slots.View(interleavedBatch)
		k := batch.Len()
		w.mu.Unlock()

		if len(msgs) == 0 && k == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.quit:
				w.stop(nil)
				return
			}
		}

		// The batch's slots stay put while we write: producers only fill slots
		// past them, the ring may grow into a new array (the batch's stays valid
		// and unchanged), and they are popped after the write.
		w.bufs = w.backing[:0]
		for _, m := range msgs {
			w.bufs = append(w.bufs, m)
		}
		var size uint64
		for i := 0; i < k; i++ {
			s := batch.At(i)
			if pr := w.srtp[s.hdr[1]].Load(); pr != nil {
				q := w.protect(s, pr, &w.protHdr[i])
				w.prot[i] = q
				w.bufs = append(w.bufs, w.protHdr[i][:], q.buf)
				size += uint64(len(q.buf))
				continue
			}
			w.bufs = append(w.bufs, s.hdr[:], s.p.buf)
			size += uint64(len(s.p.buf))
		}
		err := w.write()
		for i := 0; i < k; i++ {
			if q := w.prot[i]; q != nil {
				q.Release()
				w.prot[i] = nil
			}
		}

		w.mu.Lock()
		w.slots.Note() // once per batch: the ring's shrink check after a backlog
		for range k {
			w.slots.Pop().p.Release()
		}
		if w.slots.Len() < w.slots.Cap()/2 {
			w.fullSince = 0
		}
		w.mu.Unlock()
		if err != nil {
			w.mu.Lock()
			closing := w.stopped // set by Close, whose past deadline caused err
			w.mu.Unlock()
			if closing || errors.Is(err, ErrClosed) {
				w.dropped.Add(uint64(k))
				w.stop(nil)
			} else {
				w.errs.Add(uint64(k))
				w.stop(err)
			}
			return
		}
		w.packets.Add(uint64(k))
		w.bytes.Add(size)
	}
}

// evictIfStuckLocked runs on a drop for a full queue: the first drop starts
// the clock, and once the queue has stayed full for evictAfter the writer
// fails with ErrSlowReader. The write in progress is cut through a past
// deadline, as Close does, so the connection's owner sees Done and closes.
func (w *InterleavedWriter) evictIfStuckLocked() {
	now := Now()
	if w.fullSince == 0 {
		w.fullSince = now
		return
	}
	if d := now - w.fullSince; d > w.evictAfter {
		w.err = fmt.Errorf("%w: queue full for %s", ErrSlowReader, time.Duration(d).Round(time.Millisecond))
		w.stopped = true
		_ = w.conn.SetWriteDeadline(time.Unix(1, 0))
		w.notify()
	}
}

// write sends w.bufs under a fresh write deadline. The deadline is set under
// mu so that Close, which sets a past deadline to abort a blocked write,
// cannot be overtaken by it.
func (w *InterleavedWriter) write() error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return ErrClosed
	}
	err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := w.bufs.WriteTo(w.conn); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// stop ends the writer: records why, refuses new work and releases what is
// still queued. Called only by the writer goroutine, on its way out.
func (w *InterleavedWriter) stop(err error) {
	w.mu.Lock()
	if err != nil && w.err == nil && !errors.Is(err, ErrClosed) {
		w.err = err
	}
	w.stopped = true
	for w.slots.Len() > 0 {
		w.slots.Pop().p.Release()
		w.dropped.Add(1)
	}
	w.msgs = nil
	failed := w.err
	w.mu.Unlock()
	clear(w.backing[:cap(w.backing)])
	if failed != nil {
		w.log.Warn("rtp: interleaved writer failed", "err", failed)
	}
}

// ilProtector is the SRTP state of one interleaved reader track, shared by its RTP and RTCP
// channels.
type ilProtector struct {
	p    *srtp.Protector
	rtcp bool
}

// protect returns the SRTP or SRTCP form of a slot's packet in a buffer of the writer's own,
// with its frame header in hdr. A packet that cannot be protected goes out as an empty frame:
// the slot is already committed to the batch, and a player skips an empty frame where a plain
// one would be wrong.
func (w *InterleavedWriter) protect(s *ilSlot, pr *ilProtector, hdr *[4]byte) *Packet {
	in := s.p
	over := srtp.RTPOverhead
	if pr.rtcp {
		over = srtp.RTCPOverhead
	}
	q := in.pool.Get(len(in.buf) + over)
	var n int
	var err error
	if pr.rtcp {
		n, err = pr.p.ProtectRTCP(q.buf, in.buf)
	} else {
		n, err = pr.p.ProtectRTP(q.buf, in.buf)
	}
	if err != nil || n > maxInterleavedFrame {
		w.errs.Add(1)
		n = 0
	}
	q.buf = q.buf[:n]
	*hdr = [4]byte{'$', s.hdr[1], byte(n >> 8), byte(n)}
	return q
}

// SRTPSink returns the sink for one SRTP reader track: like Sink, but every
// frame is protected with k on the writer goroutine, right before it is
// written.
func (w *InterleavedWriter) SRTPSink(rtpChannel uint8, k srtp.Key) (Sink, error) {
	if rtpChannel == 255 {
		return nil, errors.New("rtp: interleaved RTP channel 255 leaves none for RTCP")
	}
	p, err := srtp.NewProtector(k)
	if err != nil {
		return nil, fmt.Errorf("rtp: srtp sink: %w", err)
	}
	w.srtp[rtpChannel].Store(&ilProtector{p: p})
	w.srtp[rtpChannel+1].Store(&ilProtector{p: p, rtcp: true})
	return &interleavedSink{w: w, ch: rtpChannel}, nil
}

// Sink returns the sink for one track: RTP goes out on rtpChannel, RTCP on
// rtpChannel+1.
func (w *InterleavedWriter) Sink(rtpChannel uint8) Sink {
	// a channel pair an SRTP session used before on this connection is plain again
	w.srtp[rtpChannel].Store(nil)
	if rtpChannel < 255 {
		w.srtp[rtpChannel+1].Store(nil)
	}
	return &interleavedSink{w: w, ch: rtpChannel}
}

type interleavedSink struct {
	w  *InterleavedWriter
	ch uint8
}

func (s *interleavedSink) DeliverRTP(p *Packet)  { s.w.enqueue(p, s.ch) }
func (s *interleavedSink) DeliverRTCP(p *Packet) { s.w.enqueue(p, s.ch+1) }

// Stats returns the writer's counters over all its sinks (frames only, not
// RTSP messages).
func (w *InterleavedWriter) Stats() SinkStats {
	return SinkStats{Packets: w.packets.Load(), Bytes: w.bytes.Load(), Dropped: w.dropped.Load(), Errors: w.errs.Load()}
}

// Err reports why the writer stopped, if it failed (nil after a plain Close).
func (w *InterleavedWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Done is closed when the writer goroutine ends, by Close or by failure.
func (w *InterleavedWriter) Done() <-chan struct{} { return w.done }

// Close ends the goroutine and releases queued packets, without closing the
// conn. A write in progress is aborted through a past write deadline (the
// frame it was writing may be cut, so the conn should be closed afterwards);
// the deadline is cleared again before Close returns. Idempotent.
func (w *InterleavedWriter) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.stopped = true
		_ = w.conn.SetWriteDeadline(time.Unix(1, 0))
		w.mu.Unlock()
		close(w.quit)
		<-w.done
		_ = w.conn.SetWriteDeadline(time.Time{})
	})
}
