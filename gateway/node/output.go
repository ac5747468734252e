package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/nack"
)

// OutputSpec is what a SinkRTP needs besides its destination (Flow.RTP, Flow.RTCP).
type OutputSpec struct {
	// Leg2 is the second 2022-7 leg's RTP destination (its RTCP goes to port+1); invalid for
	// none. Both legs carry identical packets: same bytes, same SSRC, sequence numbers and
	// timestamps, and the same FEC.
	Leg2 netip.AddrPort
	// FECColumns and FECRows are L and D of SMPTE 2022-1 FEC; FECColumns 0 sends no FEC.
	// Column FEC goes to the destination port+2, row FEC to port+4 (on both legs).
	FECColumns, FECRows int
	// FECMode picks the FEC streams (fec.Mode2D, fec.ModeColumn, fec.ModeRow).
	FECMode fec.Mode
	// TTL is the multicast TTL (hop limit) of the output's packets; 0 means 1.
	TTL int
}

// fecConfig is the encoder configuration of the spec; ok is false without FEC.
func (o OutputSpec) fecConfig() (fec.Config, bool) {
	if o.FECColumns == 0 {
		return fec.Config{}, false
	}
	return fec.Config{Columns: o.FECColumns, Rows: o.FECRows, Mode: o.FECMode}, true
}

func (o OutputSpec) validate(f Flow) error {
	if f.Track < 0 {
		return errors.New("negative track")
	}
	if !f.RTP.IsValid() || !f.RTCP.IsValid() {
		return errors.New("sink.rtp needs RTP and RTCP destinations")
	}
	dsts := []netip.AddrPort{f.RTP}
	if o.Leg2.IsValid() {
		dsts = append(dsts, o.Leg2)
	}
	for _, d := range dsts {
		if d.Port() == 0 || d.Addr().IsUnspecified() {
			return fmt.Errorf("output destination %s cannot be sent to", d)
		}
		if o.FECColumns != 0 && d.Port() > 65535-5 {
			return fmt.Errorf("output destination %s: no room for the FEC ports +2 and +4", d)
		}
	}
	if o.TTL < 0 || o.TTL > 255 {
		return fmt.Errorf("output TTL %d out of range 0..255", o.TTL)
	}
	if cfg, ok := o.fecConfig(); ok {
		if _, err := fec.NewEncoder(cfg); err != nil {
			return fmt.Errorf("output FEC: %w", err)
		}
	} else if o.FECRows != 0 || o.FECMode != 0 {
		return errors.New("output FEC rows or mode without columns")
	}
	return nil
}

