package st2110out

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// Config configures a Sender.
type Config struct {
	// Video is the track's format; its exactframerate sets the frame period.
	Video *st2110.Video
	// TP is the sender type: st2110.TPNL (narrow linear, default), st2110.TPN (narrow gapped)
	// or st2110.TPW (wide; paced as gapped, declared wide).
	TP string
	// Dest is where the packets go; Leg2, when valid, gets an identical copy (SMPTE 2022-7).
	Dest, Leg2 netip.AddrPort
	// TTL is the multicast TTL (0: 1).
	TTL         int
	PayloadType uint8
	SSRC        uint32
	// MaxPacket is the largest RTP packet (default st2110.DefaultPayload).
	MaxPacket int
	// Clock is the media clock (default time.Now); see the package comment.
	Clock func() time.Time
	// Frames is the frame buffers between the hub and the pacer (default 4).
	Frames int
	Logger *slog.Logger
}

// Stats are a Sender's counters.
type Stats struct {
	// Frames and Packets sent; Bytes of RTP.
	Frames, Packets, Bytes uint64
	// Dropped frames: the pacer was behind (no free buffer) or the source ran ahead of the
	// media clock.
	Dropped uint64
	// Late frames started more than one packet spacing after their first packet's scheduled
	// time (their packets keep the spacing, shifted).
	Late uint64
	// Stalls are the times the pacer woke too late to catch up within CMAX and shifted the
	// rest of its frame.
	Stalls uint64
	// Errors are send errors.
	Errors uint64
	// In are the reassembler's counters of the track's packets.
	In st2110.ReassemblerStats
}

// Sender is an rtp.Sink that re-sends a raw video track as a paced ST 2110-20 flow. The hub's
// goroutine only copies packets into the frame being filled; a pacer goroutine owned by the
// Sender sends. Close ends it.
type Sender struct {
	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex // the reassembler: deliveries may race with Close
	reasm  *st2110.Reassembler
	pk     *st2110.Packetizer
	timing st2110.Timing
	conns  []*ipv4.PacketConn
	raw    []*net.UDPConn
	dests  []net.Addr
	frames chan *st2110.Frame
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	closed bool

	lastEpoch uint64
	msgs      []ipv4.Message
	bufs      [][]byte

	frameN, packets, bytes, dropped, late, stalls, errs atomic.Uint64
}

// batch is how many due packets go out in one sendmmsg.
const batch = 8

// spinAhead is how long before a packet's time the pacer stops sleeping and spins; maxSleep
// bounds one sleep, so Close is seen soon.
const (
	spinAhead = 100 * time.Microsecond
	maxSleep  = 5 * time.Millisecond
)

