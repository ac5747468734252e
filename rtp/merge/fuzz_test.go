package merge

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"
)

// FuzzMerger drives a merger with arbitrary legs, sequence numbers, SSRCs
// and clock steps. It must never panic; within one stream (between resets)
// its output must be strictly increasing in extended sequence number, so
// never repeat one; every output packet must be byte-identical to a packet
// pushed with that SSRC and sequence number; every pushed packet must be
// counted exactly once; and Close must return every buffer.
//
// Each op is 4 bytes: leg and kind, two bytes of sequence number (a small
// step from the last one, or an absolute value), and a clock step.
func FuzzMerger(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 3, 1, 1, 0, 2, 200, 8, 0, 0, 100})
	f.Add([]byte{0x10, 0xff, 0xf0, 1, 0x11, 0xff, 0xf0, 1, 0, 0, 0x20, 1, 1, 0, 0x20, 1, 0, 0, 1, 100})
	f.Add([]byte{0x0c, 0, 1, 1, 0x0c, 0, 2, 1, 0x0d, 0, 1, 1, 0, 0, 3, 1, 8, 0, 0, 255})
	f.Add([]byte{0x10, 0x80, 0, 0, 0x11, 0x80, 0, 0, 0x10, 0x80, 1, 0, 0x11, 0x80, 1, 0, 2, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*4096 {
			return
		}
		type key struct {
			ssrc uint32
			seq  uint16
		}
		type outRec struct {
			epoch uint64
			b     []byte
		}
		var (
			m    *Merger
			outs []outRec
		)
		m = New(Config{
			Skew:   5 * time.Millisecond,
			Legs:   3,
			Window: 64,
			Logger: slog.New(slog.DiscardHandler),
			// Out runs under the merger's lock, so reading the reset
			// counter here tells which stream the packet belongs to.
			Out: func(b []byte) { outs = append(outs, outRec{m.resets, bytes.Clone(b)}) },
		})
		in := map[key][][]byte{}
		var now int64
		var seq uint16
		var n uint32
		for len(data) >= 4 {
			op, hi, lo, dt := data[0], data[1], data[2], data[3]
			data = data[4:]
			now += int64(dt) * 100 * int64(time.Microsecond)
			if op&0x08 != 0 {
				m.Tick(now)
				continue
			}
			leg := int(op&3) % 3
			if op&0x10 != 0 {
				seq = uint16(hi)<<8 | uint16(lo)
			} else {
				seq += uint16(int8(lo))
			}
			ssrc := uint32(0xabc)
			if op&0x04 != 0 {
				ssrc += uint32(hi & 3)
			}
			n++
			b := mkRTP(ssrc, seq, n, 8)
			binary.BigEndian.PutUint32(b[12:], n) // a payload of its own
			if op&0x20 != 0 {
				b = b[:5] // not RTP
			}
			in[key{ssrc, seq}] = append(in[key{ssrc, seq}], b)
			m.Push(leg, b, now)
		}
		m.Tick(now + int64(time.Second))

		var ext int64
		for i, o := range outs {
			s := binary.BigEndian.Uint16(o.b[2:])
			if i > 0 && o.epoch == outs[i-1].epoch {
				d := int64(int16(s - binary.BigEndian.Uint16(outs[i-1].b[2:])))
				if d <= 0 {
					t.Fatalf("output %d: seq %d after %d in one stream", i, s, binary.BigEndian.Uint16(outs[i-1].b[2:]))
				}
				ext += d
			} else {
				ext = 0
			}
			found := false
			for _, b := range in[key{binary.BigEndian.Uint32(o.b[8:]), s}] {
				if bytes.Equal(b, o.b) {
					found = true
				}
			}
			if !found {
				t.Fatalf("output %d (seq %d) is no packet pushed", i, s)
			}
		}
		st := m.Stats()
		if st.Output != uint64(len(outs)) {
			t.Fatalf("Output %d, %d packets out", st.Output, len(outs))
		}
		var recv uint64
		for i, l := range st.Legs {
			recv += l.Received
			if sum := l.Invalid + l.First + l.Duplicates + l.Late + l.Diverged; sum != l.Received {
				t.Fatalf("leg %d: %+v: kinds add up to %d", i, l, sum)
			}
		}
		if recv != uint64(n) {
			t.Fatalf("received %d, pushed %d", recv, n)
		}
		m.Close()
		checkNoLeak(t, m)
	})
}
