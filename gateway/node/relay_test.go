package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// hdr is what a reader sees of an RTP packet's line.
type hdr struct {
	ssrc uint32
	seq  uint16
	ts   uint32
}

// testReader is a UDP reader (RTP and RTCP sockets) recording what it receives.
type testReader struct {
	rtpConn, rtcpConn *net.UDPConn
	wg                sync.WaitGroup

	mu   sync.Mutex
	pkts []hdr
	rtcp [][]byte
}

func newTestReader(t testing.TB) *testReader {
	t.Helper()
	r := &testReader{rtpConn: listenLoopback(t), rtcpConn: listenLoopback(t)}
	r.wg.Add(2)
	go r.loop(r.rtpConn, func(b []byte) {
		if len(b) >= 12 {
			r.pkts = append(r.pkts, hdr{binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:])})
		}
	})
	go r.loop(r.rtcpConn, func(b []byte) { r.rtcp = append(r.rtcp, append([]byte(nil), b...)) })
	t.Cleanup(r.close)
	return r
}

func (r *testReader) loop(c *net.UDPConn, rec func([]byte)) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		rec(buf[:n])
		r.mu.Unlock()
	}
}

func (r *testReader) close() {
	r.rtpConn.Close()
	r.rtcpConn.Close()
	r.wg.Wait()
}

func (r *testReader) dst() (netip.AddrPort, netip.AddrPort) {
	return r.rtpConn.LocalAddr().(*net.UDPAddr).AddrPort(), r.rtcpConn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (r *testReader) snapshot() []hdr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hdr(nil), r.pkts...)
}

// wait returns the packets once there are at least n, failing after d.
func (r *testReader) wait(t *testing.T, n int, d time.Duration) []hdr {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		got := r.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader got %d packets in %v, want %d", len(got), d, n)
		}
	}
}

