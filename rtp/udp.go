package rtp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/meshgw/meshgw/rtp/ring"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// UDPConfig configures a UDPPair.
type UDPConfig struct {
	// RTPAddr is "host:port" for the RTP socket; RTCP is bound to port+1.
	// Port 0 picks a free even/odd pair. An empty or IPv4 host gives IPv4
	// sockets, an IPv6 host ("[::]:0") IPv6 ones.
	RTPAddr string
	// QueueLen bounds each sink's queue (default 4096 packets: a keyframe
	// of a 50 Mbit/s stream is over 1000). Rings start small and grow
	// toward it only when a burst needs the room.
	QueueLen           int
	MulticastTTL       int    // for multicast destinations (default 1)
	MulticastInterface string // optional interface name for multicast egress
	Logger             *slog.Logger
	// Pool provides the ingress read buffers; nil gives the pair its own.
	Pool *Pool
	// EgressWorkers is the number of goroutines sending to readers, each
	// owning a share of the sinks (default: GOMAXPROCS, at most 8). One core
	// of sendmmsg tops out near 300k datagrams/s, less than 1000 readers of
	// a 4 Mbit/s stream need.
	EgressWorkers int
	// NoGSO turns UDP generic segmentation offload off. It is on by default
	// and switches itself off, with a log line, where the kernel or the
	// egress device refuses it.
	NoGSO bool
}

const (
	defaultUDPQueueLen = 4096
	// initialUDPRing is a sink's first ring: an idle or low-rate reader keeps 8 slots (128
	// bytes), and a reader that gets bursts grows its ring once, by doubling, to what they need.
	initialUDPRing   = 8
	udpSocketBuffer  = 4 << 20 // asked for; the kernel caps it at [rw]mem_max
	udpBatch         = 64      // messages per sendmmsg/recvmmsg
	udpBurst         = 32      // packets taken from one sink per round-robin turn
	maxEgressWorkers = 8
)

// batchWriter is the part of ipv4.PacketConn / ipv6.PacketConn we use:
// both take []ipv4.Message (an alias of the same x/net type) and call
// sendmmsg on Linux, one message per call elsewhere.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// UDPPair is a node's shared RTP/RTCP socket pair (RTP port even, RTCP port
// odd). All UDP readers of the node are sent to from it and all UDP
// publishers (and readers' RTCP) arrive on it, demultiplexed by remote
// address.
//
// Goroutines: one egress goroutine that drains every sink's queue
// round-robin in sendmmsg batches (rather than one goroutine per reader),
// and one reader per socket that reads recvmmsg batches. Close ends them.
type UDPPair struct {
	cfg      UDPConfig
	log      *slog.Logger
	pool     *Pool
	rtpConn  *net.UDPConn
	rtcpConn *net.UDPConn
	rtpW     batchWriter
	rtcpW    batchWriter
	laddr    netip.Addr
	rtpPort  int
	rtcpPort int

	workers []*egressWorker
	gso     atomic.Bool // sending runs of equal-size packets as one GSO datagram

	sinksMu sync.Mutex
	sinks   map[*UDPSink]struct{} // open sinks, closed by Close
	closed  bool

	rtpDemux, rtcpDemux demux

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// ingress counters (unexported: tests and future metrics)
	unknown, truncated atomic.Uint64
}

// ListenUDP opens the socket pair and starts its goroutines.
func ListenUDP(cfg UDPConfig) (*UDPPair, error) {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = defaultUDPQueueLen
	}
	if cfg.MulticastTTL <= 0 {
		cfg.MulticastTTL = 1
	}
	u := &UDPPair{
		cfg:   cfg,
		log:   cfg.Logger,
		pool:  cfg.Pool,
		sinks: make(map[*UDPSink]struct{}),
		done:  make(chan struct{}),
	}
	if u.log == nil {
		u.log = slog.Default()
	}
	if u.pool == nil {
		u.pool = NewPool()
	}
	ap, err := parseListenAddr(cfg.RTPAddr)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	u.rtpConn, u.rtcpConn, err = listenPair(network, ap)
	if err != nil {
		return nil, err
	}
	u.laddr = ap.Addr()
	u.rtpPort = u.rtpConn.LocalAddr().(*net.UDPAddr).Port
	u.rtcpPort = u.rtcpConn.LocalAddr().(*net.UDPAddr).Port
	u.log = u.log.With("rtp_port", u.rtpPort)
	if err := u.setupSockets(network); err != nil {
		u.rtpConn.Close()
		u.rtcpConn.Close()
		return nil, err
	}
	u.rtpDemux.init()
	u.rtcpDemux.init()
	u.gso.Store(!cfg.NoGSO && gsoAvailable)
	nw := cfg.EgressWorkers
	if nw <= 0 {
		nw = min(runtime.GOMAXPROCS(0), maxEgressWorkers)
	}
	for range nw {
		u.workers = append(u.workers, newEgressWorker(u))
	}
	u.wg.Add(2 + nw)
	for _, w := range u.workers {
		go w.run()
	}
	go u.readLoop(u.rtpConn, &u.rtpDemux)
	go u.readLoop(u.rtcpConn, &u.rtcpDemux)
	return u, nil
}

