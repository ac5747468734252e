package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

type emitted struct {
	at   int // index of the media packet whose Push emitted it; -1 = Flush
	kind Kind
	pkt  Packet
	raw  []byte
}

func runEncoder(t *testing.T, cfg Config, media [][]byte) ([]emitted, *Encoder) {
	t.Helper()
	enc, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []emitted
	at := 0
	emit := func(k Kind, b []byte) {
		raw := bytes.Clone(b)
		p, err := ParsePacket(raw)
		if err != nil {
			t.Fatalf("encoder emitted an invalid FEC packet: %v", err)
		}
		if p.Header.Kind != k {
			t.Fatalf("emitted on %s with D bit %s", k, p.Header.Kind)
		}
		out = append(out, emitted{at: at, kind: k, pkt: p, raw: raw})
	}
	for i, m := range media {
		at = i
		if err := enc.Push(m, emit); err != nil {
			t.Fatal(err)
		}
	}
	at = -1
	enc.Flush(emit)
	return out, enc
}

// xorGroup computes the recovery fields of a group by the definition, to
// check the encoder's incremental XOR.
func xorGroup(members [][]byte) (b0, b1 byte, lenRec uint16, ts uint32, payload []byte) {
	for _, m := range members {
		body := m[RTPHeaderLen:]
		b0 ^= m[0] & 0x3f
		b1 ^= m[1]
		lenRec ^= uint16(len(body))
		ts ^= binary.BigEndian.Uint32(m[4:])
		if len(body) > len(payload) {
			payload = append(payload, make([]byte, len(body)-len(payload))...)
		}
		for i := range body {
			payload[i] ^= body[i]
		}
	}
	return
}

// TestEncoderLayout checks every FEC packet of a 2D 4×5 run: which packets
// it protects, when it is emitted (row at the row's end, column c of matrix
// k at packet c×D of matrix k+1), its headers and its XOR.
func TestEncoderLayout(t *testing.T) {
	const l, d = 4, 5
	rng := rand.New(rand.NewPCG(3, 4))
	media := genStream(rng, streamOpts{n: 3*l*d + 7, startSeq: 65500, ssrc: 42, minLen: 10, maxLen: 300, fancy: true})
	cfg := Config{Columns: l, Rows: d, SSRC: 0xfeed, PayloadType: 100, ColumnSeq: 65535, RowSeq: 10}
	out, enc := runEncoder(t, cfg, media)
	var rows, cols int
	colSeq, rowSeq := cfg.ColumnSeq, cfg.RowSeq
	for _, e := range out {
		p := e.pkt
		h := p.Header
		first := int(h.SNBase - 65500)
		var members [][]byte
		switch e.kind {
		case Row:
			if first%l != 0 || h.Offset != 1 || int(h.NA) != l {
				t.Fatalf("row FEC header %+v", h)
			}
			if e.at != first+l-1 {
				t.Errorf("row FEC for %d emitted at packet %d, want %d", first, e.at, first+l-1)
			}
			for i := range l {
				members = append(members, media[first+i])
			}
			if p.SequenceNumber != rowSeq {
				t.Errorf("row FEC seq %d, want %d", p.SequenceNumber, rowSeq)
			}
			rowSeq++
			rows++
		case Column:
			matrix, c := first/(l*d), first%(l*d)
			if c >= l || int(h.Offset) != l || int(h.NA) != d {
				t.Fatalf("column FEC header %+v", h)
			}
			if want := (matrix+1)*l*d + c*d; e.at != want && !(e.at == -1 && want >= len(media)) {
				t.Errorf("column %d of matrix %d emitted at packet %d, want %d", c, matrix, e.at, want)
			}
			for i := range d {
				members = append(members, media[first+i*l])
			}
			if p.SequenceNumber != colSeq {
				t.Errorf("column FEC seq %d, want %d", p.SequenceNumber, colSeq)
			}
			colSeq++
			cols++
		}
		if p.PayloadType != 100 || p.SSRC != 0xfeed {
			t.Errorf("FEC RTP header PT %d SSRC %#x", p.PayloadType, p.SSRC)
		}
		if e.at >= 0 && p.Timestamp != binary.BigEndian.Uint32(media[e.at][4:]) {
			t.Errorf("FEC RTP timestamp %d, want the emitting packet's", p.Timestamp)
		}
		b0, b1, lenRec, ts, payload := xorGroup(members)
		gotB0 := e.raw[0] & 0x3f
		if gotB0 != b0 || p.MarkerRecovery != (b1&0x80 != 0) || h.PTRecovery != b1&0x7f ||
			h.LengthRecovery != lenRec || h.TSRecovery != ts || !bytes.Equal(p.Payload, payload) {
			t.Errorf("%s FEC SNBase %d: recovery fields differ from the XOR of its packets", e.kind, h.SNBase)
		}
	}
	if rows != len(media)/l || cols != 3*l {
		t.Errorf("%d row and %d column FEC packets, want %d and %d", rows, cols, len(media)/l, 3*l)
	}
	st := enc.Stats()
	if st.Media != uint64(len(media)) || st.RowFEC != uint64(rows) || st.ColumnFEC != uint64(cols) || st.Restarts != 0 {
		t.Errorf("stats %+v", st)
	}
	if enc.Config() != cfg {
		t.Error("Config() differs")
	}
}

