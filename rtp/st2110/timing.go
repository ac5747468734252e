package st2110

import (
	"math"
	"time"
)

// Sender types of ST 2110-21 (the fmtp TP= values).
const (
	TPN  = "2110TPN"  // narrow, gapped (idle in vertical blanking)
	TPNL = "2110TPNL" // narrow linear
	TPW  = "2110TPW"  // wide
)

// beta is the drain factor of the network compatibility model (ST 2110-21 §6.3.2).
const beta = 1.1

// Timing are the ST 2110-21 quantities of a video flow sent as NPackets packets per frame.
type Timing struct {
	TP       string
	TFrame   time.Duration
	NPackets int
	// RActive is the active share of the frame time (1 for linear senders).
	RActive float64
	// TRS is the packet spacing, TROffset the first packet's offset from the frame's epoch.
	TRS, TROffset time.Duration
	// CMax and VRXFull are the limits of the sender type.
	CMax, VRXFull int
}

// NewTiming computes the ST 2110-21 model for v sent as tp with npackets packets per frame
// (per field when interlaced), with the standard's RACTIVE and default TROFFSET.
func NewTiming(v *Video, tp string, npackets int) Timing {
	tframe := v.FramePeriod()
	t := Timing{TP: tp, TFrame: tframe, NPackets: npackets, RActive: 1}
	period := tframe
	if v.Interlace {
		period = tframe / 2
	}
	if tp != TPNL {
		switch {
		case v.Interlace && v.Height == 480:
			t.RActive = 487.0 / 525
		case v.Interlace && v.Height == 576:
			t.RActive = 576.0 / 625
		default:
			t.RActive = 1080.0 / 1125
		}
	}
	t.TRS = time.Duration(float64(period) * t.RActive / float64(npackets))
	switch {
	case v.Interlace && v.Height == 1080:
		t.TROffset = tframe * 22 / 1125
	case v.Interlace && v.Height == 480:
		t.TROffset = tframe * 20 / 525
	case v.Interlace && v.Height == 576:
		t.TROffset = tframe * 26 / 625
	case v.Height >= 1080:
		t.TROffset = tframe * 43 / 1125
	default:
		t.TROffset = tframe * 28 / 750
	}
	sec := period.Seconds()
	n := float64(npackets)
	if tp == TPW {
		t.CMax = max(16, int(n/(21600*sec)))
		t.VRXFull = max(720, int(n/(300*sec)))
	} else {
		t.CMax = max(4, int(n/(43200*t.RActive*sec)))
		t.VRXFull = max(8, int(n/(27000*sec)))
	}
	return t
}

// TimingReading is what a TimingMeter measured over the frames it saw.
type TimingReading struct {
	Frames, Packets uint64
	// CInstMax is the largest occupancy of the network compatibility model's bucket (drained
	// at β times the flow's average rate); a compliant sender stays at or below CMax.
	CInstMax int
	// VRXMax is the largest occupancy of the virtual receiver buffer, drained one packet every
	// TRS from each frame's first packet; a compliant sender stays at or below VRXFull.
	VRXMax int
	// CMax and VRXFull are the limits the reading is judged by.
	CMax, VRXFull int
}

// Compliant reports whether the reading stays within the limits.
func (r TimingReading) Compliant() bool { return r.CInstMax <= r.CMax && r.VRXMax <= r.VRXFull }

// TimingMeter computes the ST 2110-21 compliance reading of a received flow from the arrival
// time of each packet. It does not know the sender's PTP epoch, so the virtual receiver starts
// draining at each frame's first packet (what a receiver without a common clock can check).
// One goroutine feeds it; it allocates nothing.
type TimingMeter struct {
	t      Timing
	drain  float64 // ns per packet drained from the bucket
	level  float64 // bucket occupancy
	lastAt int64
	frame0 int64 // first packet of the frame
	inFr   int   // packets of the frame so far
	newFr  bool
	r      TimingReading
}

// NewTimingMeter measures against t.
func NewTimingMeter(t Timing) *TimingMeter {
	m := &TimingMeter{t: t, newFr: true}
	// the bucket drains at β × NPACKETS / (TFRAME × RACTIVE) packets per second
	m.drain = float64(t.TFrame) * t.RActive / (beta * float64(t.NPackets))
	m.r.CMax, m.r.VRXFull = t.CMax, t.VRXFull
	return m
}

// Packet records one packet arriving at ns (any monotonic nanosecond clock); marker is its RTP
// marker (the frame's, or field's, last packet).
func (m *TimingMeter) Packet(ns int64, marker bool) {
	m.r.Packets++
	if m.lastAt != 0 {
		m.level = math.Max(0, m.level-float64(ns-m.lastAt)/m.drain)
	}
	m.level++
	m.lastAt = ns
	if c := int(m.level); c > m.r.CInstMax {
		m.r.CInstMax = c
	}
	if m.newFr {
		m.frame0, m.inFr, m.newFr = ns, 0, false
	}
	m.inFr++
	// drained by now: one at the first packet, then one every TRS
	drained := 1 + int((ns-m.frame0)/int64(m.t.TRS))
	if v := m.inFr - min(drained, m.inFr); v > m.r.VRXMax {
		m.r.VRXMax = v
	}
	if marker {
		m.r.Frames++
		m.newFr = true
	}
}

// Reading returns what was measured so far.
func (m *TimingMeter) Reading() TimingReading { return m.r }
