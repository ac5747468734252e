package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtp/merge"
)

// RTPLeg is one path a plain RTP source arrives on: a local address (or a
// multicast group to join) and, per track, the media port. RTCP is expected
// on port+1, column FEC on port+2 and row FEC on port+4.
type RTPLeg struct {
	Addr  netip.Addr
	Ports []int
	// Addrs, when set, overrides Addr per track (ST 2110 sends each essence to its own
	// group); Sources names per track the one sender a group is joined for (source-specific
	// multicast, RFC 4570 a=source-filter), zero for any.
	Addrs, Sources []netip.Addr
}

// addr is track t's address on the leg and its SSM source.
func (l RTPLeg) addr(t int) (netip.Addr, netip.Addr) {
	a, src := l.Addr, netip.Addr{}
	if t < len(l.Addrs) {
		a = l.Addrs[t]
	}
	if t < len(l.Sources) {
		src = l.Sources[t]
	}
	return a, src
}

// Defaults of RTPSourceConfig.
const (
	DefaultStallTimeout = 5 * time.Second
	DefaultFECHold      = 2 * time.Second
	DefaultFECMinHold   = 200 * time.Millisecond
	rtpSourceTick       = 10 * time.Millisecond
	readyRetry          = time.Second
)

// RTPSourceConfig configures an RTPSource.
type RTPSourceConfig struct {
	// Legs are the paths: one, or two for SMPTE 2022-7 live-live (up to
	// merge.MaxLegs), each with one port per track.
	Legs []RTPLeg
	// Interface is the network interface multicast groups are joined on;
	// empty lets the kernel choose.
	Interface string
	// SDP and Tracks describe the stream (given to OnReady).
	SDP    []byte
	Tracks []Track
	// FEC turns SMPTE 2022-1 decoding on: column FEC on each media port + 2,
	// row FEC on + 4. Columns and Rows are the sender's L and D when known
	// (0: learnt from the FEC headers); they size the reorder wait.
	FEC           bool
	Columns, Rows int
	// FECHold bounds how long packets wait behind a missing one for FEC to
	// rebuild it (default DefaultFECHold); they also stop waiting once the
	// stream has moved two matrices (and a recvmmsg batch) past the gap and
	// FECMinHold (default DefaultFECMinHold) has passed.
	FECHold, FECMinHold time.Duration
	// Skew is the 2022-7 merge window (merge.ClassA, ClassB, ClassC or any
	// duration; 0 means ClassB).
	Skew time.Duration
	// NoRTCP binds only the media ports (ST 2110 flows carry no RTCP, and their ports need not
	// leave port+1 free).
	NoRTCP bool
	// StallTimeout is the silence after which OnDisconnect reports the
	// source down (default DefaultStallTimeout). Packets coming back start
	// a new OnReady.
	StallTimeout time.Duration
	Pool         *Pool
	Logger       *slog.Logger
}

// ErrStalled is the error OnDisconnect gets when the source fell silent.
var ErrStalled = errors.New("rtp: source stopped sending")

// RTPSourceStats are an RTPSource's counters since it started.
type RTPSourceStats struct {
	// Received, Bytes: RTP datagrams on the media ports of all legs.
	Received, Bytes uint64
	// Invalid datagrams on media ports are not RTP version 2.
	Invalid uint64
	// FEC datagrams on the FEC ports; Recovered media packets rebuilt
	// from them; Unrecoverable sequence numbers the decoders gave up on
	// (per leg: the other leg may still have brought them).
	FEC, Recovered, Unrecoverable uint64
	// Output packets handed to the handler; Lost sequence numbers missing
	// from that output (what a reader misses).
	Output, Lost uint64
	// Legs are the 2022-7 merger's per-leg counters, summed over tracks
	// (nil with one leg).
	Legs []merge.LegStats
	// LastPacket is the arrival of the latest datagram (zero: none yet).
	LastPacket time.Time
}

