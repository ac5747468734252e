package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

func dropSeqs(media [][]byte, seqs ...uint16) map[int]bool {
	d := map[int]bool{}
	for i, m := range media {
		s := binary.BigEndian.Uint16(m[2:])
		for _, x := range seqs {
			if s == x {
				d[i] = true
			}
		}
	}
	return d
}

// TestDecoderWrap drops packets on both sides of the 16-bit sequence wrap,
// including a column FEC whose SNBase is before the wrap and members after.
func TestDecoderWrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	media := genStream(rng, streamOpts{n: 400, startSeq: 65400, ssrc: 9, minLen: 100, maxLen: 1000, fancy: true})
	for _, mode := range []Mode{Mode2D, ModeColumn} {
		evs := encodeAll(t, Config{Columns: 6, Rows: 8, Mode: mode}, media)
		// 65532..65535, 0, 1 is a burst of 6 = L across the wrap.
		// Matrices start at 65400+48k; 65496..7 holds the burst, 65490 and
		// 10 are in the matrices before and after it.
		drop := dropSeqs(media, 65532, 65533, 65534, 65535, 0, 1, 10, 65490)
		if mode == Mode2D {
			for _, s := range []uint16{30, 37, 44} { // one per row, next matrix
				drop[int(s-65400)] = true
			}
		}
		res := decodeEvents(t, DecoderConfig{}, evs, drop)
		want := peel(t, evs, drop)
		if len(want) != len(drop) {
			t.Fatalf("%s: test pattern not fully recoverable in theory (%d of %d)", mode, len(want), len(drop))
		}
		checkRecovered(t, media, drop, want, res)
	}
}

// TestDecoderHeaderFields loses one packet that differs from its row in
// every protected header field and in length; it must come back exactly.
func TestDecoderHeaderFields(t *testing.T) {
	enc, _ := NewEncoder(Config{Columns: 4, Rows: 4})
	var evs []event
	var media [][]byte
	emit := func(k Kind, b []byte) { evs = append(evs, event{kind: int(k), data: bytes.Clone(b)}) }
	for i := range 32 {
		body := bytes.Repeat([]byte{byte(i)}, 188)
		var b0 byte
		marker := false
		ts := uint32(90000)
		pt := uint8(96)
		if i == 5 {
			// 2 CSRCs, an extension, padding, marker, another PT and
			// timestamp, and a different length.
			body = []byte{0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 'x', 'y', 'z', 0, 0, 3}
			b0 = 0x20 | 0x10 | 2
			marker, ts, pt = true, 0x12345678, 127
		}
		m := mkMedia(0xabcdef01, uint16(1000+i), ts, marker, pt, b0, body)
		media = append(media, m)
		evs = append(evs, event{kind: evMedia, data: m, index: i})
		_ = enc.Push(m, emit)
	}
	for _, lose := range [][]int{{5}, {5, 6}, {5, 9}, {1, 5, 9, 13}} {
		drop := map[int]bool{}
		for _, i := range lose {
			drop[i] = true
		}
		res := decodeEvents(t, DecoderConfig{}, evs, drop)
		checkRecovered(t, media, drop, drop, res)
	}
}

// TestDecoderLateOriginal: a packet rebuilt before its (reordered)
// original arrives is handed out once; the original gets ErrDuplicate.
func TestDecoderLateOriginal(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	media := genStream(rng, streamOpts{n: 100, ssrc: 5, minLen: 200})
	evs := encodeAll(t, Config{Columns: 5, Rows: 5}, media)
	dec, _ := NewDecoder(DecoderConfig{})
	var held []byte
	var out [][]byte
	for _, ev := range evs {
		switch {
		case ev.kind == evMedia && ev.index == 12:
			held = ev.data // reordered: arrives after its row FEC
			continue
		case ev.kind == evMedia:
			if err := dec.PushMedia(ev.data); err != nil {
				t.Fatal(err)
			}
		default:
			if err := dec.PushFEC(Kind(ev.kind), ev.data); err != nil {
				t.Fatal(err)
			}
			// Push the same FEC packet twice: no effect.
			if err := dec.PushFEC(Kind(ev.kind), ev.data); err != nil {
				t.Fatal(err)
			}
		}
		for p, ok := dec.Recovered(); ok; p, ok = dec.Recovered() {
			out = append(out, bytes.Clone(p))
		}
		if ev.kind == evMedia && ev.index == 20 {
			if err := dec.PushMedia(held); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("late original: %v, want ErrDuplicate", err)
			}
			if err := dec.PushMedia(media[19]); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("repeated packet: %v, want ErrDuplicate", err)
			}
		}
	}
	if len(out) != 1 || !bytes.Equal(out[0], media[12]) {
		t.Fatalf("recovered %d packets, want exactly packet 12", len(out))
	}
	if st := dec.Stats(); st.Recovered != 1 || st.Duplicates != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestDecoderFECFirst: FEC packets that arrive before the media they
