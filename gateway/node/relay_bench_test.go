package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// releaseSink counts and releases what a hub gives it.
type releaseSink struct{ n int }

func (s *releaseSink) DeliverRTP(p *rtp.Packet)  { s.n++; p.Release() }
func (s *releaseSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

// FuzzRelayDemux feeds arbitrary datagrams into the peer handlers a relay's upstream addresses
// get (RTP and RTCP, on both pairs), with two relayed tracks, a live-live relay whose merge sees
// every datagram on both legs, a reader's liveness and no publisher: whatever another host
// sends, the read goroutines must not panic.
func FuzzRelayDemux(f *testing.F) {
	f.Add(false, mkRTP(1, 7, 9000))
	f.Add(false, mkRTP(3, 7, 9000))
	f.Add(false, mkRTP(3, 8, 9000))
	f.Add(false, []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add(true, mkSR(2, 1<<63, 1234))
	f.Add(true, mkSR(9, 0, 0))
	f.Add(true, []byte{0x80, 201, 0, 1, 0, 0, 0, 1})                   // RR claiming one word too many
	f.Add(true, []byte{0x81, 200, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}) // SR with a report count, short
	f.Add(true, []byte{})
	hubs := []*rtp.Hub{
		rtp.NewHub(rtp.HubConfig{Track: video[0], SSRC: 1, Transparent: true}),
		rtp.NewHub(rtp.HubConfig{Track: video[0], SSRC: 2, Transparent: true}),
	}
	sink := &releaseSink{}
	for _, h := range hubs {
		h.AddSink(sink)
	}
	f.Cleanup(func() {
		for _, h := range hubs {
			h.Close()
		}
	})
	relay := &flow{spec: Flow{Spec: RelaySource{SSRCs: []uint32{1, 2}}}, stream: &nodeStream{hubs: hubs}}
	relay.setRelayChains(relay.spec.Spec.(RelaySource), nil)
	// and a live-live relay (SSRC 3) whose two legs come from the same addresses on both pairs
	llHub := rtp.NewHub(rtp.HubConfig{Track: video[0], SSRC: 3, Transparent: true})
	llHub.AddSink(sink)
	ll := &flow{spec: Flow{Spec: RelaySource{SSRCs: []uint32{3}, RTP2: netip.MustParseAddrPort("127.0.0.2:1"), Skew: merge.ClassA}}, stream: &nodeStream{hubs: []*rtp.Hub{llHub}}}
	ll.setRelayChains(ll.spec.Spec.(RelaySource), nil)
	f.Cleanup(func() { ll.mg[0].Close(); llHub.Close() })
	reader := &flow{spec: Flow{Spec: UDPSink{}}}
	var rtpPeers, rtcpPeers [2]*peer
	for i, second := range []bool{false, true} {
		rtpPeers[i] = newPeer(peerKey{second: second})
		rtcpPeers[i] = newPeer(peerKey{rtcp: true, second: second})
		for _, m := range []*flow{relay, ll} {
			rtpPeers[i].members[m] = struct{}{}
			rtcpPeers[i].members[m] = struct{}{}
		}
		rtcpPeers[i].members[reader] = struct{}{}
		rtpPeers[i].publish()
		rtcpPeers[i].publish()
	}
	f.Fuzz(func(t *testing.T, isRTCP bool, b []byte) {
		// the same datagram on both legs, as a live-live relay's two copies
		for i := range rtpPeers {
			if isRTCP {
				rtcpPeers[i].handleRTCP(bytes.Clone(b))
			} else {
				rtpPeers[i].handleRTP(bytes.Clone(b))
			}
		}
	})
}

// BenchmarkRelayIngress is a relayed stream's path through the receiving node: a datagram from
// the upstream node's address (recvmmsg), the relay's SSRC demux, the transparent hub, one UDP
// reader. One op = one packet in and out. "srtp" is the encrypted relay: the datagrams are SRTP
// (protected by the benchmark as the upstream node would) and the node authenticates and
// decrypts each before its hub.
func BenchmarkRelayIngress(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchRelayIngress(b, false, false) })
	b.Run("srtp", func(b *testing.B) { benchRelayIngress(b, false, true) })
}

// benchRelayIngress is BenchmarkRelayIngress, with NACK repair on the relays when nack is set and
// SRTP when secure is.
func benchRelayIngress(b *testing.B, nack, secure bool) {
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0", QueueLen: 1024}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	dst, _ := pairAddrs(n)
	src, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	_ = src.SetWriteBuffer(4 << 20)
	up := src.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx := context.Background()
	var key []byte
	var prot *srtp.Protector
	if secure {
		k, err := srtp.NewKey()
		if err != nil {
			b.Fatal(err)
		}
		key = k[:]
		if prot, err = srtp.NewProtector(k); err != nil {
			b.Fatal(err)
		}
	}
	// a second relay from the same address, so the demux has a choice to make
	for i, ssrc := range []uint32{0x5eed, 0xbeef} {
		id, stream := "rel"+string(rune('a'+i)), "s"+string(rune('a'+i))
		if _, err := n.Apply(ctx, Flow{ID: id, Stream: stream, Spec: RelaySource{Tracks: video, SSRCs: []uint32{ssrc}, RTP: up, RTCP: netip.AddrPortFrom(up.Addr(), up.Port()+1), NACK: nack, SRTPKey: key}}); err != nil {
			b.Fatal(err)
		}
	}
	rd, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = rd.SetReadBuffer(4 << 20)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 2048)
		for {
			if _, err := rd.Read(buf); err != nil {
				return
			}
		}
	}()
	defer func() { rd.Close(); <-drained }()
	rdAddr := rd.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := n.Apply(ctx, Flow{ID: "rd", Stream: "sa", Spec: UDPSink{RTP: rdAddr, RTCP: netip.AddrPortFrom(rdAddr.Addr(), 9)}}); err != nil {
		b.Fatal(err)
	}
	hub, err := n.Hub("sa", 0)
	if err != nil {
		b.Fatal(err)
	}
	pkt := make([]byte, 12+1200)
	pkt[0], pkt[1] = 0x80, 96
	binary.BigEndian.PutUint32(pkt[8:], 0x5eed)
	wire := make([]byte, len(pkt)+10)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	sent := uint64(0)
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i/4*3000))
		out := pkt
		if prot != nil {
			m, err := prot.ProtectRTP(wire, pkt)
			if err != nil {
				b.Fatal(err)
			}
			out = wire[:m]
		}
		if _, err := src.Write(out); err != nil {
			b.Fatal(err)
		}
		// stay under the sockets' and the queue's capacity: measure relaying, not loss
		if sent++; sent%64 == 0 {
			for hub.Stats().PacketsIn+128 < sent {
				runtime.Gosched()
			}
			for {
				st, _ := n.Stats("rd")
				if st.Packets+st.Dropped+256 >= hub.Stats().PacketsOut {
					break
				}
				runtime.Gosched()
			}
		}
	}
	for deadline := time.Now().Add(time.Second); hub.Stats().PacketsIn < sent && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	b.StopTimer()
	st, _ := n.Stats("rd")
	b.ReportMetric(float64(sent-hub.Stats().PacketsIn), "lost-in")
	b.ReportMetric(float64(st.Dropped), "drops")
	if rs, _ := n.Stats("rela"); rs.Errors != 0 {
		b.Fatalf("%d relayed packets refused", rs.Errors)
	}
}