// RTPSource receives a stream sent as plain RTP over UDP (unicast or
// multicast), rebuilds lost packets from SMPTE 2022-1 FEC, merges 2022-7
// legs, and hands the packets in sequence order to a SourceHandler.
//
// Goroutines: one reader per socket (recvmmsg batches on Linux) and one
// ticker that releases packets waiting for a deadline and watches for a
// silent source. Close ends them all.
type RTPSource struct {
	cfg  RTPSourceConfig
	h    SourceHandler
	log  *slog.Logger
	pool *Pool

	conns   []*net.UDPConn
	inputs  []*rtpInput     // leg-major: inputs[leg*ntracks+track]
	mergers []*merge.Merger // per track, nil with one leg
	outs    []*trackOut     // per track

	sess      sync.Mutex // serialises OnReady/OnDisconnect
	live      atomic.Bool
	closed    bool
	retryAt   int64 // monotonic ns before which OnReady is not retried
	lastAt    atomic.Int64
	received  atomic.Uint64
	bytes     atomic.Uint64
	invalid   atomic.Uint64
	fecPkts   atomic.Uint64
	startedAt time.Time

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// rtpInput is one track on one leg: its media, RTCP and FEC sockets feed it.
type rtpInput struct {
	src         *RTPSource
	leg, track  int
	mu          sync.Mutex
	dec         *fec.Decoder // nil without FEC
	ro          *reorder     // nil without FEC
	emitFn      func([]byte) // bound once: reorder output
	recDone     atomic.Uint64
	unrecovered atomic.Uint64
}

// trackOut is the last stage of one track: the handler call, and the
// sequence line the reader gets, to count what it misses.
type trackOut struct {
	src     *RTPSource
	track   int
	started bool
	last    uint16
	ssrc    uint32
	out     atomic.Uint64
	lost    atomic.Uint64
	fn      func([]byte) // bound once: the merger's Out
}

// NewRTPSource binds every socket of cfg and starts receiving. Nothing
// reaches h before the first packet.
func NewRTPSource(cfg RTPSourceConfig, h SourceHandler) (*RTPSource, error) {
	s, err := newDetachedSource(cfg, h)
	if err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		s.closeSockets()
		s.releaseBuffers()
		return nil, err
	}
	s.wg.Add(1)
	go s.tickLoop()
	return s, nil
}

