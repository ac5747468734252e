package rtp

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/meshgw/meshgw/rtp/srtp"
)

// BenchmarkHubFanout: one packet through validation, rewrite and fan-out to
// 100 sinks that release at once. One op = one packet in.
func BenchmarkHubFanout(b *testing.B) {
	pool := NewPool()
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool})
	for range 100 {
		h.AddSink(&releaseSinkP{})
	}
	pkt := mkRTP(1, 0, 0, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if err := h.WriteRTP(pkt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	h.Close()
	checkNoLeak(b, pool)
}

// releaseSinkP is a distinct pointer per sink (releaseSink{} values compare
// equal, and the hub ignores duplicate sinks).
type releaseSinkP struct{ _ byte }

func (*releaseSinkP) DeliverRTP(p *Packet)  { p.Release() }
func (*releaseSinkP) DeliverRTCP(p *Packet) { p.Release() }

// BenchmarkUDPFanout: hub → N UDPSinks → sendmmsg → N loopback receivers.
// One op = one packet in = N datagrams out. The source waits whenever a
// queue is half full, so the number measures sending, not dropping. On
// loopback the sender's syscall also runs the receivers' delivery path.
func BenchmarkUDPFanout(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, gso := range []bool{true, false} {
			name := strconv.Itoa(n)
			if !gso {
				name += "/nogso"
			}
			b.Run(name, func(b *testing.B) { benchUDPFanout(b, n, !gso, false) })
		}
	}
}

// benchUDPFanout with secure gives every UDP sink an SRTP key of its own,
// as for SRTP readers (protected on the egress workers).
func benchUDPFanout(b *testing.B, n int, noGSO, secure bool) {
	{
		{
			pool := NewPool()
			u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 512, NoGSO: noGSO})
			if err != nil {
				b.Fatal(err)
			}
			h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SRInterval: time.Hour})
			sinks := make([]*UDPSink, n)
			for i := range sinks {
				r := newUDPReceiver(b)
				go drainUDP(r)
				if secure {
					k, err := srtp.NewKey()
					if err != nil {
						b.Fatal(err)
					}
					rtpDst, rtcpDst := r.addrs()
					if sinks[i], err = u.NewSRTPSink(rtpDst, rtcpDst, k); err != nil {
						b.Fatal(err)
					}
				} else {
					sinks[i] = u.NewSink(r.addrs())
				}
				h.AddSink(sinks[i])
			}
			pkt := mkRTP(1, 0, 0, 1200)
			// Warm up: queues grow to their working size once, which is
			// not a per-packet cost.
			sent := 0
			for sent < 1024 {
				binary.BigEndian.PutUint16(pkt[2:], uint16(sent))
				if err := h.WriteRTP(pkt); err != nil {
					b.Fatal(err)
				}
				if sent++; sent%32 == 0 {
					waitUDPDrained(sinks, uint64(sent)+1-256)
				}
			}
			waitUDPDrained(sinks, uint64(sent)+1)
			b.SetBytes(int64(len(pkt) * n))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for i := sent; b.Loop(); i++ {
				binary.BigEndian.PutUint16(pkt[2:], uint16(i))
				if err := h.WriteRTP(pkt); err != nil {
					b.Fatal(err)
				}
				// Keep every queue under half full so the pipeline stays busy
				// without drops (+1: the first SR).
				if sent++; sent%32 == 0 {
					waitUDPDrained(sinks, uint64(sent)+1-256)
				}
			}
			waitUDPDrained(sinks, uint64(sent)+1)
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/datagram")
			// CPU of the whole process (hub, egress workers, the kernel's loopback delivery and the
			// receivers) per datagram: steadier than wall time on a shared machine
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/datagram")
			var drops, errs uint64
			for _, s := range sinks {
				st := s.Stats()
				drops += st.Dropped
				errs += st.Errors
			}
			b.ReportMetric(float64(drops), "drops")
			b.ReportMetric(float64(errs), "errors")
			h.Close()
			if err := u.Close(); err != nil {
				b.Fatal(err)
			}
			checkNoLeak(b, pool)
		}
	}
}

