package rtp

import (
	"bufio"
	"encoding/binary"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"
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
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			pool := NewPool()
			u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 512})
			if err != nil {
				b.Fatal(err)
			}
			h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SRInterval: time.Hour})
			sinks := make([]*UDPSink, n)
			for i := range sinks {
				r := newUDPReceiver(b)
				go drainUDP(r)
				sinks[i] = u.NewSink(r.addrs())
				h.AddSink(sinks[i])
			}
			pkt := mkRTP(1, 0, 0, 1200)
			b.SetBytes(int64(len(pkt) * n))
			b.ReportAllocs()
			b.ResetTimer()
			sent := 0
			for i := 0; b.Loop(); i++ {
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent*n), "ns/datagram")
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
