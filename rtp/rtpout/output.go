package rtpout

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtp"
)

// Config describes an output. Its destinations must be valid, sendable addresses with room for
// the FEC ports (gateway/node's OutputSpec validates them).
type Config struct {
	// RTP and RTCP are the first leg's destinations.
	RTP, RTCP netip.AddrPort
	// Leg2 is the second 2022-7 leg's RTP destination (its RTCP goes to port+1); invalid for
	// none. Both legs carry identical packets: same bytes, same SSRC, sequence numbers and
	// timestamps, and the same FEC.
	Leg2 netip.AddrPort
	// FEC configures the 2022-1 encoder; Columns 0 sends no FEC. Column FEC goes to each
	// destination's port+2, row FEC to port+4. ColumnSeq and RowSeq are ignored: the FEC streams
	// start at random sequence numbers (RFC 3550 §5.1).
	FEC fec.Config
	// TTL is the multicast TTL (hop limit) of the output's packets; 0 means 1.
	TTL int
	// QueueLen bounds each sink's queue (0: rtp.UDPConfig's default).
	QueueLen int
	Pool     *rtp.Pool
	Logger   *slog.Logger
}

// Output is an rtp.Sink: the hub delivers one track's packets to it and it forwards each one to
// every leg, then feeds it to the 2022-1 encoder, whose FEC packets go to each leg's FEC ports.
//
// Each leg sends from a socket pair of its own rather than the node's shared pair: the multicast
// TTL is a socket option, and an output's TTL is its own. The pair still brings the batched
// egress (sendmmsg, GSO) and the per-sink queue that never blocks the hub; one egress worker per
// leg keeps its media, column and row FEC in one send order.
type Output struct {
	pool *rtp.Pool
	legs []*outLeg
	enc  *fec.Encoder // nil without FEC
	// emit is the encoder's callback, bound once: a method value made per packet would allocate.
	emit func(fec.Kind, []byte)

	// mu serialises deliveries (a hub delivers from one goroutine, but a late delivery from a
	// replaced hub may overlap the new hub's) and the encoder they drive.
	mu     sync.Mutex
	closed bool
	depart int64 // the departure of the media packet being encoded, for its FEC (under mu)

	encErrs atomic.Uint64
}

// outLeg is one destination of an output and its sinks.
type outLeg struct {
	pair     *rtp.UDPPair
	media    *rtp.UDPSink
	col, row *rtp.UDPSink // nil without that FEC stream
}

// New opens the sockets of an output.
func New(cfg Config) (*Output, error) {
	o := &Output{pool: cfg.Pool}
	o.emit = o.emitFEC
	withFEC := cfg.FEC.Columns != 0
	if withFEC {
		// RFC 3550 §5.1: random first sequence numbers for the FEC streams too.
		fc := cfg.FEC
		fc.ColumnSeq, fc.RowSeq = uint16(rand.Uint32()), uint16(rand.Uint32())
		enc, err := fec.NewEncoder(fc)
		if err != nil {
			return nil, fmt.Errorf("output FEC: %w", err)
		}
		o.enc = enc
	}
	dsts := [][2]netip.AddrPort{{cfg.RTP, cfg.RTCP}}
	if cfg.Leg2.IsValid() {
		dsts = append(dsts, [2]netip.AddrPort{cfg.Leg2, addPort(cfg.Leg2, 1)})
	}
	for _, d := range dsts {
		bind := "0.0.0.0:0"
		if d[0].Addr().Unmap().Is6() {
			bind = "[::]:0"
		}
		pair, err := rtp.ListenUDP(rtp.UDPConfig{RTPAddr: bind, QueueLen: cfg.QueueLen, MulticastTTL: cfg.TTL,
			EgressWorkers: 1, Pool: cfg.Pool, Logger: cfg.Logger})
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("output %s: %w", d[0], err)
		}
		leg := &outLeg{pair: pair, media: pair.NewSink(d[0], d[1])}
		if withFEC && cfg.FEC.Mode != fec.ModeRow {
			leg.col = pair.NewSink(addPort(d[0], 2), addPort(d[0], 3))
		}
		if withFEC && cfg.FEC.Mode != fec.ModeColumn {
			leg.row = pair.NewSink(addPort(d[0], 4), addPort(d[0], 5))
		}
		o.legs = append(o.legs, leg)
	}
	return o, nil
}

func addPort(ap netip.AddrPort, d uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+d)
}

// DeliverRTP implements rtp.Sink.
func (o *Output) DeliverRTP(p *rtp.Packet) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		p.Release()
		return
	}
	for range o.legs {
		p.Ref() // all before the first delivery, see emitFEC
	}
	for _, l := range o.legs {
		l.media.DeliverRTP(p)
	}
	// After the media, so each leg's worker sends a row's packets before its FEC. The packet
	// stays ours (one reference) until the encoder has read it.
	if o.enc != nil {
		o.depart = p.Depart()
		if err := o.enc.Push(p.Bytes(), o.emit); err != nil {
			o.encErrs.Add(1)
		}
	}
	o.mu.Unlock()
	p.Release()
}

// emitFEC sends one FEC packet, copied out of the encoder's buffer, to every leg. Every
// reference is taken before the first delivery: a leg's worker may send and release its
// reference at once.
func (o *Output) emitFEC(k fec.Kind, b []byte) {
	n := 0
	for _, l := range o.legs {
		if l.fecSink(k) != nil {
			n++
		}
	}
	if n == 0 {
		return
	}
	q := o.pool.Get(len(b))
	copy(q.Bytes(), b)
	q.SetDepart(o.depart) // with pacing, not ahead of the media packet that completed it
	for range n - 1 {
		q.Ref()
	}
	for _, l := range o.legs {
		if s := l.fecSink(k); s != nil {
			s.DeliverRTP(q)
		}
	}
}

func (l *outLeg) fecSink(k fec.Kind) *rtp.UDPSink {
	if k == fec.Row {
		return l.row
	}
	return l.col
}

// DeliverRTCP implements rtp.Sink: the hub's sender reports go to each leg's RTCP port.
func (o *Output) DeliverRTCP(p *rtp.Packet) {
	for range o.legs {
		p.Ref()
	}
	for _, l := range o.legs {
		l.media.DeliverRTCP(p)
	}
	p.Release()
}

// Stats are an output's counters, summed over its legs.
type Stats struct {
	Packets, Bytes uint64 // media and sender reports sent
	FEC            uint64 // FEC packets sent
	Dropped        uint64 // media, reports and FEC that found a queue full
	Errors         uint64 // send failures, and packets the FEC encoder refused
}

// Stats sums the output's counters over its legs.
func (o *Output) Stats() Stats {
	var st Stats
	for _, l := range o.legs {
		ms := l.media.Stats()
		st.Packets += ms.Packets
		st.Bytes += ms.Bytes
		st.Dropped += ms.Dropped
		st.Errors += ms.Errors
		for _, s := range []*rtp.UDPSink{l.col, l.row} {
			if s != nil {
				fs := s.Stats()
				st.FEC += fs.Packets
				st.Dropped += fs.Dropped
				st.Errors += fs.Errors
			}
		}
	}
	st.Errors += o.encErrs.Load()
	return st
}

// Close stops the output and closes its sockets. Idempotent.
func (o *Output) Close() {
	o.mu.Lock()
	o.closed = true
	legs := o.legs
	o.mu.Unlock()
	for _, l := range legs {
		_ = l.pair.Close() // closes its sinks
	}
}
