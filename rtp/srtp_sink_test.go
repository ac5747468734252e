package rtp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp/srtp"
)

func testKey(t testing.TB) srtp.Key {
	t.Helper()
	k, err := srtp.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestInterleavedSRTPSink: an interleaved reader's frames leave the writer protected (the
// payload is not on the wire in clear, lengths include the tag) and an unprotector with the same
// key gets back exactly the hub's output, across a sequence number wrap (ROC), sender report
// included; a plain sink later on the same channel is plain again.
func TestInterleavedSRTPSink(t *testing.T) {
	pool := NewPool()
	k := testKey(t)
	server, client := tcpPair(t)
	w := NewInterleavedWriter(server, InterleavedConfig{QueueLen: 1024})
	s, err := w.SRTPSink(2, k)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SSRC: 0x1234, Transparent: true, SRInterval: time.Hour})
	plainRec := &recSink{}
	h.AddSink(s)
	h.AddSink(plainRec)
	const n = 300
	for i := range n {
		if err := h.WriteRTP(mkRTP(0x1234, uint16(65500+i), uint32(i*3000), 200)); err != nil {
			t.Fatal(err)
		}
	}
	plain, _ := plainRec.snapshot()
	u, err := srtp.NewUnprotector(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(client)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	readFrame := func() (byte, []byte) {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, int(hdr[2])<<8|int(hdr[3]))
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		return hdr[1], b
	}
	got, srs := 0, 0
	for got < n {
		ch, b := readFrame()
		switch ch {
		case 3:
			if _, err := u.RTCP(b); err != nil {
				t.Fatalf("sender report: %v", err)
			}
			srs++
			continue
		case 2:
		default:
			t.Fatalf("frame on channel %d", ch)
		}
		if len(b) != len(plain[got])+srtp.RTPOverhead || bytes.Contains(b, plain[got][12:]) {
			t.Fatalf("packet %d: %d bytes, plain %d, or plain payload visible", got, len(b), len(plain[got]))
		}
		out, err := u.RTP(b)
		if err != nil {
			t.Fatalf("packet %d: %v", got, err)
		}
		if !bytes.Equal(out, plain[got]) {
			t.Fatalf("packet %d differs after unprotect", got)
		}
		got++
	}
	if srs != 1 {
		t.Fatalf("%d sender reports, want 1", srs)
	}
	h.RemoveSink(s)
	plainSink := w.Sink(2)
	h.AddSink(plainSink)
	want := mkRTP(0x1234, uint16(65500+n-65536), uint32(n*3000), 200)
	if err := h.WriteRTP(want); err != nil {
		t.Fatal(err)
	}
	for {
		ch, b := readFrame()
		if ch == 2 {
			if !bytes.Equal(b, want) {
				t.Fatal("a plain sink on a channel that had SRTP still protects")
			}
			break
		}
	}
	h.Close()
	w.Close()
	checkNoLeak(t, pool)
}

// BenchmarkSRTPFanout is BenchmarkUDPFanout with every reader on SRTP: the
// ratio of their ns/datagram is SRTP's cost per delivered packet.
func BenchmarkSRTPFanout(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, secure := range []bool{false, true} {
			name := strconv.Itoa(n) + "/plain"
			if secure {
				name = strconv.Itoa(n) + "/srtp"
			}
			b.Run(name, func(b *testing.B) { benchUDPFanout(b, n, false, secure) })
		}
	}
}

// TestUDPSRTPSink: a UDP sink with a key sends SRTP and SRTCP that unprotect with that key to
// the hub's packets, with the plain payload nowhere on the wire.
func TestUDPSRTPSink(t *testing.T) {
	pool := NewPool()
	u := newPair(t, pool)
	r := newUDPReceiver(t)
	k := testKey(t)
	rtpDst, rtcpDst := r.addrs()
	s, err := u.NewSRTPSink(rtpDst, rtcpDst, k)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SSRC: 77, Transparent: true})
	h.AddSink(s)
	const n = 40
	for i := range n {
		if err := h.WriteRTP(mkRTP(77, uint16(65520+i), uint32(i*3000), 300)); err != nil {
			t.Fatal(err)
		}
	}
	un, err := srtp.NewUnprotector(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = r.rtp.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		m, err := r.rtp.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		want := mkRTP(77, uint16(65520+i), uint32(i*3000), 300)
		if bytes.Contains(buf[:m], want[12:]) {
			t.Fatalf("packet %d: plain payload on the wire", i)
		}
		got, err := un.RTP(buf[:m])
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("packet %d differs after unprotect", i)
		}
	}
	_ = r.rtcp.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := r.rtcp.Read(buf)
	if err != nil {
		t.Fatalf("sender report: %v", err)
	}
	if _, err := un.RTCP(buf[:m]); err != nil {
		t.Fatalf("sender report: %v", err)
	}
	h.Close()
	s.Close()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, pool)
}

// TestInterleavedSRTPRingGrows: SRTP frames stay intact while the writer's ring grows under a
// batch being written (a reader that is slow at first), and every buffer goes back to its pool.
func TestInterleavedSRTPRingGrows(t *testing.T) {
	pool := NewPool()
	k := testKey(t)
	server, client := tcpPair(t)
	w := NewInterleavedWriter(server, InterleavedConfig{QueueLen: 8192})
	s, err := w.SRTPSink(0, k)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool, SSRC: 9, Transparent: true, SRInterval: time.Hour})
	h.AddSink(s)
	const n = 4000 // ~5 MB: more than the socket buffers, so writes block while the ring grows
	done := make(chan error, 1)
	go func() {
		u, err := srtp.NewUnprotector(k, nil)
		if err != nil {
			done <- err
			return
		}
		br := bufio.NewReader(client)
		_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
		time.Sleep(200 * time.Millisecond) // slow at first
		for got := 0; got < n; {
			var hdr [4]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				done <- err
				return
			}
			b := make([]byte, int(hdr[2])<<8|int(hdr[3]))
			if _, err := io.ReadFull(br, b); err != nil {
				done <- err
				return
			}
			if hdr[1] != 0 {
				continue
			}
			p, err := u.RTP(b)
			if err != nil {
				done <- fmt.Errorf("frame %d: %w", got, err)
				return
			}
			if seq := binary.BigEndian.Uint16(p[2:]); seq != uint16(got) {
				done <- fmt.Errorf("frame %d has seq %d", got, seq)
				return
			}
			got++
		}
		done <- nil
	}()
	for i := range n {
		if err := h.WriteRTP(mkRTP(9, uint16(i), uint32(i), 1200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Dropped != 0 || st.Errors != 0 {
		t.Fatalf("writer stats %+v", st)
	}
	h.Close()
	w.Close()
	checkNoLeak(t, pool)
}
