package node

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/nack"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// newLiveLiveLocal is a node with a second pair on 127.0.0.2, standing in for a second network.
func newLiveLiveLocal(t *testing.T) *Local {
	t.Helper()
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"}, LiveLive: &rtp.UDPConfig{RTPAddr: "127.0.0.2:0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func secondPairAddrs(n *Local) (netip.AddrPort, netip.AddrPort) {
	lo := netip.MustParseAddr("127.0.0.2")
	p := n.LiveLiveUDP()
	return netip.AddrPortFrom(lo, uint16(p.RTPPort())), netip.AddrPortFrom(lo, uint16(p.RTCPPort()))
}

// liveLiveRun is one two-leg relay A → B, each leg's media through its own lossy relay.
type liveLiveRun struct {
	sent               int
	dropA, dropB, both []uint16 // sequence numbers each lossy relay dropped, and both did
	missing            []uint16 // numbers the reader on B never got, between its first and last
	inOrder            bool
	legs               *merge.Stats
	repair             nack.Stats
}

// runLiveLiveRelay sends packets at about 1000/s; during, when set, runs after each one with the
// two legs' lossy relays (to cut one).
func runLiveLiveRelay(t *testing.T, legA, legB peertest.LossyConfig, nack bool, packets int, during func(i int, legs [2]*peertest.LossyRelay)) liveLiveRun {
	t.Helper()
	a, b := newLiveLiveLocal(t), newLiveLiveLocal(t)
	send := publishTo(t, a, "s")
	bRTP, bRTCP := pairAddrs(b)
	bRTP2, bRTCP2 := secondPairAddrs(b)
	_, aRTCP := pairAddrs(a)
	_, aRTCP2 := secondPairAddrs(a)
	legA.To, legB.To = bRTP, bRTP2
	lossyA, lossyB := peertest.StartLossyRelay(t, legA), peertest.StartLossyRelay(t, legB)
	k, err := srtp.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key := k[:]
	st := mustApply(t, a, Flow{ID: "rl", Version: 1, Stream: "s", Spec: UDPSink{RTP: lossyA.Addr(), RTCP: bRTCP, NACK: nack, SRTPKey: key}})
	st2 := mustApply(t, a, Flow{ID: "rl2", Version: 1, Stream: "s", Spec: UDPSink{RTP: lossyB.Addr(), RTCP: bRTCP2, NACK: nack, SRTPKey: key, SecondPair: true}})
	if st.SSRC != st2.SSRC {
		t.Fatalf("the legs' sinks send SSRCs %08x and %08x", st.SSRC, st2.SSRC)
	}
	mustApply(t, b, Flow{ID: "ri", Version: 1, Stream: "s", Spec: RelaySource{Tracks: video, SSRCs: []uint32{st.SSRC}, RTP: lossyA.Addr(), RTCP: aRTCP, RTP2: lossyB.Addr(), RTCP2: aRTCP2, Skew: merge.ClassB, NACK: nack, SRTPKey: key}})
	r := newTestReader(t)
	_ = r.rtpConn.SetReadBuffer(4 << 20)
	mustApply(t, b, sinkTo("rd", "s", r))
	for i := range packets {
		send(i)
		if during != nil {
			during(i, [2]*peertest.LossyRelay{lossyA, lossyB})
		}
		if i%10 == 9 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	got := r.waitQuiet()
	run := liveLiveRun{sent: packets, dropA: lossyA.Dropped(), dropB: lossyB.Dropped(), inOrder: true}
	for _, s := range run.dropA {
		if slices.Contains(run.dropB, s) {
			run.both = append(run.both, s)
		}
	}
	seen := map[uint16]bool{}
	for i, h := range got {
		seen[h.seq] = true
		if i > 0 && int16(h.seq-got[i-1].seq) <= 0 {
			run.inOrder = false
		}
	}
	if len(got) > 0 {
		for s := got[0].seq; s != got[len(got)-1].seq; s++ {
			if !seen[s] {
				run.missing = append(run.missing, s)
			}
		}
	}
	sb, err := b.Stats("ri")
	if err != nil {
		t.Fatal(err)
	}
	run.legs = sb.RelayLegs
	if nack {
		run.repair, _ = b.RepairStats("ri")
	}
	return run
}

// seqsIn returns the members of s that lie in [from, to] (by sequence number order).
func seqsIn(s []uint16, from, to uint16) []uint16 {
	var out []uint16
	for _, x := range s {
		if int16(x-from) >= 0 && int16(to-x) >= 0 {
			out = append(out, x)
		}
	}
	return out
}

// TestRelayLiveLiveMergesLegs: each leg of a two-leg relay drops 10 % independently; without NACK
// the reader misses exactly the numbers both legs dropped (SMPTE 2022-7's promise), and with
// NACK it misses nothing.
func TestRelayLiveLiveMergesLegs(t *testing.T) {
	const packets = 2000
	for _, tc := range []struct {
		name string
		nack bool
	}{{"merge only", false}, {"merge and NACK", true}} {
		t.Run(tc.name, func(t *testing.T) {
			run := runLiveLiveRelay(t, peertest.LossyConfig{Random: 0.1, Seed: 3}, peertest.LossyConfig{Random: 0.1, Seed: 4}, tc.nack, packets, nil)
			t.Logf("%s: leg A dropped %d, leg B %d, both %d; reader missed %d %v; merge %+v; repair %+v",
				tc.name, len(run.dropA), len(run.dropB), len(run.both), len(run.missing), run.missing, run.legs, run.repair)
			if len(run.dropA) < packets/20 || len(run.dropB) < packets/20 || len(run.both) == 0 {
				t.Fatalf("the lossy relays dropped %d and %d (%d on both): the test does not test loss", len(run.dropA), len(run.dropB), len(run.both))
			}
			if !run.inOrder {
				t.Error("reader saw packets out of order")
			}
			if run.legs == nil || len(run.legs.Legs) != 2 || run.legs.Legs[0].First == 0 || run.legs.Legs[1].First == 0 {
				t.Fatalf("merge stats %+v: both legs should have brought first copies", run.legs)
			}
			if tc.nack {
				// retransmissions cross the lossy legs too; a packet or two may still be lost
				if len(run.missing) > 2 {
					t.Errorf("with NACK the reader missed %d: %v", len(run.missing), run.missing)
				}
				return
			}
			if len(run.missing) == 0 {
				t.Fatal("the reader missed nothing, though both legs dropped some numbers")
			}
			// what both legs dropped, within the span the reader saw, is what it missed
			both := seqsIn(run.both, run.missing[0]-1000, run.missing[len(run.missing)-1]+1000)
			if !slices.Equal(run.missing, seqsIn(both, run.missing[0], run.missing[len(run.missing)-1])) || len(run.missing) > len(run.both) {
				t.Errorf("reader missed %v, both legs dropped %v", run.missing, run.both)
			}
		})
	}
}

// TestRelayLiveLiveLegCut: leg A is cut for 400 ms, later leg B; the reader misses nothing.
func TestRelayLiveLiveLegCut(t *testing.T) {
	run := runLiveLiveRelay(t, peertest.LossyConfig{}, peertest.LossyConfig{}, false, 2000, func(i int, legs [2]*peertest.LossyRelay) {
		switch i {
		case 500:
			legs[0].Cut(400 * time.Millisecond)
		case 1200:
			legs[1].Cut(400 * time.Millisecond)
		}
	})
	t.Logf("leg A dropped %d, leg B %d; reader missed %d; merge %+v", len(run.dropA), len(run.dropB), len(run.missing), run.legs)
	if len(run.dropA) < 100 || len(run.dropB) < 100 || len(run.both) != 0 {
		t.Fatalf("cuts dropped %d and %d packets (%d on both): the test does not cut as meant", len(run.dropA), len(run.dropB), len(run.both))
	}
	if len(run.missing) != 0 || !run.inOrder {
		t.Errorf("reader missed %v (in order %v)", run.missing, run.inOrder)
	}
}

// TestRelayLiveLiveNeedsSecondPair: a relay with a second leg on a node without a second network
// is refused with a clear error.
func TestRelayLiveLiveNeedsSecondPair(t *testing.T) {
	n := newLocal(t, nil)
	ap := netip.MustParseAddrPort("127.0.0.1:5000")
	_, err := n.Apply(context.Background(), Flow{ID: "ri", Version: 1, Stream: "s", Spec: RelaySource{Tracks: video, SSRCs: []uint32{1}, RTP: ap, RTCP: ap, RTP2: ap, RTCP2: ap}})
	if err == nil || !strings.Contains(err.Error(), "live_live_address") {
		t.Errorf("relay with a second leg on a one-network node: %v", err)
	}
	_, err = n.Apply(context.Background(), Flow{ID: "rl", Version: 1, Stream: "s", Spec: UDPSink{RTP: ap, RTCP: ap, SecondPair: true}})
	if err == nil {
		t.Error("a second-pair sink on a one-network node was accepted")
	}
}

// BenchmarkRelayLiveLive is the receiving node's work per relayed packet without the sockets:
// SRTP check, SSRC demux and the hub with one sink, for a one-leg relay and for a two-leg
// (2022-7) relay, which checks both copies and merges them. One op = one packet out of the hub.
func BenchmarkRelayLiveLive(b *testing.B) {
	for _, legs := range []int{1, 2} {
		b.Run(map[int]string{1: "one leg", 2: "two legs"}[legs], func(b *testing.B) {
			hub := rtp.NewHub(rtp.HubConfig{Track: video[0], SSRC: 0x5eed, Transparent: true})
			defer hub.Close()
			sink := &releaseSink{}
			hub.AddSink(sink)
			k, err := srtp.NewKey()
			if err != nil {
				b.Fatal(err)
			}
			spec := Flow{Stream: "s", Spec: RelaySource{SSRCs: []uint32{0x5eed}, Tracks: video, SRTPKey: k[:]}}
			if legs == 2 {
				spec = with(spec, func(s *RelaySource) { s.RTP2 = netip.MustParseAddrPort("127.0.0.2:8000") })
			}
			fl := &flow{spec: spec, stream: &nodeStream{hubs: []*rtp.Hub{hub}}}
			if err := fl.setUnprotect(spec.ID, k[:], nil, legs == 2); err != nil {
				b.Fatal(err)
			}
			fl.setRelayChains(spec.Spec.(RelaySource), nil)
			for _, mg := range fl.mg {
				defer mg.Close()
			}
			peers := []*peer{newPeer(peerKey{}), newPeer(peerKey{second: true})}[:legs]
			for _, p := range peers {
				p.members[fl] = struct{}{}
				p.publish()
			}
			prot, err := srtp.NewProtector(k)
			if err != nil {
				b.Fatal(err)
			}
			pkt := make([]byte, 12+1200)
			pkt[0], pkt[1] = 0x80, 96
			binary.BigEndian.PutUint32(pkt[8:], 0x5eed)
			wire := make([]byte, len(pkt)+10)
			buf := make([]byte, len(wire))
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				binary.BigEndian.PutUint16(pkt[2:], uint16(i))
				binary.BigEndian.PutUint32(pkt[4:], uint32(i/4*3000))
				m, err := prot.ProtectRTP(wire, pkt)
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range peers {
					copy(buf, wire[:m]) // each leg brings its own copy, unprotected in place
					p.handleRTP(buf[:m])
				}
			}
			b.StopTimer()
			time.Sleep(3 * merge.ClassB) // the merge holds a stream's first packets for the skew
			if sink.n < b.N-1 || fl.errs.Load() != 0 {
				b.Fatalf("hub passed %d of %d packets, %d refused", sink.n, b.N, fl.errs.Load())
			}
		})
	}
}
