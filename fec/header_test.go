package fec

import (
	"errors"
	"testing"
)

func validHeader(k Kind) Header {
	h := Header{SNBase: 1000, LengthRecovery: 1316, E: true, PTRecovery: 33, TSRecovery: 0xdeadbeef, Kind: k}
	if k == Column {
		h.Offset, h.NA = 5, 5
	} else {
		h.Offset, h.NA = 1, 5
	}
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{SNBase: 0xfffe, LengthRecovery: 0x1234, E: true, PTRecovery: 0x7f, Mask: 0xabcdef,
		TSRecovery: 0x01020304, N: true, Kind: Row, Type: 5, Index: 6, Offset: 200, NA: 17, SNBaseExt: 9}
	var b [HeaderLen]byte
	if n, err := h.MarshalTo(b[:]); err != nil || n != HeaderLen {
		t.Fatalf("MarshalTo = %d, %v", n, err)
	}
	got, err := ParseHeader(b[:])
	if err != nil || got != h {
		t.Fatalf("ParseHeader(MarshalTo(h)) = %+v, %v; want %+v", got, err, h)
	}
	if _, err := h.MarshalTo(b[:15]); err == nil {
		t.Fatal("MarshalTo into 15 bytes succeeded")
	}
	if _, err := ParseHeader(b[:15]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseHeader(15 bytes) = %v, want ErrMalformed", err)
	}
}

// TestHeaderBytes pins the bit layout against a column FEC header captured
// from FFmpeg 5.1 prompeg (l=5, d=5).
func TestHeaderBytes(t *testing.T) {
	// SNBase 0x0a35, length recovery 0x0524, E=1 PT rec 0x21, mask 0,
	// TS rec 0x024f0404, X=0 D=0 type 0 index 0, offset 5, NA 5, ext 0.
	b := []byte{0x0a, 0x35, 0x05, 0x24, 0xa1, 0, 0, 0, 0x02, 0x4f, 0x04, 0x04, 0x00, 0x05, 0x05, 0x00}
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{SNBase: 0x0a35, LengthRecovery: 0x0524, E: true, PTRecovery: 0x21, TSRecovery: 0x024f0404, Kind: Column, Offset: 5, NA: 5}
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	b[12] = 0x40 // D=1
	b[13] = 1
	if h, _ := ParseHeader(b); h.Kind != Row || h.Offset != 1 {
		t.Fatalf("row header parsed as %+v", h)
	}
}

func TestHeaderValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Header)
		kind Kind
		want string
	}{
		{func(h *Header) { h.E = false }, Column, "fec: column FEC packet: E bit is 0, SMPTE 2022-1 requires 1"},
		{func(h *Header) { h.N = true }, Row, "fec: row FEC packet: N bit (header extension) is 1, SMPTE 2022-1 requires 0"},
		{func(h *Header) { h.Type = 2 }, Column, "fec: column FEC packet: type 2 unsupported, only 0 (XOR)"},
		{func(h *Header) { h.Index = 1 }, Column, "fec: column FEC packet: index 1, XOR requires 0"},
		{func(h *Header) { h.Mask = 0x10 }, Row, "fec: row FEC packet: mask 0x000010, SMPTE 2022-1 requires 0"},
		{func(h *Header) { h.Offset = 25 }, Column, "fec: column FEC packet: L=25 out of range 1..20"},
		{func(h *Header) { h.Offset = 0 }, Column, "fec: column FEC packet: L=0 out of range 1..20"},
		{func(h *Header) { h.NA = 3 }, Column, "fec: column FEC packet: D=3 out of range 4..20"},
		{func(h *Header) { h.NA = 21 }, Column, "fec: column FEC packet: D=21 out of range 4..20"},
		{func(h *Header) { h.Offset, h.NA = 11, 10 }, Column, "fec: column FEC packet: L×D=11×10=110 exceeds 100"},
		{func(h *Header) { h.Offset = 5 }, Row, "fec: row FEC packet: offset 5, must be 1"},
		{func(h *Header) { h.NA = 3 }, Row, "fec: row FEC packet: L=3 out of range 4..20"},
		{func(h *Header) { h.NA = 21 }, Row, "fec: row FEC packet: L=21 out of range 4..20"},
		{func(h *Header) { h.Kind = 3 }, Row, "fec: FEC packet: kind 3 is neither column (0) nor row (1)"},
	} {
		h := validHeader(tc.kind)
		tc.mod(&h)
		err := h.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v\nwant %s", h, err, tc.want)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%v does not wrap ErrMalformed", err)
		}
	}
	for _, h := range []Header{validHeader(Column), validHeader(Row),
		{E: true, Kind: Column, Offset: 1, NA: 4}, {E: true, Kind: Column, Offset: 20, NA: 5},
		{E: true, Kind: Column, Offset: 5, NA: 20}, {E: true, Kind: Row, Offset: 1, NA: 20}, {E: true, SNBaseExt: 3, Kind: Row, Offset: 1, NA: 4}} {
		if err := h.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", h, err)
		}
	}
}

