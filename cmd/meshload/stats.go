//go:build linux

package main

// seenBits is how far back (in sequence numbers) a packet can still be told
// apart as a duplicate or a late reorder. 1024 covers the longest burst the
// gateway queues per reader by default (udp_queue 512) twice over.
const (
	seenBits  = 1024
	seenWords = seenBits / 64
)

// seqLine is the RFC 3550 appendix A.1/A.3 accounting of one RTP stream as
// one reader receives it. Sequence numbers are extended to 64 bits so that
// expected and lost never wrap; a bitmap of recent numbers tells duplicates
// (which RFC 3550 would count as received and so hide losses) from packets
// that merely arrive out of order.
type seqLine struct {
	started  bool
	base     int64 // lowest extended sequence number seen
	max      int64 // highest extended sequence number seen
	received uint64
	bytes    uint64
	dups     uint64
	reorders uint64 // arrived after a higher number, first copy
	late     uint64 // too far behind max to check for duplicates; counted as received
	seen     [seenWords]uint64
}

// extend maps a 16-bit sequence number to the extended number closest to the
// current maximum, which is how a 16-bit wrap is recognised.
func (l *seqLine) extend(seq uint16) int64 {
	return l.max + int64(int16(seq-uint16(l.max)))
}

func (l *seqLine) bit(ext int64) (word int, mask uint64) {
	i := uint64(ext) % seenBits
	return int(i / 64), 1 << (i % 64)
}

// add accounts one packet of size bytes with sequence number seq.
func (l *seqLine) add(seq uint16, size int) {
	if !l.started {
		l.started = true
		l.base, l.max = int64(seq), int64(seq)
		l.received, l.bytes = 1, uint64(size)
		l.seen = [seenWords]uint64{}
		w, m := l.bit(l.max)
		l.seen[w] |= m
		return
	}
	ext := l.extend(seq)
	switch {
	case ext > l.max:
		if ext-l.max >= seenBits {
			l.seen = [seenWords]uint64{}
		} else {
			for s := l.max + 1; s < ext; s++ {
				w, m := l.bit(s)
				l.seen[w] &^= m
			}
		}
		l.max = ext
	case l.max-ext >= seenBits:
		l.late++
		if ext < l.base {
			l.base = ext
		}
		l.received++
		l.bytes += uint64(size)
		return
	default:
		w, m := l.bit(ext)
		if l.seen[w]&m != 0 {
			l.dups++
			return
		}
		l.reorders++
		if ext < l.base {
			l.base = ext
		}
	}
	w, m := l.bit(ext)
	l.seen[w] |= m
	l.received++
	l.bytes += uint64(size)
}

// expected is how many distinct packets the sender sent between the lowest
// and the highest number seen.
func (l *seqLine) expected() uint64 {
	if !l.started {
		return 0
	}
	return uint64(l.max - l.base + 1)
}

// lost is expected minus received; it is never negative because duplicates
// are not counted as received.
func (l *seqLine) lost() uint64 {
	e := l.expected()
	if l.received >= e {
		return 0
	}
	return e - l.received
}

// seqSnap is a copy of one sequence line's counters at an instant.
type seqSnap struct {
	SSRC     uint32
	Started  bool
	Base     int64
	Max      int64
	Received uint64
	Bytes    uint64
	Dups     uint64
	Reorders uint64
	Late     uint64
}

func (l *seqLine) snap() seqSnap {
	return seqSnap{Started: l.started, Base: l.base, Max: l.max, Received: l.received, Bytes: l.bytes,
		Dups: l.dups, Reorders: l.reorders, Late: l.late}
}

// lineSnap is a copy of one reader track's counters at an instant: a
// sequence line per SSRC seen on it, in the order they appeared, and the
// track's totals.
type lineSnap struct {
	Seqs     []seqSnap
	Received uint64 // summed over Seqs
	Bytes    uint64 // summed over Seqs
	Dups     uint64 // summed over Seqs
	RTCP     uint64
	Stray    uint64 // RTP that is not the stream being measured (wrong SSRC in the floor, malformed, SSRCs beyond maxSSRCs)
	Clear    uint64 // packets of an SRTP line whose payload was not encrypted
	Quiet    silenceLog
}

// lineWindow is what one line did between two snapshots.
type lineWindow struct {
	Expected, Received, Lost, Bytes, Dups, Reorders, RTCP uint64
	SSRCs                                                 int // sequence lines that received in the window
}

// seqWindow returns the counters of one sequence line over the interval
// from a to b. Expected is the advance of the highest sequence number, so
// packets lost at the start of the interval are counted even though none of
// them arrived; a line that started inside the interval counts from its
// first packet.
func seqWindow(a, b seqSnap) lineWindow {
	if !b.Started {
		return lineWindow{}
	}
	w := lineWindow{
		Received: b.Received - a.Received,
		Bytes:    b.Bytes - a.Bytes,
		Dups:     b.Dups - a.Dups,
		Reorders: b.Reorders - a.Reorders,
	}
	if a.Started {
		w.Expected = uint64(b.Max - a.Max)
	} else {
		w.Expected = uint64(b.Max - b.Base + 1)
	}
	// A packet from before the interval that arrives late inside it adds to Received but not to
	// Expected, so Received may exceed Expected by the reorders straddling the edge.
	if w.Received < w.Expected {
		w.Lost = w.Expected - w.Received
	}
	if w.Received > 0 {
		w.SSRCs = 1
	}
	return w
}

// window returns what a track did from a to b: each SSRC's sequence line
// accounted on its own (a new SSRC starts a line of its own rather than
// showing as a jump in one line), then summed. Lines keep their order, so b's
// lines extend a's.
func window(a, b lineSnap) lineWindow {
	var w lineWindow
	for j, sb := range b.Seqs {
		var sa seqSnap
		if j < len(a.Seqs) && a.Seqs[j].SSRC == sb.SSRC {
			sa = a.Seqs[j]
		}
		s := seqWindow(sa, sb)
		w.Expected += s.Expected
		w.Received += s.Received
		w.Lost += s.Lost
		w.Bytes += s.Bytes
		w.Dups += s.Dups
		w.Reorders += s.Reorders
		w.SSRCs += s.SSRCs
	}
	w.RTCP = b.RTCP - a.RTCP
	return w
}
