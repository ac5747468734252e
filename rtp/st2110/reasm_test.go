package st2110

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func video(t testing.TB, sampling string, depth, w, h int, interlace bool) *Video {
	t.Helper()
	pg, err := pgroupOf(sampling, depth)
	if err != nil {
		t.Fatal(err)
	}
	return &Video{Sampling: sampling, Depth: depth, Width: w, Height: h, RateNum: 50, RateDen: 1, Interlace: interlace, PGroup: pg}
}

// packets cuts frame into packets of at most max bytes (fresh slices).
func packets(t testing.TB, v *Video, frame []byte, ts uint32, seq uint32, max int) [][]byte {
	t.Helper()
	p, err := NewPacketizer(PacketizerConfig{Video: v, PayloadType: 96, SSRC: 7, FirstSeq: seq, MaxPacket: max})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Begin(frame, ts); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	buf := make([]byte, 9000)
	for !p.Done() {
		if v.Interlace && p.Field() == 1 {
			p.SetTimestamp(ts + 1800)
		}
		n := p.Next(buf)
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}

type collect struct{ frames []*Frame }

func (c *collect) WriteFrame(f *Frame) { c.frames = append(c.frames, f) }

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name     string
		sampling string
		depth    int
		w, h     int
		inter    bool
		max      int
	}{
		{"uyvy", "YCbCr-4:2:2", 8, 320, 240, false, 1460},
		{"uyvp", "YCbCr-4:2:2", 10, 320, 240, false, 1400},
		{"small lines, many SRDs", "YCbCr-4:2:2", 8, 64, 16, false, 1460},
		{"interlaced", "YCbCr-4:2:2", 10, 320, 240, true, 1460},
		{"420", "YCbCr-4:2:0", 8, 320, 240, false, 1460},
		{"rgb 10", "RGB", 10, 320, 240, false, 1200},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := video(t, c.sampling, c.depth, c.w, c.h, c.inter)
			var sink collect
			r, err := NewReassembler(ReassemblerConfig{Video: v, Sink: &sink, Frames: 4})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			seq := uint32(65530) // wraps inside the first frame
			for i := range 3 {
				frame := make([]byte, v.FrameSize())
				for j := range frame {
					frame[j] = byte(rng.Uint32())
				}
				pk := packets(t, v, frame, uint32(i*3600), seq, c.max)
				for _, p := range pk {
					p[12], p[13] = 0, 0 // ESN 0, as ffmpeg and GStreamer send
					r.WriteRTP(p)
				}
				seq += uint32(len(pk))
				if len(sink.frames) != i+1 {
					t.Fatalf("frame %d: %d frames out, stats %+v", i, len(sink.frames), r.Stats())
				}
				f := sink.frames[i]
				if !f.Complete || !bytes.Equal(f.Data, frame) || f.Counter != uint64(i+1) || f.Timestamp != uint32(i*3600) {
					t.Fatalf("frame %d: complete %v counter %d ts %d equal %v", i, f.Complete, f.Counter, f.Timestamp, bytes.Equal(f.Data, frame))
				}
				f.Release()
			}
			st := r.Stats()
			if st.Frames != 3 || st.Incomplete != 0 || st.Lost != 0 || st.Malformed != 0 || st.Late != 0 {
				t.Fatalf("stats %+v", st)
			}
			if r.Pool().Free() != 4 {
				t.Fatalf("%d buffers free, want 4", r.Pool().Free())
			}
		})
	}
}

func TestLossLateAndNoBuffer(t *testing.T) {
	v := video(t, "YCbCr-4:2:2", 8, 320, 240, false)
	var sink collect
	r, err := NewReassembler(ReassemblerConfig{Video: v, Sink: &sink, Frames: 2})
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, v.FrameSize())
	seq := uint32(0)
	send := func(ts uint32, skip int) [][]byte {
		pk := packets(t, v, frame, ts, seq, 1460)
		seq += uint32(len(pk))
		for i, p := range pk {
			if i != skip {
				r.WriteRTP(p)
			}
		}
		return pk
	}
	send(0, 5) // one packet lost: incomplete
	if st := r.Stats(); st.Incomplete != 1 || st.Lost != 1 || len(sink.frames) != 0 {
		t.Fatalf("after a loss: %+v, %d out", st, len(sink.frames))
	}
	pk := send(3600, -1)
	r.WriteRTP(pk[3]) // a repeat is late
	if st := r.Stats(); st.Frames != 1 || st.Late != 1 || st.LateFrames != 1 {
		t.Fatalf("after a repeat: %+v", st)
	}
	send(7200, -1)  // the sink holds both buffers now
	send(10800, -1) // no buffer: skipped
	if st := r.Stats(); st.NoBuffer != 1 || st.Frames != 2 {
		t.Fatalf("with the pool held: %+v", st)
	}
	for _, f := range sink.frames {
		f.Release()
	}
	send(14400, -1)
	if st := r.Stats(); st.Frames != 3 || len(sink.frames) != 3 {
		t.Fatalf("after release: %+v", st)
	}
	sink.frames[2].Release()
	// a frame whose marker is lost is finished by the next timestamp
	send(18000, len(packets(t, v, frame, 0, 0, 1460))-1)
	send(21600, -1)
	if st := r.Stats(); st.Incomplete != 2 || st.Frames != 4 {
		t.Fatalf("after a lost marker: %+v", st)
	}
}