func TestParsePacket(t *testing.T) {
	b := make([]byte, PacketOverhead+4)
	b[0] = 0x80 | 0x20 | 0x10 | 0x03 // V=2, P/X/CC recovery bits
	b[1] = 0x80 | 96
	b[2], b[3] = 0x12, 0x34
	b[11] = 7
	h := validHeader(Row)
	_, _ = h.MarshalTo(b[RTPHeaderLen:])
	copy(b[PacketOverhead:], "abcd")
	p, err := ParsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	if !p.PaddingRecovery || !p.ExtensionRecovery || p.CSRCCountRecovery != 3 || !p.MarkerRecovery ||
		p.PayloadType != 96 || p.SequenceNumber != 0x1234 || p.SSRC != 7 || p.Header != h || string(p.Payload) != "abcd" {
		t.Fatalf("parsed %+v", p)
	}
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{b[:27], "fec: FEC packet: 27 bytes, need at least 28 (12-byte RTP header + 16-byte FEC header)"},
		{append([]byte{0x40}, b[1:]...), "fec: FEC packet: RTP version 1, want 2"},
	} {
		if _, err := ParsePacket(tc.b); err == nil || err.Error() != tc.want || !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePacket = %v, want %s", err, tc.want)
		}
	}
}

func TestConfigLimits(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" = valid
	}{
		{Config{Columns: 5, Rows: 5}, ""},
		{Config{Columns: 4, Rows: 4}, ""},
		{Config{Columns: 20, Rows: 5}, ""},
		{Config{Columns: 5, Rows: 20}, ""},
		{Config{Columns: 10, Rows: 10, PayloadType: 127}, ""},
		{Config{Columns: 1, Rows: 4, Mode: ModeColumn}, ""},
		{Config{Columns: 20, Rows: 5, Mode: ModeColumn}, ""},
		{Config{Columns: 4, Mode: ModeRow}, ""},
		{Config{Columns: 3, Rows: 5}, "fec: encoder config: L=3 out of range 4..20 (2D)"},
		{Config{Columns: 21, Rows: 4}, "fec: encoder config: L=21 out of range 4..20 (2D)"},
		{Config{Columns: 5, Rows: 3}, "fec: encoder config: D=3 out of range 4..20 (2D)"},
		{Config{Columns: 5, Rows: 21}, "fec: encoder config: D=21 out of range 4..20 (2D)"},
		{Config{Columns: 11, Rows: 10}, "fec: encoder config: L×D=11×10=110 exceeds 100"},
		{Config{Columns: 0, Rows: 5, Mode: ModeColumn}, "fec: encoder config: L=0 out of range 1..20 (column-only)"},
		{Config{Columns: 25, Rows: 4, Mode: ModeColumn}, "fec: encoder config: L=25 out of range 1..20 (column-only)"},
		{Config{Columns: 3, Mode: ModeRow}, "fec: encoder config: L=3 out of range 4..20 (row-only)"},
		{Config{Columns: 5, Rows: 5, Mode: ModeRow}, "fec: encoder config: D=5, must be 0 in row-only mode (rows have no column structure)"},
		{Config{Columns: 5, Rows: 5, Mode: 7}, "fec: encoder config: unknown mode 7"},
		{Config{Columns: 5, Rows: 5, PayloadType: 128}, "fec: encoder config: payload type 128 out of range 0..127"},
	} {
		_, err := NewEncoder(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("NewEncoder(%+v) = %v", tc.cfg, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrConfig)):
			t.Errorf("NewEncoder(%+v) = %v\nwant %s", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  DecoderConfig
		want string
	}{
		{DecoderConfig{}, ""},
		{DecoderConfig{Window: 300, MaxPacketSize: 9000}, ""},
		{DecoderConfig{Window: 100}, "fec: decoder config: window 100 out of range 256..16384"},
		{DecoderConfig{Window: 20000}, "fec: decoder config: window 20000 out of range 256..16384"},
		{DecoderConfig{MaxPacketSize: 11}, "fec: decoder config: max packet size 11 out of range 12..65491"},
	} {
		_, err := NewDecoder(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("NewDecoder(%+v) = %v", tc.cfg, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrConfig)):
			t.Errorf("NewDecoder(%+v) = %v\nwant %s", tc.cfg, err, tc.want)
		}
	}
}

func TestKindModeString(t *testing.T) {
	if Column.String() != "column" || Row.String() != "row" || Kind(9).String() != "kind(9)" {
		t.Error("Kind.String")
	}
	if Mode2D.String() != "2D" || ModeColumn.String() != "column-only" || ModeRow.String() != "row-only" || Mode(9).String() != "mode(9)" {
		t.Error("Mode.String")
	}
}