// newDetachedSource builds a source without sockets or goroutines: the
// packet path alone (NewRTPSource, benchmarks).
func newDetachedSource(cfg RTPSourceConfig, h SourceHandler) (*RTPSource, error) {
	if h == nil {
		return nil, errors.New("rtp source: no handler")
	}
	if len(cfg.Tracks) == 0 {
		return nil, errors.New("rtp source: no tracks")
	}
	if len(cfg.Legs) == 0 {
		cfg.Legs = []RTPLeg{{Addr: netip.IPv4Unspecified(), Ports: make([]int, len(cfg.Tracks))}}
	}
	if len(cfg.Legs) > merge.MaxLegs {
		return nil, fmt.Errorf("rtp source: %d legs, want 1..%d", len(cfg.Legs), merge.MaxLegs)
	}
	for i, l := range cfg.Legs {
		if !l.Addr.IsValid() && len(l.Addrs) != len(cfg.Tracks) {
			return nil, fmt.Errorf("rtp source: leg %d has no address", i+1)
		}
		if len(l.Ports) != len(cfg.Tracks) {
			return nil, fmt.Errorf("rtp source: leg %d has %d ports for %d tracks", i+1, len(l.Ports), len(cfg.Tracks))
		}
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.FECHold <= 0 {
		cfg.FECHold = DefaultFECHold
	}
	if cfg.FECMinHold <= 0 {
		cfg.FECMinHold = min(DefaultFECMinHold, cfg.FECHold)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Pool == nil {
		cfg.Pool = NewPool()
	}
	s := &RTPSource{cfg: cfg, h: h, log: cfg.Logger, pool: cfg.Pool, done: make(chan struct{}), startedAt: time.Now()}
	nt := len(cfg.Tracks)
	s.outs = make([]*trackOut, nt)
	for t := range nt {
		o := &trackOut{src: s, track: t}
		o.fn = o.write
		s.outs[t] = o
	}
	if len(cfg.Legs) > 1 {
		s.mergers = make([]*merge.Merger, nt)
		for t := range nt {
			s.mergers[t] = merge.New(merge.Config{Skew: cfg.Skew, Legs: len(cfg.Legs), Out: s.outs[t].fn, Logger: s.log})
		}
	}
	for l := range cfg.Legs {
		for t := range nt {
			in := &rtpInput{src: s, leg: l, track: t}
			in.emitFn = in.emit
			if cfg.FEC {
				dec, err := fec.NewDecoder(fec.DecoderConfig{})
				if err != nil {
					return nil, fmt.Errorf("rtp source: %w", err)
				}
				in.dec = dec
				in.ro = newReorder(s.pool, int64(cfg.FECMinHold), int64(cfg.FECHold), in.emitFn)
			}
			s.inputs = append(s.inputs, in)
		}
	}
	return s, nil
}

// socket kinds, in port offset order.
const (
	sockMedia = iota
	sockRTCP
	sockColumn
	sockRow
)

var sockOffset = [...]int{sockMedia: 0, sockRTCP: 1, sockColumn: 2, sockRow: 4}

// listen binds the sockets and starts their readers.
func (s *RTPSource) listen() error {
	var ifi *net.Interface
	if s.cfg.Interface != "" {
		var err error
		if ifi, err = net.InterfaceByName(s.cfg.Interface); err != nil {
			return fmt.Errorf("rtp source: interface %q: %w", s.cfg.Interface, err)
		}
	}
	type job struct {
		c    *net.UDPConn
		in   *rtpInput
		kind int
	}
	var jobs []job
	for l, leg := range s.cfg.Legs {
		for t, port := range leg.Ports {
			in := s.inputs[l*len(s.cfg.Tracks)+t]
			kinds := []int{sockMedia, sockRTCP}
			if s.cfg.NoRTCP {
				kinds = kinds[:1]
			}
			if s.cfg.FEC {
				kinds = append(kinds, sockColumn, sockRow)
			}
			addr, source := leg.addr(t)
			for _, k := range kinds {
				c, err := listenRTPSource(addr, source, port+sockOffset[k], ifi)
				if err != nil {
					return err
				}
				s.conns = append(s.conns, c)
				jobs = append(jobs, job{c, in, k})
			}
		}
	}
	for _, j := range jobs {
		s.wg.Add(1)
		go s.readLoop(j.c, j.in, j.kind)
	}
	return nil
}

// listenRTPSource binds addr:port, joining addr on ifi when it is a
// multicast group (for source only, when valid).
func listenRTPSource(addr, source netip.Addr, port int, ifi *net.Interface) (*net.UDPConn, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("rtp source: port %d out of range", port)
	}
	network := "udp4"
	if addr.Is6() && !addr.Is4In6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: addr.AsSlice(), Port: port, Zone: addr.Zone()})
	if err != nil {
		return nil, fmt.Errorf("rtp source: listen %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	if err := c.SetReadBuffer(udpSocketBuffer); err != nil {
		slog.Debug("rtp source: SO_RCVBUF not set", "err", err)
	}
	forceBuffers(c, udpSocketBuffer)
	if addr.IsMulticast() {
		g := &net.UDPAddr{IP: addr.AsSlice()}
		switch {
		case source.IsValid() && network == "udp4":
			err = ipv4.NewPacketConn(c).JoinSourceSpecificGroup(ifi, g, &net.UDPAddr{IP: source.AsSlice()})
		case source.IsValid():
			err = ipv6.NewPacketConn(c).JoinSourceSpecificGroup(ifi, g, &net.UDPAddr{IP: source.AsSlice()})
		case network == "udp4":
			err = ipv4.NewPacketConn(c).JoinGroup(ifi, g)
		default:
			err = ipv6.NewPacketConn(c).JoinGroup(ifi, g)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("rtp source: join %s: %w", addr, err)
		}
	}
	return c, nil
}

