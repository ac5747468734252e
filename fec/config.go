package fec

import "fmt"

// Mode selects which FEC streams the encoder sends.
type Mode uint8

const (
	// Mode2D sends column and row FEC (4 ≤ L ≤ 20, 4 ≤ D ≤ 20, L×D ≤ 100).
	// It is what FFmpeg's prompeg always sends and GStreamer's default.
	Mode2D Mode = iota
	// ModeColumn sends column FEC only, the standard's 1D mode
	// (1 ≤ L ≤ 20, 4 ≤ D ≤ 20, L×D ≤ 100).
	ModeColumn
	// ModeRow sends row FEC only (4 ≤ L ≤ 20, D unused and 0).  It is not
	// a 2022-1 mode, but GStreamer can send and decode it.
	ModeRow
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Mode2D:
		return "2D"
	case ModeColumn:
		return "column-only"
	case ModeRow:
		return "row-only"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// DefaultPayloadType is the FEC streams' RTP payload type when
// Config.PayloadType is 0; FFmpeg and GStreamer both use 96.
const DefaultPayloadType = 96

// Config configures an Encoder.
type Config struct {
	// Columns is L, the number of consecutive packets in a row.
	Columns int
	// Rows is D, the number of rows in a matrix (0 in ModeRow).
	Rows int
	// Mode selects the FEC streams; the zero value is Mode2D.
	Mode Mode
	// PayloadType of both FEC streams; 0 selects DefaultPayloadType.
	PayloadType uint8
	// SSRC of both FEC streams.  0, the zero value, is what FFmpeg and
	// GStreamer send and expect.
	SSRC uint32
	// ColumnSeq and RowSeq are the first RTP sequence numbers of the column
	// and row FEC streams (RFC 3550 asks for random ones; the caller
	// chooses, so the package stays deterministic).
	ColumnSeq, RowSeq uint16
}

func configError(format string, args ...any) error {
	return &fecError{msg: "encoder config: " + fmt.Sprintf(format, args...), kind: ErrConfig}
}

// validate applies the 2022-1 matrix limits of the chosen mode.
func (c Config) validate() error {
	l, d := c.Columns, c.Rows
	switch c.Mode {
	case Mode2D, ModeColumn:
		minL := MinColumns2D
		if c.Mode == ModeColumn {
			minL = 1
		}
		if l < minL || l > MaxColumns {
			return configError("L=%d out of range %d..%d (%s)", l, minL, MaxColumns, c.Mode)
		}
		if d < MinRows || d > MaxRows {
			return configError("D=%d out of range %d..%d (%s)", d, MinRows, MaxRows, c.Mode)
		}
		if l*d > MaxMatrix {
			return configError("L×D=%d×%d=%d exceeds %d", l, d, l*d, MaxMatrix)
		}
	case ModeRow:
		if l < MinColumns2D || l > MaxColumns {
			return configError("L=%d out of range %d..%d (%s)", l, MinColumns2D, MaxColumns, c.Mode)
		}
		if d != 0 {
			return configError("D=%d, must be 0 in %s mode (rows have no column structure)", d, c.Mode)
		}
	default:
		return configError("unknown mode %d", uint8(c.Mode))
	}
	if c.PayloadType > 127 {
		return configError("payload type %d out of range 0..127", c.PayloadType)
	}
	return nil
}
