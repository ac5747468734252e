package srtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/internal/peertest"
)

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSRTPUnprotectRejects: replays, tampering, a wrong key and garbage are
// refused with ErrRejected, never passed on.
func TestSRTPUnprotectRejects(t *testing.T) {
	k := testKey(t)
	pr, err := NewProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	var enc [][]byte
	for i := range 3 {
		out := make([]byte, 112+RTPOverhead)
		n, err := pr.ProtectRTP(out, mkRTP(7, uint16(i), 0, 100))
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, out[:n])
	}
	u, err := NewUnprotector(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.RTP(enc[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := u.RTP(enc[0]); !errors.Is(err, ErrRejected) {
		t.Fatalf("replayed packet: err %v, want ErrRejected", err)
	}
	bad := bytes.Clone(enc[1])
	bad[20] ^= 1
	if _, err := u.RTP(bad); !errors.Is(err, ErrRejected) {
		t.Fatalf("tampered packet: err %v, want ErrRejected", err)
	}
	other, err := NewUnprotector(testKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.RTP(enc[2]); !errors.Is(err, ErrRejected) {
		t.Fatalf("wrong key: err %v, want ErrRejected", err)
	}
	for _, b := range [][]byte{nil, {0x80}, make([]byte, 11), enc[2][:15]} {
		if _, err := u.RTP(b); !errors.Is(err, ErrRejected) {
			t.Fatalf("garbage %x: err %v, want ErrRejected", b, err)
		}
		if _, err := u.RTCP(b); !errors.Is(err, ErrRejected) {
			t.Fatalf("garbage RTCP %x: err %v, want ErrRejected", b, err)
		}
	}
}

// TestSRTPUnprotectStartROC: a sender that announced ROC 1 (MIKEY) is
// decrypted from its first packet, which a context starting at 0 cannot do.
func TestSRTPUnprotectStartROC(t *testing.T) {
	k := testKey(t)
	sender, err := newContext(k, false)
	if err != nil {
		t.Fatal(err)
	}
	sender.SetROC(9, 1)
	enc, err := sender.EncryptRTP(nil, mkRTP(9, 10, 0, 50), nil)
	if err != nil {
		t.Fatal(err)
	}
	u0, _ := NewUnprotector(k, nil)
	if _, err := u0.RTP(enc); err == nil {
		t.Fatal("ROC 1 packet decrypted by a context at ROC 0")
	}
	u1, _ := NewUnprotector(k, map[uint32]uint32{9: 1})
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
	if _, err := KeyFromBytes(make([]byte, 29)); err == nil {
		t.Fatal("29-byte key accepted")
	}
}

// BenchmarkSRTPProtect: one 1200-byte packet protected for one reader into a buffer of its own,
// as the egress workers and interleaved writers do (they take it from rtp's pool, whose cost
// rtp's BenchmarkSRTPFanout includes). 0 allocs/op.
func BenchmarkSRTPProtect(b *testing.B) {
	pr, err := NewProtector(testKey(b))
	if err != nil {
		b.Fatal(err)
	}
	pkt := mkRTP(1, 0, 0, 1200)
	dst := make([]byte, len(pkt)+RTPOverhead)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if _, err := pr.ProtectRTP(dst, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSRTPUnprotect: one publisher packet authenticated and decrypted.
func BenchmarkSRTPUnprotect(b *testing.B) {
	k := testKey(b)
	sender, err := newContext(k, false)
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
	var u *Unprotector
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			b.StopTimer()
			u, _ = NewUnprotector(k, nil) // a fresh replay window for the same packets
			b.StartTimer()
		}
		if _, err := u.RTP(enc[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSRTPProtect: whatever meshgw's own transform accepts, pion/srtp's context gives back
// unchanged (RTP and RTCP), so the egress transform agrees with an independent implementation.
func FuzzSRTPProtect(f *testing.F) {
	f.Add(mkRTP(1, 65535, 0, 40), false)
	f.Add(append([]byte{0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1}, make([]byte, 20)...), false)
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}, true)
	// payloads around the key stream's batch (ctrBatch) and block sizes, and none at all
	for _, n := range []int{0, 1, 15, 16, 17, 127, 128, 129, 255, 1200, 1388} {
		f.Add(mkRTP(9, uint16(n), 0, n), false)
	}
	// two CSRCs and a two-word extension, then a payload not a multiple of 16
	f.Add(append([]byte{0x92, 96, 1, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0xbe, 0xde, 0, 2, 0x10, 1, 0, 0, 0x22, 2, 3, 0}, make([]byte, 150)...), false)
	// padding (P bit, the last byte counts it): SRTP encrypts it with the payload
	padded := append(mkRTP(1, 7, 0, 97), 0, 0, 3)
	padded[0] |= 0x20
	f.Add(padded, false)
	f.Add(append([]byte{0x81, 201, 0, 32, 0, 0, 0, 5}, make([]byte, 132)...), true)
	k := Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}
	f.Fuzz(func(t *testing.T, b []byte, rtcp bool) {
		if len(b) > 4000 {
			return
		}
		p, err := NewProtector(k)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(b)+RTCPOverhead)
		var n int
		if rtcp {
			n, err = p.ProtectRTCP(out, b)
		} else {
			n, err = p.ProtectRTP(out, b)
		}
		if err != nil {
			return
		}
		pion, err := newContext(k, true)
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
			if clear, _ := clearLen(b); herr != nil || hn != clear {
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
		u, err := NewUnprotector(Key{7}, map[uint32]uint32{1: 3})
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

// FuzzSRTPUnprotectMatchesPion: a stream protected by pion/srtp, in any order the fuzzer picks
// (wraps, jumps, reordering, duplicates), is unprotected by meshgw's own receiver exactly as
// pion's replay-protected receiver does it: the same packets accepted, the same bytes out.
func FuzzSRTPUnprotectMatchesPion(f *testing.F) {
	f.Add(uint16(65530), []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(uint16(10), []byte{1, 2, 0, 0, 3, 200, 1, 255, 255, 1})
	f.Add(uint16(40000), []byte{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100})
	k := Key{3, 1, 4, 1, 5, 9, 2, 6}
	f.Fuzz(func(t *testing.T, start uint16, steps []byte) {
		if len(steps) > 300 {
			return
		}
		sender, err := newContext(k, false)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := newContext(k, true)
		if err != nil {
			t.Fatal(err)
		}
		mine, err := NewUnprotector(k, nil)
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
	const last = replayWindow + 100
	for _, late := range []int{1, 63, 64, 65, replayWindow - 2, replayWindow - 1, replayWindow, replayWindow + 1} {
		sender, _ := newContext(k, false)
		ref, _ := newContext(k, true)
		mine, _ := NewUnprotector(k, nil)
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
	recv, err := newContext(k, true)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2048)
	send := func(p *Protector, seq uint16) {
		t.Helper()
		pkt := mkRTP(7, seq, uint32(seq)*90, 50)
		n, err := p.ProtectRTP(out, pkt)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := recv.DecryptRTP(nil, out[:n], nil)
		if err != nil || !bytes.Equal(plain, pkt) {
			t.Fatalf("seq %d: the receiver refused or misread it: %v", seq, err)
		}
	}
	sendRTCP := func(p *Protector) {
		t.Helper()
		sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
		n, err := p.ProtectRTCP(out, sr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recv.DecryptRTCP(nil, out[:n], nil); err != nil {
			t.Fatalf("SRTCP refused: %v", err)
		}
	}
	if _, ok := a.State(); ok {
		t.Fatal("state before the first packet")
	}
	for seq := uint16(65000); seq != 65530; seq++ {
		send(a, seq)
	}
	sendRTCP(a)
	sendRTCP(a)
	st, ok := a.State()
	if !ok || st != (SendState{SSRC: 7, ROC: 0, MaxSeq: 65529, RTCPIndex: 2}) {
		t.Fatalf("state = %+v, %v", st, ok)
	}
	b, err := NewProtector(k)
	if err != nil {
		t.Fatal(err)
	}
	b.Resume(st)
	// the new sender's line went on a little past the old one's, across the wrap
	for seq := uint16(65534); seq != 40; seq++ {
		send(b, seq)
	}
	sendRTCP(b)
	if st2, _ := b.State(); st2.ROC != 1 || st2.MaxSeq != 39 || st2.RTCPIndex != 2+srtcpResumeGap+1 {
		t.Errorf("resumed state %+v, want ROC 1, max seq 39, SRTCP index %d", st2, 2+srtcpResumeGap+1)
	}
}

// mkRTP builds a minimal valid RTP packet.
var mkRTP = peertest.RTPPacket
