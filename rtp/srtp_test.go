package rtp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
)

func testKey(t testing.TB) SRTPKey {
	t.Helper()
	k, err := NewSRTPKey()
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
	u, err := NewSRTPUnprotector(k, nil)
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
		if len(b) != len(plain[got])+srtpOverhead || bytes.Contains(b, plain[got][12:]) {
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

// TestSRTPUnprotectRejects: replays, tampering, a wrong key and garbage are
// refused with ErrSRTP, never passed on.
func TestSRTPUnprotectRejects(t *testing.T) {
	k := testKey(t)
	pr, err := newProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	var enc [][]byte
	for i := range 3 {
		out := make([]byte, 112+srtpOverhead)
		n, err := pr.protectRTP(out, mkRTP(7, uint16(i), 0, 100))
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, out[:n])
	}
	u, err := NewSRTPUnprotector(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.RTP(enc[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := u.RTP(enc[0]); !errors.Is(err, ErrSRTP) {
		t.Fatalf("replayed packet: err %v, want ErrSRTP", err)
	}
	bad := bytes.Clone(enc[1])
	bad[20] ^= 1
	if _, err := u.RTP(bad); !errors.Is(err, ErrSRTP) {
		t.Fatalf("tampered packet: err %v, want ErrSRTP", err)
	}
	other, err := NewSRTPUnprotector(testKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.RTP(enc[2]); !errors.Is(err, ErrSRTP) {
		t.Fatalf("wrong key: err %v, want ErrSRTP", err)
	}
	for _, b := range [][]byte{nil, {0x80}, make([]byte, 11), enc[2][:15]} {
		if _, err := u.RTP(b); !errors.Is(err, ErrSRTP) {
			t.Fatalf("garbage %x: err %v, want ErrSRTP", b, err)
		}
		if _, err := u.RTCP(b); !errors.Is(err, ErrSRTP) {
			t.Fatalf("garbage RTCP %x: err %v, want ErrSRTP", b, err)
		}
	}
}

// TestSRTPUnprotectStartROC: a sender that announced ROC 1 (MIKEY) is
// decrypted from its first packet, which a context starting at 0 cannot do.
func TestSRTPUnprotectStartROC(t *testing.T) {
	k := testKey(t)
	sender, err := newSRTPContext(k, false)
	if err != nil {
		t.Fatal(err)
	}
	sender.SetROC(9, 1)
	enc, err := sender.EncryptRTP(nil, mkRTP(9, 10, 0, 50), nil)
	if err != nil {
		t.Fatal(err)
	}
	u0, _ := NewSRTPUnprotector(k, nil)
	if _, err := u0.RTP(enc); err == nil {
		t.Fatal("ROC 1 packet decrypted by a context at ROC 0")
	}
	u1, _ := NewSRTPUnprotector(k, map[uint32]uint32{9: 1})
	if _, err := u1.RTP(enc); err != nil {
		t.Fatalf("with the announced ROC: %v", err)
	}
}

func TestSRTPKeyRedacted(t *testing.T) {
	k := testKey(t)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if bytes.Contains([]byte(s), []byte(k.Base64())) || !bytes.Contains([]byte(s), []byte("redacted")) {
			t.Fatalf("key formatted as %q", s)
		}
	}
	if _, err := SRTPKeyFromBytes(make([]byte, 29)); err == nil {
		t.Fatal("29-byte key accepted")
	}
}

// BenchmarkSRTPProtect: one 1200-byte packet protected for one reader into a pooled buffer of
// its own, as the egress workers and interleaved writers do. 0 allocs/op.
func BenchmarkSRTPProtect(b *testing.B) {
	pool := NewPool()
	pr, err := newProtector(testKey(b))
	if err != nil {
		b.Fatal(err)
	}
	pkt := mkRTP(1, 0, 0, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		q := pool.Get(len(pkt) + srtpOverhead)
		if _, err := pr.protectRTP(q.buf, pkt); err != nil {
			b.Fatal(err)
		}
		q.Release()
	}
	b.StopTimer()
	checkNoLeak(b, pool)
}

// BenchmarkSRTPUnprotect: one publisher packet authenticated and decrypted.
func BenchmarkSRTPUnprotect(b *testing.B) {
	k := testKey(b)
	sender, err := newSRTPContext(k, false)
	if err != nil {
		b.Fatal(err)
	}
	const n = 4096
	enc := make([][]byte, n)
	for i := range enc {
		if enc[i], err = sender.EncryptRTP(nil, mkRTP(1, uint16(i), 0, 1200), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(enc[0])))
	b.ReportAllocs()
	var u *SRTPUnprotector
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			b.StopTimer()
			u, _ = NewSRTPUnprotector(k, nil) // a fresh replay window for the same packets
			b.StartTimer()
		}
		if _, err := u.RTP(enc[i%n]); err != nil {
			b.Fatal(err)
		}
	}
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

// FuzzSRTPProtect: whatever meshgw's own transform accepts, pion/srtp's context gives back
// unchanged (RTP and RTCP), so the egress transform agrees with an independent implementation.
func FuzzSRTPProtect(f *testing.F) {
	f.Add(mkRTP(1, 65535, 0, 40), false)
	f.Add(append([]byte{0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1}, make([]byte, 20)...), false)
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}, true)
	k := SRTPKey{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}
	f.Fuzz(func(t *testing.T, b []byte, rtcp bool) {
		if len(b) > 4000 {
			return
		}
		p, err := newProtector(k)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(b)+srtcpOverhead)
		var n int
		if rtcp {
			n, err = p.protectRTCP(out, b)
		} else {
			n, err = p.protectRTP(out, b)
		}
		if err != nil {
			return
		}
		pion, err := newSRTPContext(k, true)
		if err != nil {
			t.Fatal(err)
		}
		var plain []byte
		if rtcp {
			plain, err = pion.DecryptRTCP(nil, out[:n], nil)
		} else {
			plain, err = pion.DecryptRTP(nil, out[:n], nil)
		}
		if !rtcp {
			// pion parses header extension elements before decrypting: it refuses malformed ones,
			// and one with ID 15 ends its header early, so it decrypts the rest of the extension
			// as payload. SRTP (RFC 3711 §3.1) leaves the whole extension, as its length field
			// gives it, in clear, as ours does; the oracle only holds where pion agrees on that.
			var h pionrtp.Header
			hn, herr := h.Unmarshal(b)
			if clear, _ := srtpClearLen(b); herr != nil || hn != clear {
				return
			}
		}
		if err != nil {
			t.Fatalf("pion rejects what meshgw protected (%x): %v", b, err)
		}
		if !bytes.Equal(plain, b) {
			t.Fatalf("pion unprotects %x to %x", b, plain)
		}
	})
}

