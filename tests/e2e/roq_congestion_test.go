package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp/keyframe"
	"github.com/meshgw/meshgw/rtp/roq"
)

// shaper is a bottleneck between one QUIC client and the gateway: client→server passes at once,
// server→client leaves at rate bytes per second through a drop-tail queue of limit datagrams,
// as a slow access link does. (The kernel here has no netem; tbf needs a namespace.)
type shaper struct {
	front, back *net.UDPConn
	client      atomic.Pointer[net.UDPAddr]
	q           chan []byte
	rate        float64
	tailDrops   atomic.Uint64
	wg          sync.WaitGroup
}

func startShaper(t *testing.T, server netip.AddrPort, rate float64, limit int) *shaper {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	s := &shaper{front: front, back: back, q: make(chan []byte, limit), rate: rate}
	s.wg.Go(func() { // client → server
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.client.Store(from)
			_, _ = back.Write(buf[:n])
		}
	})
	s.wg.Go(func() { // server → queue
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				close(s.q)
				return
			}
			select {
			case s.q <- append([]byte(nil), buf[:n]...):
			default:
				s.tailDrops.Add(1)
			}
		}
	})
	s.wg.Go(func() { // queue → client at rate
		next := time.Now()
		for b := range s.q {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = time.Now().Add(time.Duration(float64(len(b)+28) / s.rate * float64(time.Second)))
			if c := s.client.Load(); c != nil {
				_, _ = front.WriteToUDP(b, c)
			}
		}
	})
	t.Cleanup(func() {
		front.Close()
		back.Close()
		s.wg.Wait()
	})
	return s
}

func (s *shaper) addr() string { return s.front.LocalAddr().String() }

// gapCheck records an H.264 track's packets as a client gets them. Frames come on streams of
// their own, read concurrently, so packets may arrive out of order: the gaps are found in the
// sorted sequence numbers afterwards.
type gapCheck struct {
	c       *roq.Client
	mu      sync.Mutex
	have    bool
	max     int64          // highest extended sequence number seen
	start   map[int64]bool // extended sequence number -> the packet starts a keyframe
	packets int
}

func (g *gapCheck) HandlePacket(flow uint64, pkt []byte) {
	ref, ok := g.c.Flow(flow)
	if !ok || ref.RTCP || ref.Track != 0 || len(pkt) < 12 {
		return
	}
	seq := binary.BigEndian.Uint16(pkt[2:4])
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.have {
		g.max, g.have, g.start = int64(seq), true, map[int64]bool{}
	}
	ext := g.max + int64(int16(seq-uint16(g.max)))
	g.max = max(g.max, ext)
	g.start[ext] = keyframe.IsStart(keyframe.H264, pkt)
	g.packets++
}

// gaps walks the received sequence numbers in order: the gaps, the packets they miss, and how
// many gaps resumed elsewhere than at a keyframe start.
func (g *gapCheck) gaps() (gaps, missing, badStart int) {
	seqs := make([]int64, 0, len(g.start))
	for s := range g.start {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if d := seqs[i] - seqs[i-1] - 1; d > 0 {
			gaps++
			missing += int(d)
			if !g.start[seqs[i]] {
				badStart++
			}
		}
	}
	return gaps, missing, badStart
}

// TestRoQCongestionDropsWholeFrames: a RoQ reader in stream mode behind a link slower than the
// demo stream gets fewer frames, never broken ones: each gap it sees ends at a keyframe start
// (the gateway dropped whole frames up to the next keyframe), and every packet missing from its
// line is one the gateway counted as dropped (streams retransmit, so nothing else is lost).
func TestRoQCongestionDropsWholeFrames(t *testing.T) {
	cert, key := roqCert(t)
	g := startGateway(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nquic:\n  listen: 127.0.0.1:0\n  cert: %s\n  key: %s\n  queue: 32\nroutes:\n  demo:\n    source: demo\n", cert, key))
	server, err := netip.ParseAddrPort(g.RoQ.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sh := startShaper(t, server, 12_000, 16) // 96 kbit/s for a stream of about 200 kbit/s
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c, err := roq.Dial(ctx, "quic://"+sh.addr()+"/demo", roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}, Mode: roq.Stream})
	if err != nil {
		t.Fatal(err)
	}
	chk := &gapCheck{c: c}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx, chk) }()
	time.Sleep(10 * time.Second)
	st := g.RoQ.Stats()
	rcancel()
	<-done
	c.Close()
	if len(st) != 1 {
		t.Fatalf("sessions: %+v", st)
	}
	v := st[0].Tracks[0]
	chk.mu.Lock()
	defer chk.mu.Unlock()
	gaps, missing, badStart := chk.gaps()
	t.Logf("client: %d video packets, %d gaps, %d missing; gateway: %d sent, %d packets and %d frames dropped; link tail drops %d; srtt %s, cwnd %d, quic lost %d",
		chk.packets, gaps, missing, v.Packets, v.Dropped, v.FramesDropped, sh.tailDrops.Load(), st[0].SmoothedRTT, st[0].CongestionWindow, st[0].PacketsLost)
	if v.FramesDropped == 0 || gaps == 0 {
		t.Fatalf("the link was not a bottleneck: %d frames dropped, %d gaps", v.FramesDropped, gaps)
	}
	if badStart != 0 {
		t.Errorf("%d of %d gaps resumed elsewhere than at a keyframe", badStart, gaps)
	}
	if uint64(missing) > v.Dropped {
		t.Errorf("the client misses %d packets but the gateway dropped only %d", missing, v.Dropped)
	}
	if chk.packets < 50 {
		t.Errorf("only %d video packets got through", chk.packets)
	}
}
