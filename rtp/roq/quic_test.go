package roq

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
)

// collector gathers received packets by flow.
type collector struct {
	mu  sync.Mutex
	got map[uint64][][]byte
	n   int
}

func (c *collector) HandlePacket(flow uint64, pkt []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[uint64][][]byte{}
	}
	c.got[flow] = append(c.got[flow], append([]byte(nil), pkt...))
	c.n++
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// quicPair connects a client and a server over loopback with quic-go.
func quicPair(t *testing.T) (server, client *quic.Conn) {
	t.Helper()
	stls, pool := peertest.SelfSignedTLS(t)
	stls.NextProtos = ALPNs
	// Own transports, closed at the end, so no connection outlives the test draining.
	transport := func() *quic.Transport {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: udp}
		t.Cleanup(func() {
			tr.Close()
			udp.Close()
		})
		return tr
	}
	str, ctr := transport(), transport()
	ln, err := str.Listen(stls, QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan *quic.Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = ctr.Dial(ctx, ln.Addr(), &tls.Config{RootCAs: pool, NextProtos: []string{"roq-09"}}, QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("no connection accepted")
	}
	if p := client.ConnectionState().TLS.NegotiatedProtocol; p != "roq-09" {
		t.Errorf("ALPN %q, want roq-09 (an older draft's token is accepted)", p)
	}
	t.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
	})
	return server, client
}

func TestEgressOverQUIC(t *testing.T) {
	for _, mode := range []Mode{Datagram, Stream} {
		t.Run(mode.String(), func(t *testing.T) {
			server, client := quicPair(t)
			var col collector
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Receive(ctx, client, &col) }()
			e := NewEgress(NewTransport(server), EgressConfig{Mode: mode, QueueLen: 4096})
			sk := e.Track(TrackFlows(1), keyframe.Other)
			pool := rtp.NewPool()
			var want [][]byte
			for i := range 100 {
				size := 200
				if i == 50 {
					size = 1400 // over the 1280-byte path's datagram limit: goes on a stream
				}
				b := peertest.RTPPacket(9, uint16(i), uint32(i/4), size)
				want = append(want, b)
				p := pool.Get(len(b))
				copy(p.Bytes(), b)
				sk.DeliverRTP(p)
			}
			// wait for everything, or, as datagrams may be lost, for a second after all were sent
			deadline := time.Now().Add(10 * time.Second)
			for col.count() < len(want) && time.Now().Before(deadline) {
				if d := time.Now().Add(time.Second); mode == Datagram && sk.Stats().Packets == uint64(len(want)) && d.Before(deadline) {
					deadline = d
				}
				time.Sleep(5 * time.Millisecond)
			}
			e.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("receive: %v", err)
			}
			got := col.got[2]
			// Datagrams are unreliable even on loopback (quic-go drops what a slow reader's
			// queue of 128 cannot hold): all must arrive on streams, nearly all as datagrams,
			// and the packet too large for a datagram, which went on a stream, always.
			need := len(want)
			if mode == Datagram {
				need = len(want) * 8 / 10
			}
			if len(got) < need {
				t.Fatalf("got %d packets on flow 2 (all flows: %d), want at least %d of %d", len(got), col.count(), need, len(want))
			}
			sent := map[string]bool{}
			for _, w := range want {
				sent[string(w)] = true
			}
			for i, g := range got {
				if !sent[string(g)] {
					t.Fatalf("packet %d (%d bytes) was not sent or changed", i, len(g))
				}
			}
			large := false
			for _, g := range got {
				large = large || len(g) == len(want[50])
			}
			if !large {
				t.Error("the packet over the datagram limit did not arrive")
			}
			if st := sk.Stats(); st.Packets != 100 || st.Errors != 0 || !bytes.Equal(got[0][:2], want[0][:2]) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