// FuzzSRTPUnprotect: garbage from a publisher is refused, never a panic.
func FuzzSRTPUnprotect(f *testing.F) {
	f.Add(mkRTP(1, 1, 0, 30), false)
	f.Add([]byte{0x80, 200, 0, 1, 0, 0, 0, 1, 0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true)
	f.Fuzz(func(t *testing.T, b []byte, rtcp bool) {
		u, err := NewSRTPUnprotector(SRTPKey{7}, map[uint32]uint32{1: 3})
		if err != nil {
			t.Fatal(err)
		}
		if rtcp {
			_, err = u.RTCP(b)
		} else {
			_, err = u.RTP(b)
		}
		if err == nil {
			t.Fatalf("forged packet %x authenticated", b)
		}
	})
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
	un, err := NewSRTPUnprotector(k, nil)
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

// FuzzSRTPUnprotectMatchesPion: a stream protected by pion/srtp, in any order the fuzzer picks
// (wraps, jumps, reordering, duplicates), is unprotected by meshgw's own receiver exactly as
// pion's replay-protected receiver does it: the same packets accepted, the same bytes out.
func FuzzSRTPUnprotectMatchesPion(f *testing.F) {
	f.Add(uint16(65530), []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(uint16(10), []byte{1, 2, 0, 0, 3, 200, 1, 255, 255, 1})
	f.Add(uint16(40000), []byte{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100})
	k := SRTPKey{3, 1, 4, 1, 5, 9, 2, 6}
	f.Fuzz(func(t *testing.T, start uint16, steps []byte) {
		if len(steps) > 300 {
			return
		}
		sender, err := newSRTPContext(k, false)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := newSRTPContext(k, true)
		if err != nil {
			t.Fatal(err)
		}
		mine, err := NewSRTPUnprotector(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		// the sender sends in order; the network reorders by replaying earlier packets
		var sent [][]byte
		seq := start
		for i, st := range steps {
			var pkt []byte
			if st >= 200 && len(sent) > 0 {
				pkt = sent[int(st)%len(sent)] // a duplicate or a late packet
			} else {
				seq += uint16(st) + 1
				if pkt, err = sender.EncryptRTP(nil, mkRTP(5, seq, uint32(i), 20+i%7), nil); err != nil {
					return
				}
				sent = append(sent, pkt)
			}
			want, errRef := ref.DecryptRTP(nil, pkt, nil)
			got, errMine := mine.RTP(pkt)
			if (errRef == nil) != (errMine == nil) {
				t.Fatalf("step %d (seq %d): pion %v, meshgw %v", i, binary.BigEndian.Uint16(pkt[2:]), errRef, errMine)
			}
			if errRef == nil && !bytes.Equal(got, want) {
				t.Fatalf("step %d: different plain packets", i)
			}
		}
	})
}

// TestSRTPReplayWindowEdge: late packets just inside and just outside the replay window are
// treated as pion's receiver (with the same window) treats them.
func TestSRTPReplayWindowEdge(t *testing.T) {
	k := testKey(t)
	const last = srtpReplayWindow + 100
	for _, late := range []int{1, 63, 64, 65, srtpReplayWindow - 2, srtpReplayWindow - 1, srtpReplayWindow, srtpReplayWindow + 1} {
		sender, _ := newSRTPContext(k, false)
		ref, _ := newSRTPContext(k, true)
		mine, _ := NewSRTPUnprotector(k, nil)
		var held []byte
		for i := 0; i <= last; i++ {
			pkt, err := sender.EncryptRTP(nil, mkRTP(5, uint16(i), 0, 30), nil)
			if err != nil {
				t.Fatal(err)
			}
			if i == last-late {
				held = pkt
				continue
			}
			_, e1 := ref.DecryptRTP(nil, pkt, nil)
			_, e2 := mine.RTP(pkt)
			if e1 != nil || e2 != nil {
				t.Fatalf("in-order packet %d: pion %v, meshgw %v", i, e1, e2)
			}
		}
		_, e1 := ref.DecryptRTP(nil, held, nil)
		_, e2 := mine.RTP(held)
		if (e1 == nil) != (e2 == nil) {
			t.Errorf("packet %d behind the highest: pion %v, meshgw %v", late, e1, e2)
		}
	}
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
		u, err := NewSRTPUnprotector(k, nil)
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

// TestReplayFilter: in-order, reordered-within-window and wrapped packets pass once; replays
// and packets older than the window do not.
func TestReplayFilter(t *testing.T) {
	f := NewReplayFilter()
	pass := func(n int) bool { return f.Fresh(mkRTP(4, uint16(65400+n), 0, 1)) } // n-th packet from 65400, wrapping
	for i := range 300 {
		if !pass(i) { // wraps at 136
			t.Fatalf("in-order packet %d dropped", i)
		}
	}
	if pass(299) {
		t.Fatal("replay of the newest packet passed")
	}
	if pass(10) {
		t.Fatal("packet 290 behind the newest passed")
	}
	// a gap, then the missing packets late but inside the window
	if !pass(310) || !pass(305) || pass(305) {
		t.Fatal("late packet inside the window: want once")
	}
	if f.Fresh([]byte{1, 2, 3}) {
		t.Fatal("short packet passed")
	}
	// another SSRC has its own window
	if !f.Fresh(mkRTP(5, uint16(65400+299-65536), 0, 1)) {
		t.Fatal("another SSRC's first packet dropped")
	}
}

// BenchmarkReplayFilter: 0 allocs/op on the packet path.
func BenchmarkReplayFilter(b *testing.B) {
	f := NewReplayFilter()
	pkt := mkRTP(4, 0, 0, 100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if !f.Fresh(pkt) {
			b.Fatal("dropped")
		}
	}
}

// TestSRTPProtectorResumes: a reader's line moves from one sender to another (its node died)
// across a sequence wrap; the second sender, resumed from the first's published state, is
// accepted by the reader's one receiver context (pion's), with the rollover counter stepped and
// its SRTCP index past every one the first used.
func TestSRTPProtectorResumes(t *testing.T) {
	k := testKey(t)
	recv, err := newSRTPContext(k, true)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2048)
	send := func(p *protector, seq uint16) {
		t.Helper()
		pkt := mkRTP(7, seq, uint32(seq)*90, 50)
		n, err := p.protectRTP(out, pkt)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := recv.DecryptRTP(nil, out[:n], nil)
		if err != nil || !bytes.Equal(plain, pkt) {
			t.Fatalf("seq %d: the receiver refused or misread it: %v", seq, err)
		}
	}
	sendRTCP := func(p *protector) {
		t.Helper()
		sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
		n, err := p.protectRTCP(out, sr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recv.DecryptRTCP(nil, out[:n], nil); err != nil {
			t.Fatalf("SRTCP refused: %v", err)
		}
	}
	if _, ok := a.state(); ok {
		t.Fatal("state before the first packet")
	}
	for seq := uint16(65000); seq != 65530; seq++ {
		send(a, seq)
	}
	sendRTCP(a)
	sendRTCP(a)
	st, ok := a.state()
	if !ok || st != (SRTPSendState{SSRC: 7, ROC: 0, MaxSeq: 65529, RTCPIndex: 2}) {
		t.Fatalf("state = %+v, %v", st, ok)
	}
	b, err := newProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	b.resume(st)
	// the new sender's line went on a little past the old one's, across the wrap
	for seq := uint16(65534); seq != 40; seq++ {
		send(b, seq)
	}
	sendRTCP(b)
	if st2, _ := b.state(); st2.ROC != 1 || st2.MaxSeq != 39 || st2.RTCPIndex != 2+srtcpResumeGap+1 {
		t.Errorf("resumed state %+v, want ROC 1, max seq 39, SRTCP index %d", st2, 2+srtcpResumeGap+1)
	}
}
