package rtp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// udpReceiver is a loopback player: an RTP and an RTCP socket.
type udpReceiver struct {
	rtp, rtcp *net.UDPConn
}

func newUDPReceiver(t testing.TB) *udpReceiver {
	t.Helper()
	r := &udpReceiver{}
	var err error
	if r.rtp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r.rtcp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	_ = r.rtp.SetReadBuffer(4 << 20)
	t.Cleanup(func() { r.rtp.Close(); r.rtcp.Close() })
	return r
}

func (r *udpReceiver) addrs() (netip.AddrPort, netip.AddrPort) {
	return r.rtp.LocalAddr().(*net.UDPAddr).AddrPort(), r.rtcp.LocalAddr().(*net.UDPAddr).AddrPort()
}

func newPair(t testing.TB, pool *Pool) *UDPPair {
	t.Helper()
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUDPPairPorts(t *testing.T) {
	u := newPair(t, nil)
	defer u.Close()
	if u.RTPPort()%2 != 0 || u.RTCPPort() != u.RTPPort()+1 {
		t.Errorf("ports %d/%d", u.RTPPort(), u.RTCPPort())
	}
	if u.LocalAddr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("local addr %v", u.LocalAddr())
	}
	if _, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:5001"}); err == nil {
		t.Error("odd RTP port accepted")
	}
	if _, err := ListenUDP(UDPConfig{RTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(u.RTPPort()))}); err == nil {
		t.Error("port in use accepted")
	}
}