// New opens the sockets and starts the pacer.
func New(cfg Config) (*Sender, error) {
	if cfg.Video == nil {
		return nil, errors.New("st2110 sender: no video format")
	}
	if cfg.Video.Interlace {
		return nil, errors.New("st2110 sender: interlaced video is not supported yet")
	}
	switch cfg.TP {
	case "":
		cfg.TP = st2110.TPNL
	case st2110.TPN, st2110.TPNL, st2110.TPW:
	default:
		return nil, fmt.Errorf("st2110 sender: TP %q, want %s, %s or %s", cfg.TP, st2110.TPN, st2110.TPNL, st2110.TPW)
	}
	if !cfg.Dest.IsValid() {
		return nil, errors.New("st2110 sender: no destination")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Frames <= 0 {
		cfg.Frames = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pk, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: cfg.Video, PayloadType: cfg.PayloadType, SSRC: cfg.SSRC, MaxPacket: cfg.MaxPacket})
	if err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, log: cfg.Logger, pk: pk, frames: make(chan *st2110.Frame, cfg.Frames), done: make(chan struct{})}
	s.timing = st2110.NewTiming(cfg.Video, cfg.TP, pk.PacketsPerFrame())
	// buffers: the queue, the frame being sent and the one being filled
	s.reasm, err = st2110.NewReassembler(st2110.ReassemblerConfig{Video: cfg.Video, Frames: cfg.Frames + 2, Sink: st2110.FrameSinkFunc(s.queue)})
	if err != nil {
		return nil, err
	}
	for _, d := range []netip.AddrPort{cfg.Dest, cfg.Leg2} {
		if !d.IsValid() {
			continue
		}
		// unconnected: a receiver that is not (yet) listening must not turn into send errors
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			s.closeConns()
			return nil, fmt.Errorf("st2110 sender: %w", err)
		}
		_ = c.SetWriteBuffer(4 << 20)
		pc := ipv4.NewPacketConn(c)
		if d.Addr().IsMulticast() {
			_ = pc.SetMulticastTTL(max(1, cfg.TTL))
		}
		s.raw = append(s.raw, c)
		s.conns = append(s.conns, pc)
		s.dests = append(s.dests, net.UDPAddrFromAddrPort(d))
	}
	s.msgs = make([]ipv4.Message, batch)
	s.bufs = make([][]byte, batch)
	for i := range s.msgs {
		s.bufs[i] = make([]byte, 9000)
		s.msgs[i].Buffers = [][]byte{nil}
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Timing is the ST 2110-21 model the sender paces by.
func (s *Sender) Timing() st2110.Timing { return s.timing }

// DeliverRTP implements rtp.Sink: the packet is copied into the frame being filled.
func (s *Sender) DeliverRTP(p *rtp.Packet) {
	s.mu.Lock()
	if !s.closed {
		s.reasm.WriteRTP(p.Bytes())
	}
	s.mu.Unlock()
	p.Release()
}

// DeliverRTCP implements rtp.Sink: a 2110 flow carries no RTCP.
func (s *Sender) DeliverRTCP(p *rtp.Packet) { p.Release() }

// queue hands a finished frame to the pacer (on the hub's goroutine).
func (s *Sender) queue(f *st2110.Frame) {
	select {
	case s.frames <- f:
	default:
		s.dropped.Add(1)
		f.Release()
	}
}

// run paces frames out until Close.
func (s *Sender) run() {
	defer s.wg.Done()
	// one thread sleeps and spins for this flow alone
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		select {
		case <-s.done:
			return
		case f := <-s.frames:
			s.send(f)
			f.Release()
		}
	}
}

// epochs converts a clock reading to the index of the frame period it is in.
func (s *Sender) epoch(t time.Time) uint64 {
	v := s.cfg.Video
	hi, lo := bits.Mul64(uint64(t.UnixNano()), uint64(v.RateNum))
	q, _ := bits.Div64(hi, lo, uint64(v.RateDen)*1e9)
	return q
}

// epochStart is when frame period n begins.
func (s *Sender) epochStart(n uint64) time.Time {
	v := s.cfg.Video
	hi, lo := bits.Mul64(n, uint64(v.RateDen)*1e9)
	q, _ := bits.Div64(hi, lo, uint64(v.RateNum))
	return time.Unix(0, int64(q))
}

// rtpTime is the 90 kHz media clock at the start of frame period n, mod 2^32 (ST 2110-10).
func (s *Sender) rtpTime(n uint64) uint32 {
	v := s.cfg.Video
	hi, lo := bits.Mul64(n, uint64(v.RateDen)*90000)
	q, _ := bits.Div64(hi, lo, uint64(v.RateNum))
	return uint32(q)
}