// BenchmarkFloorSendmmsg is the floor the fan-out is measured against: the
// same packet to the same number of loopback receivers with nothing but
// sendmmsg (x/net WriteBatch, 64 messages a call, each message to a
// different receiver), one datagram per packet per receiver. Compare its
// ns/datagram with BenchmarkUDPFanout's in the same run.
func BenchmarkFloorSendmmsg(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			_ = c.SetWriteBuffer(udpSocketBuffer)
			pc := ipv4.NewPacketConn(c)
			pkt := mkRTP(1, 0, 0, 1200)
			msgs := make([]ipv4.Message, n)
			for i := range msgs {
				r := newUDPReceiver(b)
				go drainUDP(r)
				rtpDst, _ := r.addrs()
				msgs[i] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: udpAddr(rtpDst)}
			}
			b.SetBytes(int64(len(pkt) * n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				binary.BigEndian.PutUint16(pkt[2:], uint16(i))
				for j := 0; j < n; {
					k, err := pc.WriteBatch(msgs[j:min(n, j+udpBatch)], 0)
					if err != nil {
						b.Fatal(err)
					}
					j += k
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/datagram")
		})
	}
}

func drainUDP(r *udpReceiver) {
	buf := make([]byte, 2048)
	for {
		if _, err := r.rtp.Read(buf); err != nil {
			return
		}
	}
}

// waitUDPDrained spins (without allocating) until every sink has handled
// want packets one way or another.
func waitUDPDrained(sinks []*UDPSink, want uint64) {
	if int64(want) <= 0 {
		return
	}
	for _, s := range sinks {
		for {
			st := s.Stats()
			if st.Packets+st.Dropped+st.Errors >= want {
				break
			}
			runtime.Gosched()
		}
	}
}

// BenchmarkInterleaved: hub → InterleavedWriter → loopback TCP → a reader
// that drains. One op = one packet in = one $ frame out.
func BenchmarkInterleaved(b *testing.B) {
	pool := NewPool()
	server, client := tcpPair(b)
	w := NewInterleavedWriter(server, InterleavedConfig{QueueLen: 1024})
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SRInterval: time.Hour})
	h.AddSink(w.Sink(0))
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReaderSize(client, 1<<16)) }()
	pkt := mkRTP(1, 0, 0, 1200)
	b.SetBytes(int64(len(pkt) + 4))
	b.ReportAllocs()
	b.ResetTimer()
	sent := uint64(0)
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if err := h.WriteRTP(pkt); err != nil {
			b.Fatal(err)
		}
		if sent++; sent%256 == 0 {
			for st := w.Stats(); st.Packets+st.Dropped+st.Errors < sent+1; st = w.Stats() {
				runtime.Gosched()
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(w.Stats().Dropped), "drops")
	h.Close()
	w.Close()
	checkNoLeak(b, pool)
}

// BenchmarkRelay is the relay path of a node: RTP in over UDP (recvmmsg,
// demultiplexed by source address) → hub → one UDP destination, as a stream
// crossing to another node does. One op = one packet in and out. Runs of
// packets to the one destination leave as GSO datagrams.
func BenchmarkRelay(b *testing.B) {
	pool := NewPool()
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 1024})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SRInterval: time.Hour})
	r := newUDPReceiver(b)
	go drainUDP(r)
	sink := u.NewSink(r.addrs())
	h.AddSink(sink)
	src, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.RTPPort()})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	_ = src.SetWriteBuffer(4 << 20)
	var in atomic.Uint64
	u.HandleRTP(src.LocalAddr().(*net.UDPAddr).AddrPort(), func(p []byte) {
		if h.WriteRTP(p) == nil {
			in.Add(1)
		}
	})
	pkt := mkRTP(1, 0, 0, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	sent := uint64(0)
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if _, err := src.Write(pkt); err != nil {
			b.Fatal(err)
		}
		// stay under the sockets' and the queue's capacity: measure
		// relaying, not loss
		if sent++; sent%64 == 0 {
			for in.Load()+128 < sent {
				runtime.Gosched()
			}
			waitUDPDrained([]*UDPSink{sink}, in.Load()-256)
		}
	}
	for deadline := time.Now().Add(time.Second); in.Load() < sent && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	b.StopTimer()
	lost := sent - in.Load()
	b.ReportMetric(float64(lost), "lost-in")
	b.ReportMetric(float64(sink.Stats().Dropped), "drops")
	u.HandleRTP(src.LocalAddr().(*net.UDPAddr).AddrPort(), nil)
	h.Close()
	if err := u.Close(); err != nil {
		b.Fatal(err)
	}
	checkNoLeak(b, pool)
}
