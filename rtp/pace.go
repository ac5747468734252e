package rtp

import "time"

// Pacing constants. A paced hub lets a burst of paceBurst worth of its
// paced rate leave at once (a P frame usually does), spaces the rest of a
// keyframe, and never holds a packet longer than paceMaxDelay: a packet that
// would wait longer means the rate estimate lags a step up in bitrate, and
// queueing further would only add latency.
const (
	paceWindow   = int64(time.Second)
	paceBurst    = int64(4 * time.Millisecond)
	paceMaxDelay = int64(200 * time.Millisecond)
)

// pacer gives each packet of a hub's output line a departure time so that
// the line leaves at no more than factor times its own average rate. It is
// computed once per packet in the hub and honoured by the UDP egress of
// every reader, so all readers of a stream are paced alike and still share
// sendmmsg batches. Its state is owned by WriteRTP.
type pacer struct {
	factor   float64
	winStart int64   // start of the current rate window
	winBytes int64   // bytes seen in it
	rate     float64 // smoothed average rate, bytes per ns (0: not known yet)
	nextFree int64   // when the paced line is free again
}

// depart returns when a packet of size bytes arriving at now may leave
// (monotonic ns), or 0 for at once.
func (p *pacer) depart(now int64, size int) int64 {
	if p.factor <= 0 {
		return 0
	}
	if p.winStart == 0 {
		p.winStart = now
	}
	p.winBytes += int64(size)
	if el := now - p.winStart; el >= paceWindow {
		r := float64(p.winBytes) / float64(el)
		if p.rate == 0 {
			p.rate = r
		} else {
			p.rate = 0.7*p.rate + 0.3*r
		}
		p.winStart, p.winBytes = now, 0
	}
	if p.rate == 0 {
		return 0 // the first second passes unpaced while the rate is learnt
	}
	if p.nextFree < now-paceBurst {
		p.nextFree = now - paceBurst
	}
	d := p.nextFree
	p.nextFree += int64(float64(size) / (p.rate * p.factor))
	switch {
	case d <= now:
		return 0
	case d-now > paceMaxDelay:
		p.nextFree = now
		return 0
	}
	return d
}
