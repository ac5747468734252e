package depack

import (
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/ring"
)

// Queued is one packet waiting for the reader, with the index its sink was made with.
type Queued struct {
	P     *rtp.Packet
	Track int
}

// Queue takes the packets of every track of one reader that remuxes a route (an HLS muxer, a
// recorder), in arrival order, from the hubs' goroutines to the reader's own. Its sinks never
// block the hub: a full or closed queue drops and counts.
type Queue struct {
	mu     sync.Mutex
	q      ring.Queue[Queued]
	closed bool
	wake   chan struct{} // capacity 1: there are packets to take

	in, dropped atomic.Uint64
}

// NewQueue makes a queue holding at most limit packets.
func NewQueue(limit int) *Queue {
	return &Queue{q: ring.New[Queued](256, limit), wake: make(chan struct{}, 1)}
}

// Sink is the rtp.Sink to hang on a track's hub; its packets are queued with track.
func (q *Queue) Sink(track int) rtp.Sink { return &trackSink{q: q, track: track} }

// Wake receives when packets were queued since the last Take.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// In counts the packets queued.
func (q *Queue) In() uint64 { return q.in.Load() }

// Dropped counts the packets dropped because the queue was full or closed.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

func (q *Queue) push(p *rtp.Packet, track int) {
	q.mu.Lock()
	if q.closed || !q.q.Push(Queued{P: p, Track: track}) {
		q.mu.Unlock()
		q.dropped.Add(1)
		p.Release()
		return
	}
	q.mu.Unlock()
	q.in.Add(1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Take moves up to cap(dst) queued packets into dst; the caller releases them.
func (q *Queue) Take(dst []Queued) []Queued {
	dst = dst[:0]
	q.mu.Lock()
	for q.q.Len() > 0 && len(dst) < cap(dst) {
		dst = append(dst, q.q.Pop())
	}
	q.mu.Unlock()
	return dst
}

// Close refuses further packets and releases the queued ones. Take the sinks off their hubs
// first; a delivery that races with that is released here.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	for q.q.Len() > 0 {
		q.q.Pop().P.Release()
	}
	q.mu.Unlock()
}

// trackSink is the rtp.Sink of one track.
type trackSink struct {
	q     *Queue
	track int
}

// DeliverRTP implements rtp.Sink: it queues p for the reader's goroutine.
func (s *trackSink) DeliverRTP(p *rtp.Packet) { s.q.push(p, s.track) }

// DeliverRTCP implements rtp.Sink. Sender reports are not needed: remuxers align tracks by
// arrival time (gortsplib's rtptime.GlobalDecoder2), as mediamtx does.
func (s *trackSink) DeliverRTCP(p *rtp.Packet) { p.Release() }