// deliver handles one datagram read from a socket of kind for in.
func (in *rtpInput) deliver(kind int, b []byte) {
	s := in.src
	now := Now()
	s.lastAt.Store(now)
	switch kind {
	case sockMedia:
		s.received.Add(1)
		s.bytes.Add(uint64(len(b)))
		if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
			s.invalid.Add(1)
			return
		}
		if !s.ready(now) {
			return
		}
		in.mu.Lock()
		if in.dec == nil {
			in.emit(b)
		} else {
			switch err := in.dec.PushMedia(b); {
			case errors.Is(err, fec.ErrDuplicate):
				// rebuilt before this late original came: already queued
			case err != nil:
				s.invalid.Add(1)
			default:
				in.ro.put(b, now, in.depth())
			}
			in.drain(now)
		}
		in.mu.Unlock()
	case sockRTCP:
		if s.live.Load() {
			s.h.WriteRTCP(in.track, b)
		}
	case sockColumn, sockRow:
		s.fecPkts.Add(1)
		k := fec.Column
		if kind == sockRow {
			k = fec.Row
		}
		in.mu.Lock()
		_ = in.dec.PushFEC(k, b) // the decoder counts what it refuses
		in.drain(now)
		in.mu.Unlock()
	}
}

// drain moves the decoder's rebuilt packets into the reorder buffer.
func (in *rtpInput) drain(now int64) {
	depth := in.depth()
	for {
		p, ok := in.dec.Recovered()
		if !ok {
			break
		}
		in.ro.put(p, now, depth)
	}
	st := in.dec.Stats()
	in.recDone.Store(st.Recovered)
	in.unrecovered.Store(st.Unrecoverable)
}

// depth is how far the stream may run past a missing packet before FEC can
// no longer bring it: two matrices (column FEC is spread over the next
// one) and a row, plus a recvmmsg batch of slack for the FEC and media
// sockets being read out of step.
func (in *rtpInput) depth() int64 {
	l, d := in.dec.Matrix()
	if l == 0 || d == 0 {
		l, d = in.src.cfg.Columns, in.src.cfg.Rows
	}
	m := l * d
	if m == 0 {
		// D not known yet (no column FEC seen, none configured): the
		// largest matrix the standard allows.
		m, l = fec.MaxMatrix, fec.MaxColumns
	}
	return int64(2*m + l + udpBatch)
}

// emit passes one in-order packet of the input on: to the merger of its
// track, or straight to the output.
func (in *rtpInput) emit(b []byte) {
	s := in.src
	if s.mergers != nil {
		s.mergers[in.track].Push(in.leg, b, Now())
		return
	}
	s.outs[in.track].write(b)
}

// write hands one packet to the handler, counting the sequence numbers the
// reader's line skips.
func (o *trackOut) write(b []byte) {
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	if o.started && ssrc == o.ssrc {
		if d := int(int16(seq - o.last)); d > 1 && d <= maxDropout {
			o.lost.Add(uint64(d - 1))
		}
	}
	o.started, o.last, o.ssrc = true, seq, ssrc
	o.out.Add(1)
	o.src.h.WriteRTP(o.track, b)
}

// ready makes sure the handler has had OnReady for the current session.
func (s *RTPSource) ready(now int64) bool {
	if s.live.Load() {
		return true
	}
	s.sess.Lock()
	defer s.sess.Unlock()
	if s.live.Load() {
		return true
	}
	if s.closed || now < s.retryAt {
		return false
	}
	if err := s.h.OnReady(s.cfg.SDP, s.cfg.Tracks); err != nil {
		s.retryAt = now + int64(readyRetry)
		s.log.Warn("rtp source: handler refused the stream", "err", err)
		return false
	}
	s.live.Store(true)
	s.log.Info("rtp source: receiving", "tracks", len(s.cfg.Tracks), "legs", len(s.cfg.Legs), "fec", s.cfg.FEC)
	return true
}