// protect wait, and recovery happens when enough media is there.
func TestDecoderFECFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	media := genStream(rng, streamOpts{n: 75, ssrc: 5, minLen: 300, maxLen: 400})
	evs := encodeAll(t, Config{Columns: 5, Rows: 5}, media)
	dec, _ := NewDecoder(DecoderConfig{})
	_ = dec.PushMedia(media[0]) // the sequence line starts here
	for _, ev := range evs {
		if ev.kind != evMedia {
			if err := dec.PushFEC(Kind(ev.kind), ev.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	drop := map[int]bool{3: true, 30: true, 31: true, 32: true, 33: true, 34: true, 36: true, 48: true}
	got := map[int]bool{}
	for i, m := range media[1:] {
		if drop[i+1] {
			continue
		}
		if err := dec.PushMedia(m); err != nil {
			t.Fatal(err)
		}
		for p, ok := dec.Recovered(); ok; p, ok = dec.Recovered() {
			j := int(binary.BigEndian.Uint16(p[2:]) - binary.BigEndian.Uint16(media[0][2:]))
			if !drop[j] || !bytes.Equal(p, media[j]) || got[j] {
				t.Fatalf("recovered index %d wrongly", j)
			}
			got[j] = true
		}
	}
	if len(got) != len(drop) {
		t.Fatalf("recovered %v, want %v", sortedKeys(got), sortedKeys(drop))
	}
	if l, d := dec.Matrix(); l != 5 || d != 5 {
		t.Errorf("Matrix() = %d, %d", l, d)
	}
}

func TestDecoderMalformedFEC(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	media := genStream(rng, streamOpts{n: 30, ssrc: 5, minLen: 100})
	evs := encodeAll(t, Config{Columns: 5, Rows: 5}, media)
	var row, col []byte
	for _, ev := range evs {
		if ev.kind == int(Row) && row == nil {
			row = ev.data
		}
		if ev.kind == int(Column) && col == nil {
			col = ev.data
		}
	}
	dec, _ := NewDecoder(DecoderConfig{MaxPacketSize: 200})
	_ = dec.PushMedia(media[0])
	badL := bytes.Clone(col)
	badL[RTPHeaderLen+13] = 25
	for _, tc := range []struct {
		kind Kind
		pkt  []byte
		want string
		is   error
	}{
		{Column, row, "fec: row FEC packet (D=1) arrived on the column stream; column FEC belongs on media port + 2, row FEC on media port + 4", ErrMalformed},
		{Row, col, "fec: column FEC packet (D=0) arrived on the row stream; column FEC belongs on media port + 2, row FEC on media port + 4", ErrMalformed},
		{Column, badL, "fec: column FEC packet: L=25 out of range 1..20", ErrMalformed},
		{Row, row[:20], "fec: FEC packet: 20 bytes, need at least 28 (12-byte RTP header + 16-byte FEC header)", ErrMalformed},
		{Row, make([]byte, 300), "fec: row FEC packet: 300 bytes exceeds the limit of 216 (MaxPacketSize + 16)", ErrTooLarge},
	} {
		err := dec.PushFEC(tc.kind, tc.pkt)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("PushFEC = %v\nwant %s", err, tc.want)
		}
	}
	if err := dec.PushMedia(make([]byte, 5)); !errors.Is(err, ErrMalformed) {
		t.Errorf("PushMedia(5 bytes) = %v", err)
	}
	st := dec.Stats()
	if st.FEC != 5 || st.FECMalformed != 4 || st.FECUnusable != 1 || st.MediaMalformed != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestDecoderWindow covers eviction (losses counted once they leave the
// window), FEC too old to use, and the RFC 3550 style resync on SSRC
// change and far jumps.
func TestDecoderWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	media := genStream(rng, streamOpts{n: 1200, ssrc: 5, minLen: 50})
	evs := encodeAll(t, Config{Columns: 10, Rows: 10}, media)
	dec, _ := NewDecoder(DecoderConfig{Window: 256})
	var fecs []event
	for _, ev := range evs {
		if ev.kind == evMedia {
			if ev.index%100 != 50 && ev.index%100 != 51 { // two losses in one row and column: lost for good... unless FEC
				_ = dec.PushMedia(ev.data)
			}
		} else {
			fecs = append(fecs, ev)
		}
	}
	// No FEC given: 24 losses; those older than the 256-packet window are
	// counted.
	st := dec.Stats()
	if want := uint64(2 * 9); st.Unrecoverable != want { // x50, x51 for x = 0..8 left the window 944..1199
		t.Errorf("Unrecoverable = %d, want %d", st.Unrecoverable, want)
	}
	// Those FEC packets are now too old.
	if err := dec.PushFEC(Kind(fecs[0].kind), fecs[0].data); err != nil || dec.Stats().FECUnusable != 1 {
		t.Errorf("old FEC: %v, %+v", err, dec.Stats())
	}
	// One packet of another SSRC is ignored; a second, consecutive one
	// starts a new sequence line and counts the 4 still-missing losses.
	other := mkMedia(6, 7, 0, false, 96, 0, []byte("x"))
	if err := dec.PushMedia(other); err != nil {
		t.Fatal(err)
	}
	if st := dec.Stats(); st.Ignored != 1 || st.Resyncs != 0 {
		t.Errorf("after one foreign packet: %+v", st)
	}
	if err := dec.PushMedia(mkMedia(6, 8, 0, false, 96, 0, []byte("y"))); err != nil {
		t.Fatal(err)
	}
	if st := dec.Stats(); st.Resyncs != 1 || st.Unrecoverable != 24 {
		t.Errorf("after resync: %+v", st)
	}
	// A far jump needs confirmation too; a packet behind the window is
	// ignored.
	_ = dec.PushMedia(mkMedia(6, 5000, 0, false, 96, 0, nil))
	_ = dec.PushMedia(mkMedia(6, 9, 0, false, 96, 0, nil))
	_ = dec.PushMedia(mkMedia(6, 60000, 0, false, 96, 0, nil))
	if st := dec.Stats(); st.Resyncs != 1 || st.Ignored != 3 {
		t.Errorf("after unconfirmed jumps: %+v", st)
	}
	_ = dec.PushMedia(mkMedia(6, 60001, 0, false, 96, 0, nil))
	if st := dec.Stats(); st.Resyncs != 2 {
		t.Errorf("after confirmed jump: %+v", st)
	}
	// A big loss within MAX_DROPOUT counts every skipped number.
	before := dec.Stats().Unrecoverable
	_ = dec.PushMedia(mkMedia(6, 60001+1000, 0, false, 96, 0, nil))
	if got := dec.Stats().Unrecoverable - before; got != 999-255 {
		t.Errorf("jump of 1000 counted %d lost so far, want %d", got, 999-255)
	}
}

// TestDecoderOversize: a media packet over MaxPacketSize counts as
// received (never "recovered" as if lost) but cannot help rebuild.
func TestDecoderOversize(t *testing.T) {
	enc, _ := NewEncoder(Config{Columns: 4, Rows: 4})
	var evs []event
	emit := func(k Kind, b []byte) { evs = append(evs, event{kind: int(k), data: bytes.Clone(b)}) }
	var media [][]byte
	for i := range 32 {
		n := 100
		if i == 2 {
			n = 400
		}
		m := mkMedia(1, uint16(i), 0, false, 96, 0, bytes.Repeat([]byte{byte(i)}, n))
		media = append(media, m)
		evs = append(evs, event{kind: evMedia, data: m, index: i})
		_ = enc.Push(m, emit)
	}
	// Index 3 shares a row with the oversize packet 2: not recoverable by
	// row, but its column (3, 7, 11, 15) is intact.
	res := decodeEvents(t, DecoderConfig{MaxPacketSize: 200}, evs, map[int]bool{3: true, 1: true, 5: true})
	checkRecovered(t, media, nil, map[int]bool{3: true, 1: true, 5: true}, res)
	res = decodeEvents(t, DecoderConfig{MaxPacketSize: 200}, evs, map[int]bool{3: true, 7: true})
	// 3 and 7 share column 3; 3's row holds the oversize packet, 7's row
	// rebuilds 7, then column 3 rebuilds 3.
	checkRecovered(t, media, nil, map[int]bool{3: true, 7: true}, res)
	res = decodeEvents(t, DecoderConfig{MaxPacketSize: 200}, evs, map[int]bool{6: true, 10: true})
	// Column 2 holds the oversize packet and row 1 and 2 can each fix their own.
	checkRecovered(t, media, nil, map[int]bool{6: true, 10: true}, res)
	if res.stats.Oversize != 1 {
		t.Errorf("Oversize = %d", res.stats.Oversize)
	}
	res = decodeEvents(t, DecoderConfig{MaxPacketSize: 200}, evs, map[int]bool{3: true, 11: true})
	// 3's row has the oversize packet and 3 shares its column with 11,
	// whose row rebuilds it first; then column 3 has one loss.
	checkRecovered(t, media, nil, map[int]bool{3: true, 11: true}, res)
}

// TestDecoderNoAllocs: steady state with losses and recoveries.
func TestDecoderNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	media := genStream(rng, streamOpts{n: 4000, ssrc: 3, minLen: 1316})
	evs := encodeAll(t, Config{Columns: 10, Rows: 10}, media)
	dec, _ := NewDecoder(DecoderConfig{})
	i := 0
	step := func() {
		for {
			ev := evs[i]
			i++
			if ev.kind == evMedia {
				if ev.index%17 != 0 {
					_ = dec.PushMedia(ev.data)
				}
			} else {
				_ = dec.PushFEC(Kind(ev.kind), ev.data)
			}
			for _, ok := dec.Recovered(); ok; _, ok = dec.Recovered() {
			}
			if ev.kind == evMedia {
				return
			}
		}
	}
	for range 2000 {
		step()
	}
	if allocs := testing.AllocsPerRun(1500, step); allocs != 0 {
		t.Errorf("%.2f allocations per media packet in steady state", allocs)
	}
	if dec.Stats().Recovered == 0 {
		t.Error("nothing recovered")
	}
}

// TestDecoderInconsistent: FEC packets that disagree with the media they
// claim to protect are refused rather than turned into garbage packets.
func TestDecoderInconsistent(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	media := genStream(rng, streamOpts{n: 40, ssrc: 5, minLen: 100, maxLen: 200})
	evs := encodeAll(t, Config{Columns: 4, Mode: ModeRow}, media)
	var row []byte // the FEC of packets 0..3
	for _, ev := range evs {
		if ev.kind == int(Row) {
			row = ev.data
			break
		}
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"length recovery beyond payload", func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[RTPHeaderLen+2:], 0xffff)
			return b
		}},
		{"payload shorter than a member", func(b []byte) []byte { return b[:PacketOverhead+50] }},
		{"CSRC count beyond the packet", func(b []byte) []byte {
			// Rebuild packet 2 with 15 more CSRCs in 2 bytes.
			b[0] ^= 0x0f
			lr := binary.BigEndian.Uint16(b[RTPHeaderLen+2:])
			binary.BigEndian.PutUint16(b[RTPHeaderLen+2:], lr^uint16(len(media[2])-RTPHeaderLen)^2)
			return b
		}},
	} {
		dec, _ := NewDecoder(DecoderConfig{})
		for _, i := range []int{0, 1, 3, 4} {
			_ = dec.PushMedia(media[i])
		}
		bad := tc.mod(bytes.Clone(row))
		if err := dec.PushFEC(Row, bad); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, ok := dec.Recovered(); ok {
			t.Errorf("%s: a packet was rebuilt", tc.name)
		}
		if st := dec.Stats(); st.Inconsistent != 1 || st.Recovered != 0 {
			t.Errorf("%s: stats %+v", tc.name, st)
		}
	}
}

