package memifrtp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/ring"
)

// Out serves one memif interface's consumer the packets of a stream's tracks (Track gives
// each track's rtp.Sink). Consumers come and go: each connection to the endpoint is served until
// it ends, and packets meanwhile with no consumer are dropped and counted.
type Out struct {
	ep  *memif.Endpoint
	log *slog.Logger

	mu     sync.Mutex
	q      ring.Queue[item]
	closed bool
	up     atomic.Bool // a consumer is connected
	wake   chan struct{}

	packets, bytes, dropped, errs atomic.Uint64
	consumers                     atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type item struct {
	p  *rtp.Packet
	ts *TrackSink
}

// maxBatch is how many queued packets the writer takes at once: one ring publish and one
// eventfd kick per batch.
const maxBatch = 64

// NewOut serves ep's consumers, queueing at most queueLen packets (0: 4096) for them.
func NewOut(ep *memif.Endpoint, queueLen int, log *slog.Logger) *Out {
	if queueLen <= 0 {
		queueLen = 4096
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Out{ep: ep, log: log, q: ring.New[item](min(queueLen, 256), queueLen), wake: make(chan struct{}, 1), cancel: cancel}
	o.wg.Add(1)
	go o.run(ctx)
	return o
}

// Track makes the rtp.Sink of track i (0-255) of the stream.
func (o *Out) Track(i int) *TrackSink { return &TrackSink{o: o, track: uint8(i)} }

// Stats counts what reached consumers (Packets, Bytes), what was dropped (no consumer, queue
// full) and what a consumer's ring refused (Errors).
func (o *Out) Stats() rtp.SinkStats {
	return rtp.SinkStats{Packets: o.packets.Load(), Bytes: o.bytes.Load(), Dropped: o.dropped.Load(), Errors: o.errs.Load()}
}

// Connected reports whether a consumer is connected now.
func (o *Out) Connected() bool { return o.up.Load() }

// Consumers is how many consumers have connected so far.
func (o *Out) Consumers() uint64 { return o.consumers.Load() }

// Close disconnects the consumer, stops the writer and releases what is queued. The endpoint
// stays its owner's.
func (o *Out) Close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	o.mu.Lock()
	o.drainLocked()
	o.mu.Unlock()
}

func (o *Out) drainLocked() {
	for o.q.Len() > 0 {
		it := o.q.Pop()
		it.p.Release()
		it.ts.drop()
	}
}

// TrackSink is one track's rtp.Sink: it queues for the writer and never blocks.
type TrackSink struct {
	o                             *Out
	track                         uint8
	packets, bytes, dropped, errs atomic.Uint64
}

// Stats are the track's counters (Out.Stats sums all tracks).
func (s *TrackSink) Stats() rtp.SinkStats {
	return rtp.SinkStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Dropped: s.dropped.Load(), Errors: s.errs.Load()}
}

func (s *TrackSink) drop() {
	s.dropped.Add(1)
	s.o.dropped.Add(1)
}

// DeliverRTP queues p for the consumer; with none connected, or the queue full, p is dropped
// and counted.
func (s *TrackSink) DeliverRTP(p *rtp.Packet) {
	o := s.o
	if !o.up.Load() {
		s.drop()
		p.Release()
		return
	}
	o.mu.Lock()
	// the writer drains until the queue is empty, so only a push into an empty queue wakes it
	idle := o.q.Len() == 0
	ok := !o.closed && o.q.Push(item{p: p, ts: s})
	o.mu.Unlock()
	if !ok {
		s.drop()
		p.Release()
		return
	}
	if !idle {
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// DeliverRTCP drops sender reports: the packets form carries RTP only.
func (s *TrackSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

func (o *Out) run(ctx context.Context) {
	defer o.wg.Done()
	batch := make([]item, 0, maxBatch)
	for {
		c, err := o.ep.Accept(ctx)
		if err != nil {
			return
		}
		o.consumers.Add(1)
		o.up.Store(true)
		batch = o.serve(ctx, c, batch)
		o.up.Store(false)
		o.mu.Lock()
		o.drainLocked()
		o.mu.Unlock()
		c.Close()
	}
}

// serve writes queued packets into c until it ends or ctx is cancelled.
func (o *Out) serve(ctx context.Context, c *memif.Conn, batch []item) []item {
	tx := c.Tx(0)
	for {
		select {
		case <-ctx.Done():
			return batch
		case <-c.Done():
			o.log.Info("memif consumer gone", "id", c.ID(), "reason", c.Err())
			return batch
		case <-o.wake:
		}
		for {
			batch = batch[:0]
			o.mu.Lock()
			for o.q.Len() > 0 && len(batch) < maxBatch {
				batch = append(batch, o.q.Pop())
			}
			o.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if err := o.write(ctx, c, tx, batch); err != nil {
				return batch[:0]
			}
		}
	}
}

// write puts a batch into the consumer's ring. A ring that stays full (the consumer stopped
// reading) costs the batch's remaining packets, counted; the hub never waits for it.
func (o *Out) write(ctx context.Context, c *memif.Conn, tx *memif.Tx, batch []item) error {
	var hdr [HeaderLen]byte
	var err error
	budget := maxRingWait // per batch: a stopped consumer costs the hub's queue, not time per packet
	for i, it := range batch {
		b := it.p.Bytes()
		Header{Track: it.ts.track, Marker: len(b) > 1 && b[1]&0x80 != 0, Length: uint32(len(b))}.Put(hdr[:])
		for {
			if err = tx.WritePacket(hdr[:], b); !errors.Is(err, memif.ErrFull) || budget <= 0 {
				break
			}
			tx.Flush()
			time.Sleep(ringPoll)
			budget -= ringPoll
		}
		switch {
		case err == nil:
			it.ts.packets.Add(1)
			it.ts.bytes.Add(uint64(len(b)))
			o.packets.Add(1)
			o.bytes.Add(uint64(len(b)))
		case errors.Is(err, memif.ErrFull):
			it.ts.drop()
		default:
			it.ts.errs.Add(1)
			o.errs.Add(1)
		}
		it.p.Release()
		batch[i].p = nil
		if err != nil && !errors.Is(err, memif.ErrFull) {
			for _, rest := range batch[i+1:] {
				rest.p.Release()
				rest.ts.drop()
			}
			return err
		}
	}
	tx.Flush()
	return ctx.Err()
}

// A full ring is polled every ringPoll for at most maxRingWait per batch before packets are
// dropped: memif has no "space available" signal from consumer to producer.
const (
	ringPoll    = 50 * time.Microsecond
	maxRingWait = 20 * time.Millisecond
)

// queued is how many packets wait for the writer (tests).
func (o *Out) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.q.Len()
}