// send paces one frame: it takes the next frame period of the media clock, and its packets
// leave TROFFSET into it, TRS apart.
func (s *Sender) send(f *st2110.Frame) {
	now := s.cfg.Clock()
	// the period after the last frame's, unless that is past: then the first period whose
	// first packet is still to come
	cur := s.epoch(now)
	n := max(s.lastEpoch+1, cur)
	tpr0 := s.epochStart(n).Add(s.timing.TROffset)
	if late := now.Sub(tpr0); late > s.timing.TFrame/2 {
		// too late for this period: the next one
		n++
		tpr0 = s.epochStart(n).Add(s.timing.TROffset)
	} else if late > 0 {
		// a little late (the previous frame ended late, a timer woke late): start now,
		// keeping the spacing, rather than burst to catch up
		if late > s.timing.TRS {
			s.late.Add(1)
		}
		tpr0 = now
	}
	if n > cur+uint64(s.cfg.Frames)+1 {
		// the source runs ahead of the media clock: drop rather than queue without end
		s.dropped.Add(1)
		return
	}
	s.lastEpoch = n
	if err := s.pk.Begin(f.Data, s.rtpTime(n)); err != nil {
		s.errs.Add(1)
		return
	}
	nominal := s.epochStart(n).Add(s.timing.TROffset)
	trs := s.spacing(now.Sub(nominal))
	// a late wake-up sends what is due at once as long as that stays within CMAX; beyond, the
	// schedule shifts
	catchUp := time.Duration(s.timing.CMax-2) * trs
	j := 0
	for !s.pk.Done() {
		due := tpr0.Add(time.Duration(j) * trs)
		if !s.waitUntil(due) {
			return
		}
		now := s.cfg.Clock()
		if behind := now.Sub(due); behind > catchUp {
			// the pacer was held up (a loaded host): re-plan the rest of the frame from
			// now rather than burst to catch up, which is what overflows a narrow receiver
			trs = s.spacing(now.Sub(nominal.Add(time.Duration(j) * s.timing.TRS)))
			tpr0 = now.Add(-time.Duration(j) * trs)
			s.stalls.Add(1)
		}
		// what is due now leaves in one batch
		nb := 0
		for nb < batch && !s.pk.Done() && !tpr0.Add(time.Duration(j)*trs).After(now) {
			l := s.pk.Next(s.bufs[nb])
			s.msgs[nb].Buffers[0] = s.bufs[nb][:l]
			s.bytes.Add(uint64(l))
			nb++
			j++
		}
		for i, c := range s.conns {
			for k := range s.msgs[:nb] {
				s.msgs[k].Addr = s.dests[i]
			}
			s.write(c, s.msgs[:nb])
		}
		s.packets.Add(uint64(nb))
	}
	s.frameN.Add(1)
}

// spacing is the packet spacing for a frame running late behind its nominal schedule: closed
// by up to 5 % to get back onto the media clock (the compatibility model drains at 1.1× the
// average rate, and 5 % of a frame's packets stays inside VRX_FULL).
func (s *Sender) spacing(late time.Duration) time.Duration {
	if late <= 0 {
		return s.timing.TRS
	}
	return time.Duration(float64(s.timing.TRS) * max(1/1.05, 1-float64(late)/float64(s.timing.TFrame)))
}

// write sends msgs on c, counting what fails.
func (s *Sender) write(c *ipv4.PacketConn, msgs []ipv4.Message) {
	for len(msgs) > 0 {
		n, err := c.WriteBatch(msgs, 0)
		if err != nil {
			s.errs.Add(uint64(len(msgs)))
			return
		}
		msgs = msgs[n:]
	}
}

// waitUntil sleeps, then spins, until t; false when the sender closes. Go's timers wake up to a
// millisecond late on Linux (the netpoller's resolution), so the pacer sleeps in the kernel
// (nanosleep, tens of microseconds late) and spins the last stretch.
func (s *Sender) waitUntil(t time.Time) bool {
	for {
		d := t.Sub(s.cfg.Clock())
		if d <= 0 {
			return true
		}
		select {
		case <-s.done:
			return false
		default:
		}
		if d > spinAhead {
			sleep(min(d-spinAhead, maxSleep))
		}
		// else spin: the goroutine has its thread to itself (run locks it)
	}
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	return Stats{Frames: s.frameN.Load(), Packets: s.packets.Load(), Bytes: s.bytes.Load(), Dropped: s.dropped.Load(),
		Late: s.late.Load(), Stalls: s.stalls.Load(), Errors: s.errs.Load(), In: s.reasm.Stats()}
}

// Close stops the pacer and closes the sockets. It is idempotent.
func (s *Sender) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		for {
			select {
			case f := <-s.frames:
				f.Release()
				continue
			default:
			}
			break
		}
		s.closeConns()
		st := s.Stats()
		s.log.Info("st2110 output stopped", "dest", s.cfg.Dest, "frames", st.Frames, "packets", st.Packets,
			"dropped", st.Dropped, "late", st.Late, "stalls", st.Stalls, "errors", st.Errors)
	})
}

func (s *Sender) closeConns() {
	for _, c := range s.raw {
		c.Close()
	}
}