func TestDecoderFECBeforeMedia(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	media := genStream(rng, streamOpts{n: 40, ssrc: 5, minLen: 100})
	evs := encodeAll(t, Config{Columns: 4, Rows: 4}, media)
	dec, _ := NewDecoder(DecoderConfig{})
	for _, ev := range evs {
		if ev.kind != evMedia {
			_ = dec.PushFEC(Kind(ev.kind), ev.data)
		}
	}
	if st := dec.Stats(); st.FECUnusable != st.FEC || st.FEC == 0 {
		t.Errorf("stats %+v", st)
	}
	if l, d := dec.Matrix(); l != 4 || d != 4 {
		t.Errorf("Matrix() = %d, %d", l, d)
	}
}

// TestDecoderUndrained: a caller that never drains loses the oldest
// rebuilt packets, counted, and memory stays bounded.
func TestDecoderUndrained(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	media := genStream(rng, streamOpts{n: 2000, ssrc: 5, minLen: 20})
	evs := encodeAll(t, Config{Columns: 4, Mode: ModeRow}, media)
	dec, _ := NewDecoder(DecoderConfig{Window: 256})
	for _, ev := range evs {
		if ev.kind == evMedia {
			if ev.index%4 != 1 {
				_ = dec.PushMedia(ev.data)
			}
		} else {
			_ = dec.PushFEC(Kind(ev.kind), ev.data)
		}
	}
	st := dec.Stats()
	if st.Recovered != 500 || st.Undelivered != 500-256 {
		t.Errorf("stats %+v", st)
	}
	n := 0
	for _, ok := dec.Recovered(); ok; _, ok = dec.Recovered() {
		n++
	}
	if n != 256/4 { // queued ones still inside the window
		t.Errorf("drained %d", n)
	}
}