// srdPacket builds one packet with the given SRD headers and data length.
func srdPacket(seq uint16, srds [][3]uint16, data int) []byte {
	b := make([]byte, 14, 14+6*len(srds)+data)
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint16(b[2:], seq)
	for i, s := range srds {
		c := s[2]
		if i < len(srds)-1 {
			c |= 0x8000
		}
		b = binary.BigEndian.AppendUint16(b, s[0])
		b = binary.BigEndian.AppendUint16(b, s[1])
		b = binary.BigEndian.AppendUint16(b, c)
	}
	return append(b, make([]byte, data)...)
}

func TestMalformedSRD(t *testing.T) {
	v := video(t, "YCbCr-4:2:2", 8, 64, 16, false)
	r, err := NewReassembler(ReassemblerConfig{Video: v})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name string
		srds [][3]uint16
		data int
	}{
		{"row beyond height", [][3]uint16{{128, 16, 0}}, 128},
		{"offset beyond width", [][3]uint16{{4, 0, 64}}, 4},
		{"length past the line end", [][3]uint16{{8, 0, 62}}, 8},
		{"length beyond payload", [][3]uint16{{128, 0, 0}}, 100},
		{"second SRD beyond payload", [][3]uint16{{64, 0, 0}, {64, 1, 0}}, 100},
		{"not whole pixel groups", [][3]uint16{{6, 0, 0}}, 6},
		{"odd pixel offset", [][3]uint16{{4, 0, 1}}, 4},
		{"zero length", [][3]uint16{{0, 0, 0}}, 0},
		{"field 1 in progressive", [][3]uint16{{4, 0x8000, 0}}, 4},
		{"continuation into nothing", [][3]uint16{{4, 0, 0 | 0x8000}}, 0},
	} {
		before := r.Stats().Malformed
		r.WriteRTP(srdPacket(uint16(i), c.srds, c.data))
		if r.Stats().Malformed != before+1 {
			t.Errorf("%s: not counted as malformed (%+v)", c.name, r.Stats())
		}
	}
}

func FuzzReassembler(f *testing.F) {
	v := &Video{Sampling: "YCbCr-4:2:2", Depth: 10, Width: 64, Height: 16, RateNum: 50, RateDen: 1}
	vi := *v
	vi.Interlace = true
	frame := make([]byte, 64/2*5*16)
	for _, vv := range []*Video{v, &vi} {
		vv.PGroup, _ = pgroupOf(vv.Sampling, vv.Depth)
		for _, p := range packets(f, vv, frame, 0, 0, 400) {
			f.Add(p, vv.Interlace)
		}
	}
	f.Add(srdPacket(1, [][3]uint16{{10, 15, 60}}, 10), false)
	f.Fuzz(func(t *testing.T, b []byte, interlace bool) {
		vv := v
		if interlace {
			vv = &vi
		}
		var sink collect
		r, err := NewReassembler(ReassemblerConfig{Video: vv, Sink: &sink, Incomplete: true, Frames: 2})
		if err != nil {
			t.Fatal(err)
		}
		// the packet, a variant with a later timestamp and its marker set, and the packet again
		r.WriteRTP(b)
		if len(b) >= 12 {
			c := append([]byte(nil), b...)
			c[1] |= 0x80
			c[3]++
			c[7] += 2
			r.WriteRTP(c)
		}
		r.WriteRTP(b)
		r.Flush()
		for _, fr := range sink.frames {
			if len(fr.Data) != len(frame) || fr.Bytes < 0 {
				t.Fatalf("frame of %d bytes", len(fr.Data))
			}
			fr.Release()
		}
		if r.Pool().Free() != 2 {
			t.Fatalf("%d of 2 buffers free", r.Pool().Free())
		}
	})
}

// BenchmarkReassemble1080p10 feeds 1080p 4:2:2 10-bit frames (the 2110 flow the issue measures)
// packet by packet; ns/op and allocs are per packet.
func BenchmarkReassemble1080p10(b *testing.B) {
	v := video(b, "YCbCr-4:2:2", 10, 1920, 1080, false)
	r, err := NewReassembler(ReassemblerConfig{Video: v})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, v.FrameSize())
	pk := packets(b, v, frame, 0, 0, 1460)
	b.SetBytes(int64(len(pk[0])))
	b.ReportAllocs()
	b.ResetTimer()
	seq, ts := uint16(0), uint32(0)
	for i := 0; i < b.N; i++ {
		j := i % len(pk)
		if j == 0 {
			ts += 1501
		}
		p := pk[j]
		binary.BigEndian.PutUint16(p[2:], seq)
		binary.BigEndian.PutUint32(p[4:], ts)
		seq++
		r.WriteRTP(p)
	}
	b.StopTimer()
	if st := r.Stats(); st.Malformed != 0 || st.Late != 0 || st.Lost != 0 {
		b.Fatalf("stats %+v", st)
	}
	b.ReportMetric(float64(len(pk)), "pkts/frame")
}

// BenchmarkPacketize1080p10 cuts 1080p 4:2:2 10-bit frames; ns/op is per packet.
func BenchmarkPacketize1080p10(b *testing.B) {
	v := video(b, "YCbCr-4:2:2", 10, 1920, 1080, false)
	p, err := NewPacketizer(PacketizerConfig{Video: v, PayloadType: 96})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, v.FrameSize())
	buf := make([]byte, 1500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p.Done() {
			_ = p.Begin(frame, uint32(i))
		}
		p.Next(buf)
	}
}