func TestEncoderModes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	media := genStream(rng, streamOpts{n: 200, ssrc: 1, minLen: 50})
	for _, tc := range []struct {
		cfg        Config
		rows, cols int
	}{
		{Config{Columns: 10, Rows: 10, Mode: ModeColumn}, 0, 20},
		{Config{Columns: 8, Mode: ModeRow}, 25, 0},
		{Config{Columns: 1, Rows: 4, Mode: ModeColumn}, 0, 50},
	} {
		out, _ := runEncoder(t, tc.cfg, media)
		var rows, cols int
		for _, e := range out {
			if e.kind == Row {
				rows++
			} else {
				cols++
			}
			if e.pkt.PayloadType != DefaultPayloadType || e.pkt.SSRC != 0 {
				t.Errorf("default PT/SSRC: %d %d", e.pkt.PayloadType, e.pkt.SSRC)
			}
		}
		if rows != tc.rows || cols != tc.cols {
			t.Errorf("%s %dx%d: %d rows, %d columns; want %d, %d", tc.cfg.Mode, tc.cfg.Columns, tc.cfg.Rows, rows, cols, tc.rows, tc.cols)
		}
	}
}

// TestEncoderRestart: a sequence jump or SSRC change ends the matrix; the
// finished columns still go out, partial groups do not, and the new matrix
// starts at the new packet.
func TestEncoderRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := genStream(rng, streamOpts{n: 37, startSeq: 100, ssrc: 1, minLen: 20}) // 1 matrix + 12
	b := genStream(rng, streamOpts{n: 25, startSeq: 500, ssrc: 1, minLen: 20})
	c := genStream(rng, streamOpts{n: 25, startSeq: 525, ssrc: 2, minLen: 20})
	media := append(append(append([][]byte{}, a...), b...), c...)
	out, enc := runEncoder(t, Config{Columns: 5, Rows: 5}, media)
	var colBases []uint16
	for _, e := range out {
		if e.kind == Column {
			colBases = append(colBases, e.pkt.Header.SNBase)
			// Matrix 100..124 is finished; its columns were due at packets
			// 25, 30, 35 (emitted there) and 40, 45, which the restart at
			// index 37 sends early.
			if e.pkt.Header.SNBase < 103 && e.at != 25+5*int(e.pkt.Header.SNBase-100) {
				t.Errorf("column %d emitted at %d", e.pkt.Header.SNBase, e.at)
			}
			if e.pkt.Header.SNBase >= 103 && e.pkt.Header.SNBase < 105 && e.at != 37 {
				t.Errorf("column %d emitted at %d, want 37 (restart)", e.pkt.Header.SNBase, e.at)
			}
		}
		if e.kind == Row && e.pkt.Header.SNBase == 135 {
			t.Error("partial row 135..136 was sent")
		}
	}
	want := []uint16{100, 101, 102, 103, 104, 500, 501, 502, 503, 504, 525, 526, 527, 528, 529}
	if len(colBases) != len(want) {
		t.Fatalf("column SNBases %v, want %v", colBases, want)
	}
	for i := range want {
		if colBases[i] != want[i] {
			t.Fatalf("column SNBases %v, want %v", colBases, want)
		}
	}
	if st := enc.Stats(); st.Restarts != 2 {
		t.Errorf("Restarts = %d, want 2", st.Restarts)
	}
	// Reset drops the pending columns without emitting them.
	enc.Reset()
	enc.Flush(func(Kind, []byte) { t.Error("Flush after Reset emitted") })
}

func TestEncoderRejects(t *testing.T) {
	enc, _ := NewEncoder(Config{Columns: 4, Rows: 4})
	never := func(Kind, []byte) { t.Error("emitted for a rejected packet") }
	for _, tc := range []struct {
		pkt  []byte
		want string
		is   error
	}{
		{make([]byte, 11), "fec: media packet: 11 bytes, need at least 12", ErrMalformed},
		{append([]byte{0x40}, make([]byte, 20)...), "fec: media packet: RTP version 1, want 2", ErrMalformed},
		{append([]byte{0x80}, make([]byte, 65500)...), "fec: media packet: 65501 bytes, FEC can protect at most 65491", ErrTooLarge},
	} {
		err := enc.Push(tc.pkt, never)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("Push = %v, want %s", err, tc.want)
		}
	}
	if enc.Stats().Media != 0 {
		t.Error("rejected packets were counted")
	}
}

func TestEncoderNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	media := genStream(rng, streamOpts{n: 500, ssrc: 1, minLen: 1316})
	enc, _ := NewEncoder(Config{Columns: 10, Rows: 10})
	sink := func(Kind, []byte) {}
	for _, m := range media[:200] {
		_ = enc.Push(m, sink)
	}
	i := 200
	allocs := testing.AllocsPerRun(200, func() {
		_ = enc.Push(media[i], sink)
		i++
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per Push in steady state", allocs)
	}
}
