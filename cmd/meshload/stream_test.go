//go:build linux

package main

import (
	"encoding/binary"
	"testing"
)

func TestStreamSizesSumToBitrate(t *testing.T) {
	for _, p := range []streamParams{
		{Bitrate: 4_000_000, FPS: 25, GOP: 25, KeyRatio: 8, MaxPacket: 1400},
		{Bitrate: 50_000_000, FPS: 25, GOP: 25, KeyRatio: 8, MaxPacket: 1400},
		{Bitrate: 1_234_567, FPS: 30, GOP: 60, KeyRatio: 5.5, MaxPacket: 1200},
		{Bitrate: 500_000, FPS: 24, GOP: 7, KeyRatio: 1, MaxPacket: 1400},
	} {
		if err := p.validate(); err != nil {
			t.Fatal(err)
		}
		// whole GOPs carry the bitrate to the byte; 10 s of frames need not be whole GOPs
		frames := uint64(p.GOP * 10)
		var bytes, pktBytes int
		var sizes []int
		for n := range frames {
			fb := p.frameBytes(n)
			bytes += fb
			sizes = p.packetSizes(fb, sizes[:0])
			for _, s := range sizes {
				if s > p.MaxPacket || s < minPacket {
					t.Fatalf("%+v: packet of %d bytes", p, s)
				}
				pktBytes += s
			}
			if len(sizes) > p.maxFramePackets() {
				t.Fatalf("%+v: frame %d has %d packets, bound %d", p, n, len(sizes), p.maxFramePackets())
			}
			if n%uint64(p.GOP) == 0 && p.KeyRatio > 1 && fb <= p.frameBytes(n+1) {
				t.Fatalf("%+v: keyframe %d (%d bytes) not larger than the next frame (%d)", p, n, fb, p.frameBytes(n+1))
			}
		}
		want := float64(p.Bitrate) / 8 * float64(frames) / float64(p.FPS)
		if d := float64(bytes) - want; d < -1 || d > 1 {
			t.Errorf("%+v: %d bytes in %d frames, want %.0f", p, bytes, frames, want)
		}
		if pktBytes != bytes {
			t.Errorf("%+v: packets carry %d bytes, frames %d", p, pktBytes, bytes)
		}
	}
}

func TestStreamKeyframeRatio(t *testing.T) {
	p := streamParams{Bitrate: 4_000_000, FPS: 25, GOP: 25, KeyRatio: 8, MaxPacket: 1400}
	key, pf := p.frameBytes(0), p.frameBytes(1)
	if r := float64(key) / float64(pf); r < 7.99 || r > 8.01 {
		t.Fatalf("key %d P %d: ratio %.3f", key, pf, r)
	}
}

func TestSynthPackets(t *testing.T) {
	p := streamParams{Bitrate: 4_000_000, FPS: 25, GOP: 25, KeyRatio: 8, MaxPacket: 1400}
	s := newSynth(p, 0xabcdef01, 4)
	seq := uint16(0)
	for frame := range 30 {
		buf, offs, sizes := s.next(int64(frame) * 1000)
		if len(offs) != len(sizes) || len(sizes) == 0 {
			t.Fatalf("frame %d: %d offsets, %d sizes", frame, len(offs), len(sizes))
		}
		for i, off := range offs {
			b := buf[off : off+sizes[i]]
			gotSeq, ssrc, payload, ok := rtpFields(b)
			if !ok || gotSeq != seq || ssrc != 0xabcdef01 || b[1]&0x7f != synthPT {
				t.Fatalf("frame %d packet %d: bad header % x", frame, i, b[:12])
			}
			if marker := b[1]&0x80 != 0; marker != (i == len(offs)-1) {
				t.Fatalf("frame %d packet %d: marker %v", frame, i, marker)
			}
			if string(payload[:4]) != loadMagic || binary.BigEndian.Uint64(payload[4:]) != uint64(frame)*1000 ||
				binary.BigEndian.Uint32(payload[12:]) != uint32(frame) {
				t.Fatalf("frame %d packet %d: bad load header % x", frame, i, payload[:16])
			}
			if wantTS := uint32(frame * synthClock / p.FPS); binary.BigEndian.Uint32(b[4:]) != wantTS {
				t.Fatalf("frame %d: timestamp %d, want %d", frame, binary.BigEndian.Uint32(b[4:]), wantTS)
			}
			seq++
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { s.next(1) }); allocs != 0 {
		t.Errorf("next allocates %.1f times per frame", allocs)
	}
}
