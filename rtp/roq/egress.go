package roq

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
	"github.com/meshgw/meshgw/rtp/ring"
)

// Transport is what an Egress sends on: a QUIC connection (NewTransport), or a test double
// that counts. SendDatagram may block while the connection's own queue is full, which is how
// congestion reaches the Egress's queue.
type Transport interface {
	SendDatagram(b []byte) error
	// OpenStream opens a unidirectional stream, waiting for stream credit until ctx ends.
	OpenStream(ctx context.Context) (io.WriteCloser, error)
}

type quicTransport struct{ c *quic.Conn }

func (t quicTransport) SendDatagram(b []byte) error { return t.c.SendDatagram(b) }
func (t quicTransport) OpenStream(ctx context.Context) (io.WriteCloser, error) {
	return t.c.OpenUniStreamSync(ctx)
}

// NewTransport sends on a quic-go connection. Datagram mode needs datagrams negotiated on the
// connection (see DatagramsOK).
func NewTransport(c *quic.Conn) Transport { return quicTransport{c} }

// DatagramsOK reports whether both ends of c enabled QUIC DATAGRAM frames.
func DatagramsOK(c *quic.Conn) bool {
	st := c.ConnectionState().SupportsDatagrams
	return st.Local && st.Remote
}

// EgressConfig configures an Egress.
type EgressConfig struct {
	Mode Mode
	// QueueLen bounds the packets queued for the connection (default 512). A new frame is
	// admitted only while the queue is under half of it, so a frame that starts always fits.
	QueueLen int
}

const (
	defaultQueueLen = 512
	egressBatch     = 64
	scratchSize     = MaxPacket + 16
)

// slot is one queued packet.
type slot struct {
	p        *rtp.Packet
	t        *TrackSink
	rtcp     bool
	newFrame bool
}

// Egress sends what the hubs give its track sinks to one RoQ client, from a goroutine of its
// own: the hubs only queue. When the connection cannot carry the stream (quic-go's congestion
// controller holds its datagram queue, or stream writes block) the queue fills and the track
// sinks drop whole frames and then everything up to the next keyframe, so the client sees a
// clean stream with a gap rather than broken pictures.
type Egress struct {
	tr    Transport
	mode  Mode
	limit int

	mu      sync.Mutex
	q       ring.Queue[slot]
	stopped bool

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
	ctx  context.Context
	stop context.CancelFunc

	// owned by the writer goroutine
	scratch []byte
	streams map[*TrackSink]io.WriteCloser // stream mode: the open stream of each track's frame
	err     error
}

// NewEgress starts the writer goroutine of one connection. The owner calls Close.
func NewEgress(tr Transport, cfg EgressConfig) *Egress {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = defaultQueueLen
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Egress{tr: tr, mode: cfg.Mode, limit: cfg.QueueLen,
		q:    ring.New[slot](64, cfg.QueueLen),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, stop: cancel, scratch: make([]byte, 0, scratchSize),
		streams: map[*TrackSink]io.WriteCloser{}}
	go e.run()
	return e
}

// TrackSink is the rtp.Sink of one track of an Egress.
type TrackSink struct {
	e     *Egress
	flows FlowIDs
	codec keyframe.Codec

	// hub goroutine only
	lastTS   uint32
	haveTS   bool
	skipping bool

	packets, bytes, dropped, frames, errs atomic.Uint64
}

// Track returns the sink of a track whose packets go on flows; codec (keyframe.CodecOf of the
// track's codec name) says where a decoder can start again after frames were dropped.
func (e *Egress) Track(flows FlowIDs, codec keyframe.Codec) *TrackSink {
	return &TrackSink{e: e, flows: flows, codec: codec}
}

// TrackStats counts one track sink.
type TrackStats struct {
	rtp.SinkStats
	// FramesDropped counts the frames dropped whole because the connection could not keep up
	// (Dropped counts their packets, and those dropped after the sink was closed).
	FramesDropped uint64
}

// Stats reads the track's counters.
func (t *TrackSink) Stats() TrackStats {
	return TrackStats{SinkStats: rtp.SinkStats{Packets: t.packets.Load(), Bytes: t.bytes.Load(),
		Dropped: t.dropped.Load(), Errors: t.errs.Load()}, FramesDropped: t.frames.Load()}
}

// DeliverRTP implements rtp.Sink. It runs on the hub's goroutine: it decides whether the
// packet's frame is carried and queues it.
func (t *TrackSink) DeliverRTP(p *rtp.Packet) {
	b := p.Bytes()
	newFrame := true
	if len(b) >= 12 {
		ts := binary.BigEndian.Uint32(b[4:8])
		newFrame = !t.haveTS || ts != t.lastTS
		t.lastTS, t.haveTS = ts, true
	}
	e := t.e
	e.mu.Lock()
	if e.stopped {
		t.drop(p)
		return
	}
	if newFrame {
		// A frame starts only with room for it; after a drop, only where a decoder can start.
		room := e.q.Len() < e.limit/2
		switch {
		case !room:
			t.skipping = true
			t.frames.Add(1)
		case t.skipping && keyframe.IsStart(t.codec, b):
			t.skipping = false
		case t.skipping:
			t.frames.Add(1)
		}
	}
	if t.skipping {
		t.drop(p)
		return
	}
	if !t.enqueueLocked(slot{p: p, t: t, newFrame: newFrame}) {
		// full in the middle of a frame: the rest of it goes too
		t.skipping = true
		t.frames.Add(1)
	}
}