func TestUDPEndToEnd(t *testing.T) {
	pool := NewPool()
	u := newPair(t, pool)
	h := NewHub(HubConfig{Track: Track{Media: "video", ClockRate: 90000}, Pool: pool})
	const receivers, packets = 8, 500
	rs := make([]*udpReceiver, receivers)
	sinks := make([]*UDPSink, receivers)
	for i := range rs {
		rs[i] = newUDPReceiver(t)
		sinks[i] = u.NewSink(rs[i].addrs())
		h.AddSink(sinks[i])
	}
	var wg sync.WaitGroup
	seen := make([][]bool, receivers)
	srs := make([]int, receivers)
	for i, r := range rs {
		seen[i] = make([]bool, packets)
		wg.Add(2)
		go func() { // RTP: count every packet by payload index
			defer wg.Done()
			buf := make([]byte, 2048)
			for n := 0; n < packets; n++ {
				_ = r.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, from, err := r.rtp.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Errorf("receiver %d: %v after %d packets", i, err, n)
					return
				}
				if int(from.Port()) != u.RTPPort() {
					t.Errorf("RTP from port %d", from.Port())
				}
				if k != 12+40 || binary.BigEndian.Uint32(buf[8:]) != h.SSRC() {
					t.Errorf("bad packet %x", buf[:k])
					return
				}
				seen[i][binary.BigEndian.Uint32(buf[12:])] = true
			}
		}()
		go func() { // RTCP: the first SR arrives on the RTCP port from ours
			defer wg.Done()
			buf := make([]byte, 2048)
			_ = r.rtcp.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, from, err := r.rtcp.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Errorf("receiver %d RTCP: %v", i, err)
				return
			}
			if int(from.Port()) != u.RTCPPort() {
				t.Errorf("RTCP from port %d", from.Port())
			}
			pk, err := rtcp.Unmarshal(buf[:k])
			if err != nil {
				t.Errorf("RTCP: %v", err)
				return
			}
			if _, ok := pk[0].(*rtcp.SenderReport); ok {
				srs[i]++
			}
		}()
	}
	for i := range packets {
		b := mkRTP(7, uint16(i), uint32(i*3000), 40)
		binary.BigEndian.PutUint32(b[12:], uint32(i))
		if err := h.WriteRTP(b); err != nil {
			t.Fatal(err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // pace like a source, so loopback buffers keep up
		}
	}
	wg.Wait()
	for i := range rs {
		missing := 0
		for _, ok := range seen[i] {
			if !ok {
				missing++
			}
		}
		// counters move after sendmmsg returns, possibly after the receiver read
		st := sinks[i].Stats()
		for deadline := time.Now().Add(5 * time.Second); st.Packets < packets+1 && time.Now().Before(deadline); st = sinks[i].Stats() {
			time.Sleep(time.Millisecond)
		}
		if missing != 0 || srs[i] != 1 || st.Dropped != 0 || st.Errors != 0 || st.Packets != packets+1 {
			t.Errorf("receiver %d: missing %d, SRs %d, stats %+v", i, missing, srs[i], st)
		}
	}
	h.Close()
	sinks[0].Close()
	sinks[0].Close()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

func TestUDPIngressDemux(t *testing.T) {
	pool := NewPool()
	u := newPair(t, pool)
	a, b := newUDPReceiver(t), newUDPReceiver(t)
	type got struct {
		who  string
		data string
	}
	ch := make(chan got, 16)
	aRTP, aRTCP := a.addrs()
	bRTP, _ := b.addrs()
	u.HandleRTP(aRTP, func(p []byte) { ch <- got{"a", string(p)} })
	u.HandleRTP(bRTP, func(p []byte) { ch <- got{"b", string(p)} })
	u.HandleRTCP(aRTCP, func(p []byte) { ch <- got{"a-rtcp", string(p)} })
	rtpDst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.RTPPort()}
	rtcpDst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.RTCPPort()}
	send := func(c *net.UDPConn, dst *net.UDPAddr, s string) {
		if _, err := c.WriteToUDP([]byte(s), dst); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want got) {
		t.Helper()
		select {
		case g := <-ch:
			if g != want {
				t.Fatalf("got %+v, want %+v", g, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timeout waiting for %+v", want)
		}
	}
	send(a.rtp, rtpDst, "from-a")
	expect(got{"a", "from-a"})
	send(b.rtp, rtpDst, "from-b")
	expect(got{"b", "from-b"})
	send(a.rtcp, rtcpDst, "rr-a")
	expect(got{"a-rtcp", "rr-a"})
	send(b.rtcp, rtcpDst, "unknown") // nobody registered: dropped and counted
	u.HandleRTP(bRTP, nil)
	send(b.rtp, rtpDst, "after-unregister")
	send(a.rtp, rtpDst, "again")
	expect(got{"a", "again"})
	deadline := time.Now().Add(5 * time.Second)
	for u.unknown.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := u.unknown.Load(); n != 2 {
		t.Errorf("unknown %d, want 2", n)
	}
	// a burst is read in recvmmsg batches and every datagram lands once
	var burst sync.WaitGroup
	burst.Add(200)
	u.HandleRTP(bRTP, func(p []byte) { burst.Done() })
	for range 200 {
		send(b.rtp, rtpDst, "x")
	}
	burst.Wait()
	u.HandleRTP(aRTP, nil)
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

func TestUDPSinkQueueFullAndClose(t *testing.T) {
	pool := NewPool()
	u, err := ListenUDP(UDPConfig{RTPAddr: "127.0.0.1:0", Pool: pool, QueueLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := newUDPReceiver(t)
	s := u.NewSink(r.addrs())
	// Packets paced an hour ahead are never due, so the egress worker
	// leaves them queued and the 4-packet queue stays full.
	for range 10 {
		p := pool.Get(20)
		p.depart = Now() + int64(time.Hour)
		s.DeliverRTP(p)
	}
	if st := s.Stats(); st.Dropped != 6 || st.Packets != 0 {
		t.Errorf("stats %+v: want 6 drops from a 4-packet queue", st)
	}
	if n := pool.inUseCount(); n < 4 {
		t.Errorf("in use %d, want the 4 queued packets", n)
	}
	if err := u.Close(); err != nil { // closes s too, releasing whatever is queued
		t.Fatal(err)
	}
	s.DeliverRTP(pool.Get(20)) // after close: dropped, released
	if s.Stats().Dropped == 0 {
		t.Error("no drop counted after close")
	}
	late := u.NewSink(r.addrs())
	late.DeliverRTCP(pool.Get(1))
	late.Close()
	checkNoLeak(t, pool)
}
