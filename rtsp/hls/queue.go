package hls

import (
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/ring"
)

// queued is one packet waiting for the muxer, with the index of its track in the muxer.
type queued struct {
	p     *rtp.Packet
	track int
}

// queue takes the packets of every track of one muxer, in arrival order, from the hubs'
// goroutines to the muxer's. Pushing never blocks: a full or closed queue drops and counts.
type queue struct {
	mu     sync.Mutex
	q      ring.Queue[queued]
	closed bool
	wake   chan struct{} // capacity 1: the muxer has packets to take

	in, dropped atomic.Uint64
}

func newQueue(limit int) *queue {
	return &queue{q: ring.New[queued](256, limit), wake: make(chan struct{}, 1)}
}

func (q *queue) push(p *rtp.Packet, track int) {
	q.mu.Lock()
	if q.closed || !q.q.Push(queued{p: p, track: track}) {
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

// take moves up to cap(dst) queued packets into dst; the caller releases them.
func (q *queue) take(dst []queued) []queued {
	dst = dst[:0]
	q.mu.Lock()
	for q.q.Len() > 0 && len(dst) < cap(dst) {
		dst = append(dst, q.q.Pop())
	}
	q.mu.Unlock()
	return dst
}

// close refuses further packets and releases the queued ones.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	for q.q.Len() > 0 {
		q.q.Pop().p.Release()
	}
	q.mu.Unlock()
}

// trackSink is the rtp.Sink a muxer hangs on one track's hub.
type trackSink struct {
	q     *queue
	track int
}

// DeliverRTP implements rtp.Sink: it queues p for the muxer's goroutine.
func (s *trackSink) DeliverRTP(p *rtp.Packet) { s.q.push(p, s.track) }

// DeliverRTCP implements rtp.Sink. Sender reports are not needed: the tracks are aligned by
// arrival time (gortsplib's rtptime.GlobalDecoder2), as mediamtx's HLS muxer does.
func (s *trackSink) DeliverRTCP(p *rtp.Packet) { p.Release() }