// rtpOutput is a SinkRTP: the hub delivers one track's packets to it and it forwards each one to
// every leg, then feeds it to the 2022-1 encoder, whose FEC packets go to each leg's FEC ports.
//
// Each leg sends from a socket pair of its own rather than the node's shared pair: the multicast
// TTL is a socket option, and an output's TTL is its own. The pair still brings the batched
// egress (sendmmsg, GSO) and the per-sink queue that never blocks the hub; one egress worker per
// leg keeps its media, column and row FEC in one send order.
type rtpOutput struct {
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

// newRTPOutput opens the sockets of an output described by f (validated).
func newRTPOutput(f Flow, pool *rtp.Pool, queueLen int, log *slog.Logger) (*rtpOutput, error) {
	o := &rtpOutput{pool: pool}
	o.emit = o.emitFEC
	cfg, withFEC := f.Output.fecConfig()
	if withFEC {
		// RFC 3550 §5.1: random first sequence numbers for the FEC streams too.
		cfg.ColumnSeq, cfg.RowSeq = uint16(rand.Uint32()), uint16(rand.Uint32())
		enc, err := fec.NewEncoder(cfg)
		if err != nil {
			return nil, fmt.Errorf("output FEC: %w", err)
		}
		o.enc = enc
	}
	dsts := [][2]netip.AddrPort{{f.RTP, f.RTCP}}
	if f.Output.Leg2.IsValid() {
		dsts = append(dsts, [2]netip.AddrPort{f.Output.Leg2, addPort(f.Output.Leg2, 1)})
	}
	for _, d := range dsts {
		bind := "0.0.0.0:0"
		if d[0].Addr().Unmap().Is6() {
			bind = "[::]:0"
		}
		pair, err := rtp.ListenUDP(rtp.UDPConfig{RTPAddr: bind, QueueLen: queueLen, MulticastTTL: f.Output.TTL,
			EgressWorkers: 1, Pool: pool, Logger: log})
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("output %s: %w", d[0], err)
		}
		leg := &outLeg{pair: pair, media: pair.NewSink(d[0], d[1])}
		if withFEC && cfg.Mode != fec.ModeRow {
			leg.col = pair.NewSink(addPort(d[0], 2), addPort(d[0], 3))
		}
		if withFEC && cfg.Mode != fec.ModeColumn {
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
func (o *rtpOutput) DeliverRTP(p *rtp.Packet) {
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
func (o *rtpOutput) emitFEC(k fec.Kind, b []byte) {
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
func (o *rtpOutput) DeliverRTCP(p *rtp.Packet) {
	for range o.legs {
		p.Ref()
	}
	for _, l := range o.legs {
		l.media.DeliverRTCP(p)
	}
	p.Release()
}

// stats sums the output's counters over its legs.
func (o *rtpOutput) stats() FlowStats {
	var st FlowStats
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
func (o *rtpOutput) Close() {
	o.mu.Lock()
	o.closed = true
	legs := o.legs
	o.mu.Unlock()
	for _, l := range legs {
		_ = l.pair.Close() // closes its sinks
	}
}

// hubSink is what a sink flow hands its hub: the output, the relay history in front of a UDP
// sink, or the UDP sink itself.
func (fl *flow) hubSink() rtp.Sink {
	switch {
	case fl.out != nil:
		return fl.out
	case fl.hist != nil:
		return fl.hist
	}
	return fl.sink
}

// isSink tells flows that hang a sink on a hub.
func (fl *flow) isSink() bool { return fl.sink != nil || fl.out != nil }

// closeSink releases a sink flow's sockets and buffers, without the node's lock.
func (fl *flow) closeSink() {
	if fl.out != nil {
		fl.out.Close()
	}
	if fl.hist != nil {
		fl.hist.Close()
	}
	if fl.sink != nil {
		fl.sink.Close()
	}
}

// newSinkLocked opens what a new sink flow sends through: an output's sockets, or a UDP sink on
// the node's pair (with a retransmission history when it is a NACK relay sink).
func (n *Local) newSinkLocked(fl *flow) error {
	f := fl.spec
	if f.Kind == SinkRTP {
		out, err := newRTPOutput(f, n.pool, 0, n.log.With("stream", f.Stream, "output", f.RTP.String()))
		if err != nil {
			return err
		}
		fl.out = out
		return nil
	}
	if err := n.checkSecondPair(f.SecondPair); err != nil {
		return fmt.Errorf("flow %s: %w", f.ID, err)
	}
	pair := n.pair(f.SecondPair)
	if len(f.SRTPKey) > 0 {
		// protected on the egress workers, per reader (or relay), with the key the control drew
		k, err := rtp.SRTPKeyFromBytes(f.SRTPKey)
		switch {
		case err != nil:
		case f.SRTPResume != nil:
			fl.sink, err = pair.NewSRTPSinkResuming(f.RTP, f.RTCP, k, *f.SRTPResume)
		default:
			fl.sink, err = pair.NewSRTPSink(f.RTP, f.RTCP, k)
		}
		if err != nil {
			return fmt.Errorf("flow %s: %w", f.ID, err)
		}
	} else {
		fl.sink = pair.NewSink(f.RTP, f.RTCP)
	}
	if f.NACK && f.Kind == SinkUDP {
		fl.hist = nack.NewHistory(fl.sink, fl.hub.SSRC())
	}
	return nil
}

// setRepairLocked gives a NACK relay source its per-track repair (once: NACK and NACKWait are
// fixed at creation) and a feedback sink aimed at its current upstream's RTCP address.
func (n *Local) setRepairLocked(fl *flow, f Flow) {
	if !f.NACK {
		return
	}
	if fl.rx == nil {
		for range f.Tracks {
			fl.rx = append(fl.rx, newRepairer(fl, n.pool, f.NACKWait))
		}
	}
	if old := fl.fb.Swap(0, n.udp.NewSink(f.RTP, f.RTCP)); old != nil {
		old.Close()
	}
}

// stopRepairLocked ends a relay source's repair: held packets are released, no more NACKs.
func (n *Local) stopRepairLocked(fl *flow) {
	for _, rx := range fl.rx {
		rx.Close()
	}
	if fb := fl.fb.Swap(0, nil); fb != nil {
		fb.Close()
	}
}