func listenLoopback(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pairAddrs are where another node sends to n's pair on loopback.
// waitQuiet waits until the reader has got nothing new for half a second and returns what it got.
func (r *testReader) waitQuiet() []hdr {
	var got []hdr
	for last, stable := -1, 0; stable < 10; time.Sleep(50 * time.Millisecond) {
		got = r.snapshot()
		if len(got) == last {
			stable++
		} else {
			last, stable = len(got), 0
		}
	}
	return got
}

func pairAddrs(n *Local) (netip.AddrPort, netip.AddrPort) {
	lo := netip.MustParseAddr("127.0.0.1")
	return netip.AddrPortFrom(lo, uint16(n.UDP().RTPPort())), netip.AddrPortFrom(lo, uint16(n.UDP().RTCPPort()))
}

// sinkTo is a UDP sink flow of track 0 of stream to r.
func sinkTo(id, stream string, r *testReader) Flow {
	rtpDst, rtcpDst := r.dst()
	return Flow{ID: id, Version: 1, Stream: stream, Spec: UDPSink{RTP: rtpDst, RTCP: rtcpDst}}
}

func mustApply(t *testing.T, n *Local, f Flow) FlowStatus {
	t.Helper()
	st, err := n.Apply(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRelayIsTransparent: a stream ingested on A and relayed to B reaches B's reader on exactly
// A's line, and the reader moved from B to A stays on it.
func TestRelayIsTransparent(t *testing.T) {
	ev := &recEvents{}
	a, b := newLocal(t, ev), newLocal(t, nil)
	ctx := context.Background()
	mustApply(t, a, Flow{ID: "src", Version: 1, Stream: "s1", Spec: DemoSource{}})
	ev.mu.Lock()
	tracks := ev.tracks["s1"]
	ev.mu.Unlock()
	if len(tracks) == 0 {
		t.Fatal("no tracks reported for s1")
	}
	// A: one relay sink per track to B's pair (one destination for all of them)
	bRTP, bRTCP := pairAddrs(b)
	ssrcs := make([]uint32, len(tracks))
	for i := range tracks {
		st := mustApply(t, a, Flow{ID: fmt.Sprintf("relay%d", i), Version: 1, Stream: "s1", Spec: UDPSink{Track: i, RTP: bRTP, RTCP: bRTCP}})
		ssrcs[i] = st.SSRC
	}
	aRTP, aRTCP := pairAddrs(a)
	rel := Flow{ID: "rel", Version: 1, Stream: "s1", Spec: RelaySource{Tracks: tracks, SSRCs: ssrcs, RTP: aRTP, RTCP: aRTCP}}
	st := mustApply(t, b, rel)
	if st.RTPPort != b.UDP().RTPPort() || st.RTCPPort != b.UDP().RTCPPort() || st.Source != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("relay status %+v", st)
	}
	if h, err := b.Hub("s1", 0); err != nil || h.SSRC() != ssrcs[0] {
		t.Fatalf("B's hub of a relayed stream: %v", err)
	}

	onB, ref := newTestReader(t), newTestReader(t)
	mustApply(t, b, sinkTo("rdB", "s1", onB))
	mustApply(t, a, sinkTo("ref", "s1", ref))
	got := onB.wait(t, 40, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // the reference is ahead; let it cover what B sent
	want := map[uint16]hdr{}
	for _, h := range ref.snapshot() {
		want[h.seq] = h
	}
	same := 0
	for i, h := range got {
		if h.ssrc != ssrcs[0] {
			t.Fatalf("packet %d on B: SSRC %08x, A's hub sends %08x", i, h.ssrc, ssrcs[0])
		}
		if w, ok := want[h.seq]; ok {
			if w != h {
				t.Fatalf("packet %d: B sent %+v, A sent %+v", i, h, w)
			}
			same++
		}
	}
	if same < 20 {
		t.Fatalf("only %d of B's %d packets seen from A as well", same, len(got))
	}
	rs, err := b.Stats("rel")
	if err != nil || rs.Packets < uint64(len(got)) || rs.Bytes == 0 || time.Since(rs.LastActivity) > time.Second {
		t.Fatalf("relay stats %+v, %v", rs, err)
	}

	// move the reader from B to A: same socket, same line
	before := onB.snapshot()
	if err := b.Delete(ctx, "rdB"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, a, sinkTo("rdA", "s1", onB))
	after := onB.wait(t, len(before)+40, 5*time.Second)
	checkLine(t, after, ssrcs[0], 200)
}

// checkLine asserts one SSRC and sequence numbers that only go forward, by at most maxGap.
func checkLine(t *testing.T, pkts []hdr, ssrc uint32, maxGap uint16) {
	t.Helper()
	for i, h := range pkts {
		if h.ssrc != ssrc {
			t.Fatalf("packet %d: SSRC %08x, want %08x", i, h.ssrc, ssrc)
		}
		if i == 0 {
			continue
		}
		if d := h.seq - pkts[i-1].seq; d == 0 || d > maxGap {
			t.Fatalf("packet %d: seq %d after %d", i, h.seq, pkts[i-1].seq)
		}
	}
}

// upstream stands in for another node's pair: raw RTP and RTCP from two sockets.
type upstream struct{ rtp, rtcp *net.UDPConn }

func newUpstream(t *testing.T) upstream {
	return upstream{listenLoopback(t), listenLoopback(t)}
}

func (u upstream) addrs() (netip.AddrPort, netip.AddrPort) {
	return u.rtp.LocalAddr().(*net.UDPAddr).AddrPort(), u.rtcp.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (u upstream) sendRTP(t *testing.T, to *Local, ssrc uint32, seq uint16, ts uint32) {
	t.Helper()
	dst, _ := pairAddrs(to)
	if _, err := u.rtp.WriteToUDPAddrPort(mkRTP(ssrc, seq, ts), dst); err != nil {
		t.Fatal(err)
	}
}

func mkRTP(ssrc uint32, seq uint16, ts uint32) []byte {
	b := make([]byte, 12+100)
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

// mkSR is a bare sender report.
func mkSR(ssrc uint32, ntp uint64, ts uint32) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 0x80, 200
	binary.BigEndian.PutUint16(b[2:], 6)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint64(b[8:], ntp)
	binary.BigEndian.PutUint32(b[16:], ts)
	return b
}

var video = []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}}

// TestRelayUpstreamMoves: the upstream node changes (new address, new SSRC); the relay is updated
// and its reader's line continues where it was.
func TestRelayUpstreamMoves(t *testing.T) {
	b := newLocal(t, nil)
	up1, up2 := newUpstream(t), newUpstream(t)
	rtp1, rtcp1 := up1.addrs()
	rel := Flow{ID: "rel", Version: 1, Stream: "s", Spec: RelaySource{Tracks: video, SSRCs: []uint32{0x1111}, RTP: rtp1, RTCP: rtcp1}}
	mustApply(t, b, rel)
	h1, err := b.Hub("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := newTestReader(t)
	mustApply(t, b, sinkTo("rd", "s", r))
	for i := range 20 {
		up1.sendRTP(t, b, 0x1111, uint16(65530+i), uint32(5000+3000*i))
	}
	got := r.wait(t, 20, 2*time.Second)
	for i, h := range got {
		if want := (hdr{0x1111, uint16(65530 + i), uint32(5000 + 3000*i)}); h != want {
			t.Fatalf("packet %d: %+v, want the input line %+v", i, h, want)
		}
	}

	rel.Version = 2
	rel = with(rel, func(s *RelaySource) {
		s.SSRCs = []uint32{0x2222}
		s.RTP, s.RTCP = up2.addrs()
	})
	mustApply(t, b, rel)
	if h2, err := b.Hub("s", 0); err != nil || h2 != h1 {
		t.Fatalf("relay update replaced the hub: %v", err)
	}
	// the old upstream's stragglers, and its SSRC from the new address, are not the line
	for i := range 3 {
		up1.sendRTP(t, b, 0x1111, uint16(14+i), uint32(65000+3000*i))
		up2.sendRTP(t, b, 0x1111, uint16(14+i), uint32(65000+3000*i))
	}
	time.Sleep(50 * time.Millisecond)
	for i := range 10 {
		up2.sendRTP(t, b, 0x2222, uint16(7+i), uint32(1e9+3000*i))
	}
	r.wait(t, 30, 2*time.Second)
	time.Sleep(50 * time.Millisecond) // nothing more may come
	if got = r.snapshot(); len(got) != 30 {
		t.Fatalf("reader got %d packets, want 30", len(got))
	}
	checkLine(t, got, 0x1111, 1)
	if d := got[20].ts - got[19].ts; d == 0 || d > 90000 {
		t.Fatalf("timestamp moved by %d ticks across the upstream change", d)
	}
	for i := 21; i < 30; i++ {
		if d := got[i].ts - got[i-1].ts; d != 3000 {
			t.Fatalf("packet %d: ts step %d, want the upstream's 3000", i, d)
		}
	}
	if st, err := b.Stats("rel"); err != nil || st.Dropped < 3 || st.Packets != 30 {
		t.Fatalf("relay stats %+v, %v; want 3 dropped, 30 packets", st, err)
	}
	if h1.Stats().Epochs != 1 {
		t.Fatalf("hub epochs %d, want 1", h1.Stats().Epochs)
	}
}

// TestRelayDemuxBySSRC: two streams from one upstream address go to their own hubs; sender
// reports reach the right hub; unknown SSRCs are dropped and counted.
func TestRelayDemuxBySSRC(t *testing.T) {
	b := newLocal(t, nil)
	up := newUpstream(t)
	urtp, urtcp := up.addrs()
	ra := Flow{ID: "ra", Version: 1, Stream: "a", Spec: RelaySource{Tracks: video, SSRCs: []uint32{0xa0}, RTP: urtp, RTCP: urtcp}}
	rb := ra
	rb.ID, rb.Stream = "rb", "b"
	rb = with(rb, func(s *RelaySource) { s.SSRCs = []uint32{0xb0} })
	mustApply(t, b, ra)
	mustApply(t, b, rb)
	// one upstream hub cannot feed two streams
	rc := ra
	rc.ID, rc.Stream = "rc", "c"
	if _, err := b.Apply(context.Background(), rc); err == nil {
		t.Fatal("a second relay of SSRC a0 from the same address was accepted")
	}
	if _, err := b.Hub("c", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused relay left its stream behind: %v", err)
	}
	// nor can a publisher's ingress share the address
	if _, err := b.Apply(context.Background(), Flow{ID: "in", Stream: "a", Spec: UDPIngress{RTP: urtp, RTCP: urtcp}}); err == nil {
		t.Fatal("an ingress on a relay's upstream address was accepted")
	}

	readA, readB := newTestReader(t), newTestReader(t)
	mustApply(t, b, sinkTo("rda", "a", readA))
	mustApply(t, b, sinkTo("rdb", "b", readB))

	const ntp, ts0 = uint64(0xe000000012345678), 90000
	_, bRTCP := pairAddrs(b)
	if _, err := up.rtcp.WriteToUDPAddrPort(mkSR(0xa0, ntp, ts0), bRTCP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st, _ := b.Stats("ra"); !st.LastActivity.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sender report never reached relay a")
		}
	}
	for i := range 10 {
		up.sendRTP(t, b, 0xa0, uint16(1+i), uint32(ts0+3000*i))
		up.sendRTP(t, b, 0xb0, uint16(100+i), uint32(3000*i))
		up.sendRTP(t, b, 0xc0, uint16(i), 0) // nobody's
	}
	bRTP, _ := pairAddrs(b)
	if _, err := up.rtp.WriteToUDPAddrPort([]byte{0x80, 96, 0}, bRTP); err != nil {
		t.Fatal(err)
	}
	readA.wait(t, 10, 2*time.Second)
	readB.wait(t, 10, 2*time.Second)
	time.Sleep(50 * time.Millisecond) // nothing more may come
	gotA, gotB := readA.snapshot(), readB.snapshot()
	if len(gotA) != 10 || len(gotB) != 10 {
		t.Fatalf("readers got %d and %d packets, want 10 each", len(gotA), len(gotB))
	}
	for i := range 10 {
		if want := (hdr{0xa0, uint16(1 + i), uint32(ts0 + 3000*i)}); gotA[i] != want {
			t.Fatalf("stream a packet %d: %+v, want %+v", i, gotA[i], want)
		}
		if want := (hdr{0xb0, uint16(100 + i), uint32(3000 * i)}); gotB[i] != want {
			t.Fatalf("stream b packet %d: %+v, want %+v", i, gotB[i], want)
		}
	}
	st, err := b.Stats("ra")
	if err != nil || st.Packets != 10 || st.Bytes != 10*112 || st.Dropped != 11 {
		t.Fatalf("relay a stats %+v, %v; want 10 packets, 1120 bytes, 11 dropped", st, err)
	}
	// the reader's first sender report maps the first packet's timestamp through A's report
	readA.mu.Lock()
	srs := append([][]byte(nil), readA.rtcp...)
	readA.mu.Unlock()
	if len(srs) == 0 || len(srs[0]) < 20 || srs[0][1] != 200 {
		t.Fatalf("reader a got no sender report: %x", srs)
	}
	sr := srs[0]
	if ssrc, gotNTP, gotTS := binary.BigEndian.Uint32(sr[4:]), binary.BigEndian.Uint64(sr[8:]), binary.BigEndian.Uint32(sr[16:]); ssrc != 0xa0 || gotNTP != ntp || gotTS != ts0 {
		t.Fatalf("reader's SR: ssrc %x ntp %x ts %d, want a0 %x %d", ssrc, gotNTP, gotTS, ntp, ts0)
	}

	// relay a goes: b keeps its route, a's SSRC becomes unknown
	for _, id := range []string{"rda", "ra"} {
		if err := b.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Hub("a", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stream a outlived its relay and reader: %v", err)
	}
	up.sendRTP(t, b, 0xa0, 11, 0)
	up.sendRTP(t, b, 0xb0, 110, 30000)
	readB.wait(t, 11, 2*time.Second)
	if st, _ := b.Stats("rb"); st.Dropped != 12 {
		t.Fatalf("dropped %d, want 12", st.Dropped)
	}
}

// TestApplyDuplicateAndFlows: a command repeated with the same or an older Version changes
// nothing and answers as the first time; Flows lists the node's flows as applied, with their
// labels, in a stable order, as copies.
func TestApplyDuplicateAndFlows(t *testing.T) {
	adv := netip.MustParseAddr("192.0.2.7")
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"}, Advertise: adv})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	up1 := netip.MustParseAddrPort("127.0.0.1:7000")
	up2 := netip.MustParseAddrPort("127.0.0.1:7002")

	pub := Flow{ID: "pub", Version: 1, Stream: "p", Spec: PublisherSource{Tracks: video}, Meta: map[string]string{"role": "publisher"}}
	mustApply(t, n, pub)
	sink := Flow{ID: "rd", Version: 1, Stream: "p", Spec: UDPSink{RTP: netip.MustParseAddrPort("127.0.0.1:9"), RTCP: netip.MustParseAddrPort("127.0.0.1:9"), Paused: true}, Meta: map[string]string{"session": "abc"}}
	mustApply(t, n, sink)
	meta := map[string]string{"route": "/cam", "role": "relay"}
	rel := Flow{ID: "rel", Version: 3, Stream: "r", Spec: RelaySource{Tracks: video, SSRCs: []uint32{42}, RTP: up1, RTCP: up1}, Meta: meta}
	st1 := mustApply(t, n, rel)
	if st1.Source != adv {
		t.Fatalf("status source %v, want the advertised %v", st1.Source, adv)
	}
	meta["route"] = "/changed" // the caller's map is not the node's

	dup := rel
	dup.Meta = map[string]string{"x": "y"}
	dup = with(dup, func(s *RelaySource) { s.RTP, s.SSRCs = up2, []uint32{43} })
	for _, v := range []uint64{3, 2} {
		dup.Version = v
		if st, err := n.Apply(ctx, dup); err != nil || st != st1 {
			t.Fatalf("version %d again: %+v, %v; want %+v", v, st, err, st1)
		}
	}
	wantRel := rel
	wantRel.Meta = map[string]string{"route": "/cam", "role": "relay"}
	// a retried sink command does not resume a paused reader
	resume := sink
	resume = resume.WithPaused(false)
	if _, err := n.Apply(ctx, resume); err != nil {
		t.Fatal(err)
	}

	fl := n.Flows()
	if len(fl) != 3 || fl[0].ID != "pub" || fl[1].ID != "rel" || fl[2].ID != "rd" {
		t.Fatalf("flows %v", flowIDs(fl))
	}
	checkFlow(t, fl[1], wantRel)
	checkFlow(t, fl[0], pub)
	checkFlow(t, fl[2], sink)
	fl[1].Meta["route"] = "/mine"
	fl[1].Spec.(RelaySource).SSRCs[0] = 1
	checkFlow(t, n.Flows()[1], wantRel)

	// Version 0 always applies
	dup.Version = 0
	mustApply(t, n, dup)
	checkFlow(t, n.Flows()[1], dup)
	// a newer version applies, labels included
	resume.Version, resume.Meta = 2, map[string]string{"session": "abc", "state": "playing"}
	mustApply(t, n, resume)
	checkFlow(t, n.Flows()[2], resume)
}

func flowIDs(fl []Flow) []string {
	var ids []string
	for _, f := range fl {
		ids = append(ids, f.ID)
	}
	return ids
}

func checkFlow(t *testing.T, got, want Flow) {
	t.Helper()
	if got.ID != want.ID || got.Version != want.Version || fmt.Sprintf("%#v", got.Spec) != fmt.Sprintf("%#v", want.Spec) ||
		!maps.Equal(got.Meta, want.Meta) {
		t.Fatalf("flow %s:\n got %+v\nwant %+v", want.ID, got, want)
	}
}

// TestRelayEncrypted: a relay whose sinks and source share an SRTP key delivers A's line to B's
// reader in clear; a relay source holding another key takes nothing from the same upstream and
// counts every datagram it refused.
func TestRelayEncrypted(t *testing.T) {
	for _, sameKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("same-key=%v", sameKey), func(t *testing.T) {
			ev := &recEvents{}
			a, b := newLocal(t, ev), newLocal(t, nil)
			mustApply(t, a, Flow{ID: "src", Version: 1, Stream: "s1", Spec: DemoSource{}})
			ev.mu.Lock()
			tracks := ev.tracks["s1"]
			ev.mu.Unlock()
			k1, err := srtp.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			k2 := k1
			if !sameKey {
				if k2, err = srtp.NewKey(); err != nil {
					t.Fatal(err)
				}
			}
			bRTP, bRTCP := pairAddrs(b)
			ssrcs := make([]uint32, len(tracks))
			for i := range tracks {
				st := mustApply(t, a, Flow{ID: fmt.Sprintf("relay%d", i), Version: 1, Stream: "s1", Spec: UDPSink{Track: i, RTP: bRTP, RTCP: bRTCP, SRTPKey: k1[:]}})
				ssrcs[i] = st.SSRC
			}
			aRTP, aRTCP := pairAddrs(a)
			mustApply(t, b, Flow{ID: "rel", Version: 1, Stream: "s1", Spec: RelaySource{Tracks: tracks, SSRCs: ssrcs, RTP: aRTP, RTCP: aRTCP, SRTPKey: k2[:]}})
			onB := newTestReader(t)
			mustApply(t, b, sinkTo("rdB", "s1", onB))
			if sameKey {
				got := onB.wait(t, 40, 5*time.Second)
				checkLine(t, got, ssrcs[0], 200)
				return
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				rs, err := b.Stats("rel")
				if err != nil {
					t.Fatal(err)
				}
				if rs.Errors >= 40 {
					if rs.Packets != 0 || len(onB.snapshot()) != 0 {
						t.Fatalf("a relay with the wrong key let %d packets through (%d to the reader)", rs.Packets, len(onB.snapshot()))
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("relay with the wrong key: stats %+v after 5 s, want >= 40 refused", rs)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
