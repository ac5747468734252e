package node

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A source flow applied again with another spec (a config reload changed the route's source)
// swaps the source under the stream's hubs: the same hubs, the sink on them keeps receiving, and
// the new source is the one that runs; even another kind of source may take over.
func TestReplaceSourceKeepsHubs(t *testing.T) {
	ev := &recEvents{}
	n := newLocal(t, ev)
	ctx := context.Background()
	if _, err := n.Apply(ctx, Flow{ID: "src", Version: 1, Stream: "s", Spec: DemoSource{}}); err != nil {
		t.Fatal(err)
	}
	rd, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	dst := rd.LocalAddr().(*net.UDPAddr).AddrPort()
	sink := Flow{ID: "rd", Version: 1, Stream: "s", Spec: UDPSink{RTP: dst, RTCP: netip.AddrPortFrom(dst.Addr(), dst.Port()+1)}}
	if _, err := n.Apply(ctx, sink); err != nil {
		t.Fatal(err)
	}
	hub, err := n.Hub("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	paced := Flow{ID: "src", Version: 2, Stream: "s", Spec: DemoSource{Hubs: Hubs{Pacing: 2}}}
	if _, err := n.Apply(ctx, paced); err != nil {
		t.Fatalf("replacing the source: %v", err)
	}
	if h, err := n.Hub("s", 0); err != nil || h != hub {
		t.Fatalf("the hubs changed with the source (%v)", err)
	}
	recvCount(rd, 100*time.Millisecond)
	if got := recvCount(rd, 500*time.Millisecond); got < 5 {
		t.Fatalf("the sink got %d packets in 500 ms after the swap", got)
	}
	ev.mu.Lock()
	readies := len(ev.ready)
	ev.mu.Unlock()
	if readies != 2 {
		t.Errorf("%d SourceReady events, want 2 (the first source and its replacement)", readies)
	}
	var got Flow
	for _, f := range n.Flows() {
		if f.ID == "src" {
			got = f
		}
	}
	if sp, ok := got.Spec.(DemoSource); !ok || sp.Pacing != 2 || got.Version != 2 {
		t.Fatalf("the node runs %+v, want the new spec", got)
	}
	// a stale command does not swap back
	if _, err := n.Apply(ctx, Flow{ID: "src", Version: 1, Stream: "s", Spec: DemoSource{}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range n.Flows() {
		if f.ID == "src" && f.Version != 2 {
			t.Fatalf("a stale command replaced the source: %+v", f)
		}
	}
	// another kind: a pull of an address nobody listens on; the hubs and the sink stay
	pull := Flow{ID: "src", Version: 3, Stream: "s", Spec: PullSource{URL: "rtsp://127.0.0.1:1/none", ReconnectMin: time.Second, ReconnectMax: time.Second}}
	if _, err := n.Apply(ctx, pull); err != nil {
		t.Fatalf("replacing the demo by a pull: %v", err)
	}
	if h, err := n.Hub("s", 0); err != nil || h != hub {
		t.Fatalf("the hubs changed with the source's kind (%v)", err)
	}
	recvCount(rd, 100*time.Millisecond)
	if got := recvCount(rd, 300*time.Millisecond); got != 0 {
		t.Fatalf("the old demo still sends after its replacement (%d packets)", got)
	}
}