func parseListenAddr(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("rtp: UDP address %q: %w", s, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("rtp: UDP address %q: %w", s, err)
	}
	if ap.Port()%2 != 0 {
		return netip.AddrPort{}, fmt.Errorf("rtp: UDP address %q: RTP port must be even", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// listenPair binds port p (even) and p+1. For port 0 it lets the kernel pick
// one port and tries its even/odd partner, a few times over.
func listenPair(network string, ap netip.AddrPort) (rtp, rtcp *net.UDPConn, err error) {
	listen := func(port int) (*net.UDPConn, error) {
		return net.ListenUDP(network, &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: port, Zone: ap.Addr().Zone()})
	}
	if ap.Port() != 0 {
		if rtp, err = listen(int(ap.Port())); err != nil {
			return nil, nil, fmt.Errorf("rtp: listen RTP: %w", err)
		}
		if rtcp, err = listen(int(ap.Port()) + 1); err != nil {
			rtp.Close()
			return nil, nil, fmt.Errorf("rtp: listen RTCP: %w", err)
		}
		return rtp, rtcp, nil
	}
	for range 64 {
		c, err := listen(0)
		if err != nil {
			return nil, nil, fmt.Errorf("rtp: listen: %w", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		if p%2 == 0 {
			if p == 65534 {
				c.Close()
				continue
			}
			if other, err := listen(p + 1); err == nil {
				return c, other, nil
			}
		} else if other, err := listen(p - 1); err == nil {
			return other, c, nil
		}
		c.Close()
	}
	return nil, nil, errors.New("rtp: listen: no free even/odd UDP port pair found")
}

// setupSockets sizes the socket buffers (bursts of a fan-out to many readers
// leave the host at once) and sets the multicast options, which apply to
// every multicast destination of the pair.
func (u *UDPPair) setupSockets(network string) error {
	var ifi *net.Interface
	if u.cfg.MulticastInterface != "" {
		var err error
		if ifi, err = net.InterfaceByName(u.cfg.MulticastInterface); err != nil {
			return fmt.Errorf("rtp: multicast interface: %w", err)
		}
	}
	for i, c := range []*net.UDPConn{u.rtpConn, u.rtcpConn} {
		if err := c.SetWriteBuffer(udpSocketBuffer); err != nil {
			u.log.Debug("rtp: SO_SNDBUF not set", "err", err)
		}
		if err := c.SetReadBuffer(udpSocketBuffer); err != nil {
			u.log.Debug("rtp: SO_RCVBUF not set", "err", err)
		}
		forceBuffers(c, udpSocketBuffer)
		var w batchWriter
		if network == "udp4" {
			pc := ipv4.NewPacketConn(c)
			if err := pc.SetMulticastTTL(u.cfg.MulticastTTL); err != nil {
				return fmt.Errorf("rtp: multicast TTL: %w", err)
			}
			if ifi != nil {
				if err := pc.SetMulticastInterface(ifi); err != nil {
					return fmt.Errorf("rtp: multicast interface %s: %w", ifi.Name, err)
				}
			}
			w = pc
		} else {
			pc := ipv6.NewPacketConn(c)
			if err := pc.SetMulticastHopLimit(u.cfg.MulticastTTL); err != nil {
				return fmt.Errorf("rtp: multicast hop limit: %w", err)
			}
			if ifi != nil {
				if err := pc.SetMulticastInterface(ifi); err != nil {
					return fmt.Errorf("rtp: multicast interface %s: %w", ifi.Name, err)
				}
			}
			w = pc
		}
		if i == 0 {
			u.rtpW = w
		} else {
			u.rtcpW = w
		}
	}
	return nil
}

// RTPPort returns the RTP (even) port.
func (u *UDPPair) RTPPort() int { return u.rtpPort }

// RTCPPort returns the RTCP (odd) port.
func (u *UDPPair) RTCPPort() int { return u.rtcpPort }

// LocalAddr returns the address the pair is bound to (possibly unspecified).
func (u *UDPPair) LocalAddr() netip.Addr { return u.laddr }

// NewSink returns a sink that sends RTP to rtpDst and RTCP to rtcpDst from
// the pair's RTP and RTCP ports. Destinations may be unicast or multicast
// groups. A sink made after Close is closed from the start.
func (u *UDPPair) NewSink(rtpDst, rtcpDst netip.AddrPort) *UDPSink {
	return u.newSink(rtpDst, rtcpDst, nil)
}

func (u *UDPPair) newSink(rtpDst, rtcpDst netip.AddrPort, p *srtp.Protector) *UDPSink {
	s := &UDPSink{
		pair:    u,
		rtpDst:  udpAddr(rtpDst),
		rtcpDst: udpAddr(rtcpDst),
		q:       ring.New[udpItem](initialUDPRing, u.cfg.QueueLen),
		srtp:    p,
	}
	u.sinksMu.Lock()
	defer u.sinksMu.Unlock()
	if u.closed {
		s.closed = true
		return s
	}
	u.sinks[s] = struct{}{}
	// The least loaded worker takes the sink, so readers of one stream
	// spread over the cores and a batch still mixes many readers.
	w := u.workers[0]
	for _, o := range u.workers[1:] {
		if o.count < w.count {
			w = o
		}
	}
	s.w = w
	w.add(s)
	return s
}

// NewSRTPSink is NewSink for a reader that gets SRTP and SRTCP protected with
// k (AES_CM_128_HMAC_SHA1_80). The sink's egress worker protects each packet
// into a buffer of its own right before sending, so the cost spreads over the
// workers' cores like the sending itself.
func (u *UDPPair) NewSRTPSink(rtpDst, rtcpDst netip.AddrPort, k srtp.Key) (*UDPSink, error) {
	p, err := srtp.NewProtector(k)
	if err != nil {
		return nil, fmt.Errorf("rtp: srtp sink: %w", err)
	}
	return u.newSink(rtpDst, rtcpDst, p), nil
}

// NewSRTPSinkResuming is NewSRTPSink for a reader that another sender served under the same key
// until now (its node died, or it moves back): the sink goes on from that sender's state, so
// the reader's SRTP context follows without a rollover mistake and no index is used twice.
func (u *UDPPair) NewSRTPSinkResuming(rtpDst, rtcpDst netip.AddrPort, k srtp.Key, st srtp.SendState) (*UDPSink, error) {
	p, err := srtp.NewProtector(k)
	if err != nil {
		return nil, fmt.Errorf("rtp: srtp sink: %w", err)
	}
	p.Resume(st)
	return u.newSink(rtpDst, rtcpDst, p), nil
}

// udpAddr converts once per sink, so the batch can reference a ready
// net.Addr with no conversion (and no allocation) per packet.
func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	a := ap.Addr().Unmap()
	return &net.UDPAddr{IP: a.AsSlice(), Port: int(ap.Port()), Zone: a.Zone()}
}

// Close ends the pair's goroutines, closes its sockets and closes every sink
// made by NewSink (releasing their queued packets). It is idempotent.
func (u *UDPPair) Close() error {
	var err error
	u.closeOnce.Do(func() {
		close(u.done)
		err = errors.Join(u.rtpConn.Close(), u.rtcpConn.Close())
		u.wg.Wait()
		u.sinksMu.Lock()
		u.closed = true
		sinks := u.sinks
		u.sinks = nil
		u.sinksMu.Unlock()
		for s := range sinks {
			s.close()
		}
	})
	if err != nil {
		return fmt.Errorf("rtp: close UDP pair: %w", err)
	}
	return nil
}

// demux maps remote addresses to ingress handlers. Each shard's map is
// copied on every (rare) change and read through an atomic pointer, so the
// read loop takes no lock and allocates nothing per packet.
type demux struct {
	shards [demuxShards]demuxShard
}

// demuxShards splits a demux's map so that registering one remote copies a 64th of it: every
// UDP reader registers its RTCP address, and copying the whole map for each made setting up N
// readers cost O(N²) time and garbage.
const demuxShards = 64

// demuxShard is a copy-on-write map: the read goroutine looks up without a lock, set replaces it.
type demuxShard struct {
	mu sync.Mutex
	m  atomic.Pointer[map[netip.AddrPort]func([]byte)]
}

func (d *demux) init() {
	for i := range d.shards {
		m := map[netip.AddrPort]func([]byte){}
		d.shards[i].m.Store(&m)
	}
}

// shard picks remote's shard from its port and the address's last byte, the parts that differ
// between clients.
func (d *demux) shard(remote netip.AddrPort) *demuxShard {
	a := remote.Addr().As16()
	return &d.shards[(remote.Port()^uint16(a[15]))%demuxShards]
}

func (d *demux) set(remote netip.AddrPort, fn func([]byte)) {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	sh := d.shard(remote)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := *sh.m.Load()
	next := make(map[netip.AddrPort]func([]byte), len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if fn == nil {
		delete(next, remote)
	} else {
		next[remote] = fn
	}
	sh.m.Store(&next)
}

func (d *demux) lookup(remote netip.AddrPort) func([]byte) {
	return (*d.shard(remote).m.Load())[remote]
}

// HandleRTP registers fn for RTP datagrams from remote (fn=nil
// unregisters). fn runs on the read goroutine, must not block and must copy
// what it keeps: the buffer is reused for the next read.
func (u *UDPPair) HandleRTP(remote netip.AddrPort, fn func(b []byte)) { u.rtpDemux.set(remote, fn) }

// HandleRTCP registers fn for RTCP datagrams from remote, like HandleRTP.
func (u *UDPPair) HandleRTCP(remote netip.AddrPort, fn func(b []byte)) {
	u.rtcpDemux.set(remote, fn)
}

// dispatch hands one received datagram to its handler.
func (u *UDPPair) dispatch(d *demux, from netip.AddrPort, b []byte, truncated bool) {
	if truncated {
		u.truncated.Add(1)
		return
	}
	fn := d.lookup(from)
	if fn == nil {
		u.unknown.Add(1)
		return
	}
	fn(b)
}