// tickLoop releases packets whose wait ended and reports a silent source.
func (s *RTPSource) tickLoop() {
	defer s.wg.Done()
	t := time.NewTicker(rtpSourceTick)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := Now()
		for _, in := range s.inputs {
			if in.ro != nil {
				in.mu.Lock()
				if in.ro.held > 0 {
					in.ro.release(now, in.depth())
				}
				in.mu.Unlock()
			}
		}
		for _, m := range s.mergers {
			m.Tick(now)
		}
		if s.live.Load() && now-s.lastAt.Load() > int64(s.cfg.StallTimeout) {
			s.stall()
		}
	}
}

// stall ends the session of a source that fell silent: what still waits
// goes out, and the handler hears that the source is down.
func (s *RTPSource) stall() {
	for _, in := range s.inputs {
		if in.ro != nil {
			in.mu.Lock()
			in.ro.flush()
			in.mu.Unlock()
		}
	}
	s.sess.Lock()
	defer s.sess.Unlock()
	if !s.live.Load() || s.closed {
		return
	}
	s.live.Store(false)
	s.log.Warn("rtp source: no packets; source down until they return", "after", s.cfg.StallTimeout)
	s.h.OnDisconnect(fmt.Errorf("%w for %v", ErrStalled, s.cfg.StallTimeout))
}

// Stats returns the source's counters.
func (s *RTPSource) Stats() RTPSourceStats {
	st := RTPSourceStats{
		Received: s.received.Load(), Bytes: s.bytes.Load(), Invalid: s.invalid.Load(), FEC: s.fecPkts.Load(),
	}
	for _, in := range s.inputs {
		st.Recovered += in.recDone.Load()
		st.Unrecoverable += in.unrecovered.Load()
	}
	for _, o := range s.outs {
		st.Output += o.out.Load()
		st.Lost += o.lost.Load()
	}
	if s.mergers != nil {
		st.Legs = make([]merge.LegStats, len(s.cfg.Legs))
		for _, m := range s.mergers {
			for i, l := range m.Stats().Legs {
				st.Legs[i].Add(l)
			}
		}
	}
	if l := s.lastAt.Load(); l != 0 {
		st.LastPacket = time.Now().Add(time.Duration(l - Now()))
	}
	return st
}

// Close stops receiving, ends the session (OnDisconnect with ErrClosed if
// one is running) and logs a summary. It is idempotent.
func (s *RTPSource) Close() {
	s.once.Do(func() {
		close(s.done)
		s.closeSockets()
		s.wg.Wait()
		s.sess.Lock()
		s.closed = true
		wasLive := s.live.Swap(false)
		s.sess.Unlock()
		for _, m := range s.mergers {
			m.Close()
		}
		s.releaseBuffers()
		st := s.Stats()
		args := []any{"received", st.Received, "invalid", st.Invalid, "output", st.Output, "lost", st.Lost,
			"fec", st.FEC, "recovered", st.Recovered, "unrecoverable", st.Unrecoverable, "ran", time.Since(s.startedAt).Round(time.Millisecond)}
		for i, l := range st.Legs {
			args = append(args, fmt.Sprintf("leg%d", i+1), fmt.Sprintf("received=%d first=%d dup=%d late=%d lost=%d", l.Received, l.First, l.Duplicates, l.Late, l.Lost))
		}
		s.log.Info("rtp source stopped", args...)
		if wasLive {
			s.h.OnDisconnect(ErrClosed)
		}
	})
}

func (s *RTPSource) closeSockets() {
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *RTPSource) releaseBuffers() {
	for _, in := range s.inputs {
		if in.ro != nil {
			in.mu.Lock()
			in.ro.close()
			in.mu.Unlock()
		}
	}
}