// DeliverRTCP implements rtp.Sink: the hub's sender reports go on the track's RTCP flow.
func (t *TrackSink) DeliverRTCP(p *rtp.Packet) {
	t.e.mu.Lock()
	if t.e.stopped {
		t.drop(p)
		return
	}
	t.enqueueLocked(slot{p: p, t: t, rtcp: true})
}

// enqueueLocked queues s, or drops it when the queue is full; it unlocks the egress.
func (t *TrackSink) enqueueLocked(s slot) bool {
	e := t.e
	if !e.q.Push(s) {
		t.drop(s.p)
		return false
	}
	wasIdle := e.q.Len() == 1
	e.mu.Unlock()
	if wasIdle {
		e.notify()
	}
	return true
}

// drop unlocks the egress, counts p as dropped and releases it.
func (t *TrackSink) drop(p *rtp.Packet) {
	t.e.mu.Unlock()
	t.dropped.Add(1)
	p.Release()
}

func (e *Egress) notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Err is why the writer stopped early (the connection failed), nil while it runs or after a
// clean Close.
func (e *Egress) Err() error {
	<-e.done
	return e.err
}

// Done is closed when the writer goroutine has ended: after Close, or when the connection
// failed.
func (e *Egress) Done() <-chan struct{} { return e.done }

// Close stops the writer and releases what is still queued. Sinks may still be handed packets
// afterwards (a delivery racing RemoveSink): they drop them.
func (e *Egress) Close() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.quit)
	}
	e.mu.Unlock()
	e.stop()
	<-e.done
}

// run is the writer goroutine.
func (e *Egress) run() {
	defer close(e.done)
	defer e.drain()
	for {
		e.mu.Lock()
		batch := e.q.View(egressBatch)
		k := batch.Len()
		e.mu.Unlock()
		if k == 0 {
			select {
			case <-e.wake:
				continue
			case <-e.quit:
				return
			}
		}
		// The viewed slots stay put while they are sent (producers fill past them; a grown
		// ring leaves the old array intact) and are popped afterwards.
		var err error
		for i := 0; i < k && err == nil; i++ {
			err = e.send(batch.At(i))
		}
		e.mu.Lock()
		for range k {
			e.q.Pop().p.Release()
		}
		e.mu.Unlock()
		if err != nil {
			if e.ctx.Err() == nil {
				e.err = err
			}
			e.mu.Lock()
			e.stopped = true
			e.mu.Unlock()
			return
		}
	}
}

// drain releases what is left once the writer ends, and closes open streams.
func (e *Egress) drain() {
	e.mu.Lock()
	for e.q.Len() > 0 {
		s := e.q.Pop()
		s.t.dropped.Add(1)
		s.p.Release()
	}
	e.mu.Unlock()
	for t, w := range e.streams {
		_ = w.Close()
		delete(e.streams, t)
	}
}

// send carries one queued packet.
func (e *Egress) send(s *slot) error {
	b := s.p.Bytes()
	flow := s.t.flows.RTP
	if s.rtcp {
		flow = s.t.flows.RTCP
	}
	var err error
	switch {
	case e.mode == Datagram:
		e.scratch = AppendDatagram(e.scratch[:0], flow, b)
		if err = e.tr.SendDatagram(e.scratch); err != nil && tooLarge(err) {
			err = e.sendOnOwnStream(flow, b) // never fragment: the packet goes on a stream
		}
	case s.rtcp:
		err = e.sendOnOwnStream(flow, b)
	default:
		err = e.sendOnFrameStream(s, b)
	}
	if err != nil {
		s.t.errs.Add(1)
		return err
	}
	s.t.packets.Add(1)
	s.t.bytes.Add(uint64(len(b)))
	return nil
}

// tooLarge reports quic-go's refusal of a datagram over the path's current limit (kept out of
// send: the target of errors.As escapes to the heap).
func tooLarge(err error) bool {
	var e *quic.DatagramTooLargeError
	return errors.As(err, &e)
}

// sendOnOwnStream sends one packet on a stream of its own.
func (e *Egress) sendOnOwnStream(flow uint64, b []byte) error {
	w, err := e.tr.OpenStream(e.ctx)
	if err != nil {
		return err
	}
	e.scratch, err = writeOwnStream(w, e.scratch, flow, b)
	return err
}

// writeOwnStream writes one packet on a stream of its own and closes it, framing it in
// scratch, which it returns for reuse.
func writeOwnStream(w io.WriteCloser, scratch []byte, flow uint64, b []byte) ([]byte, error) {
	scratch = AppendStreamPacket(AppendStreamHeader(scratch[:0], flow), b)
	if _, err := w.Write(scratch); err != nil {
		return scratch, err
	}
	return scratch, w.Close()
}

// sendOnFrameStream sends an RTP packet on its frame's stream, opening one per frame (draft
// §5.2: a stream per frame keeps a lost packet of one frame from holding up the next).
func (e *Egress) sendOnFrameStream(s *slot, b []byte) error {
	w := e.streams[s.t]
	e.scratch = e.scratch[:0]
	if s.newFrame || w == nil {
		if w != nil {
			if err := w.Close(); err != nil {
				return err
			}
		}
		var err error
		if w, err = e.tr.OpenStream(e.ctx); err != nil {
			delete(e.streams, s.t)
			return err
		}
		e.streams[s.t] = w
		e.scratch = AppendStreamHeader(e.scratch, s.t.flows.RTP)
	}
	e.scratch = AppendStreamPacket(e.scratch, b)
	_, err := w.Write(e.scratch)
	return err
}
