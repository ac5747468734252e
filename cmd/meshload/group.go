//go:build linux

package main

import (
	"encoding/binary"
	"sync"
)

// schedEntry is one packet of the source's schedule as a reader saw it
// arrive: when (µs since the measuring window began), how big, which track.
type schedEntry struct {
	at    uint32
	size  uint16
	track uint8
}

// schedLog records the first len(e) arrivals of a line. It is preallocated
// so recording in the receive path allocates nothing; when full it stops.
type schedLog struct {
	e []schedEntry
	n int
}

func (s *schedLog) add(at int64, size, track int) {
	if s.n == len(s.e) || at < 0 || at > 1<<32-1 {
		return
	}
	s.e[s.n] = schedEntry{at: uint32(at), size: uint16(min(size, 65535)), track: uint8(track)}
	s.n++
}

// maxSSRCs is how many SSRCs one track accounts on lines of their own. A
// track normally carries one; a second appears when a source is replaced
// without the gateway keeping the line continuous. Packets of further SSRCs
// are counted as stray.
const maxSSRCs = 4

// ssrcLine is the sequence accounting of one SSRC on a track.
type ssrcLine struct {
	ssrc uint32
	seq  seqLine
}

// lineState is the receive side of one reader track.
type lineState struct {
	// seqs[:nseq] are the track's sequence lines, one per SSRC in the order
	// they appeared; cur is the one the last packet went to, looked at first.
	seqs  [maxSSRCs]ssrcLine
	nseq  int
	cur   int
	track int
	rtcp  uint64
	stray uint64
	rec   *schedLog // non-nil for the lines whose arrivals may become the floor's schedule
	// srtp: the gateway encrypts this line's payloads (the description keyed the track),
	// so the load header cannot be read; one that can is counted in clear.
	srtp  bool
	clear uint64
	// quiet records the line's silences (time between two RTP packets of any SSRC)
	// of at least silenceMin, so a long run can tell when its stream stalled.
	quiet silenceLog
}

// silenceMin is the shortest silence between two RTP packets of a line that
// is recorded: a 25 fps stream sends a frame every 40 ms, so 250 ms is six
// frames missing, more than scheduling noise on a loaded machine.
const silenceMin = 250 * int64(1e6)

// maxSilences is how many silences a line records; later ones only raise
// the count and the maximum. Preallocated (4 KiB a line), so recording
// allocates nothing; a 30-minute soak on a loaded machine records ~150.
const maxSilences = 256

// silence is one stretch without packets on a line, in clock nanoseconds.
type silence struct{ end, dur int64 }

// silenceLog is a line's packet arrivals reduced to its silences.
type silenceLog struct {
	last    int64 // arrival of the last RTP packet; 0 before the first
	longest int64
	n       int // silences of at least silenceMin, recorded or not
	e       [maxSilences]silence
}

// arrive notes an RTP packet at now.
func (q *silenceLog) arrive(now int64) {
	if q.last != 0 {
		if d := now - q.last; d >= silenceMin {
			if q.n < maxSilences {
				q.e[q.n] = silence{end: now, dur: d}
			}
			q.n++
			q.longest = max(q.longest, d)
		}
	}
	q.last = now
}

// rxGroup is the receive accounting of the lines one goroutine feeds: a UDP
// receive worker's share of sockets or one TCP reader's connection. The
// feeding goroutine holds mu while it processes a batch; the run takes it to
// snapshot or switch phase, so counters need no atomics and a snapshot is
// consistent across the group's lines.
type rxGroup struct {
	id int

	mu    sync.Mutex
	lines []lineState
	hist  latencyHist

	floor     bool   // the floor runs: count only packets of floorSSRC
	floorSSRC uint32 // the floor's own RTP line, told apart from late gateway packets
	recording bool   // feed the lines' schedLogs
	recBase   int64  // clock time the schedule's offsets count from
}

// addLine adds a line for track, whose payloads are encrypted if srtp, and
// returns its index in the group.
func (g *rxGroup) addLine(track int, rec *schedLog, srtp bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lines = append(g.lines, lineState{track: track, rec: rec, srtp: srtp})
	return len(g.lines) - 1
}

// rtpFields returns an RTP packet's sequence number, SSRC and payload.
func rtpFields(b []byte) (seq uint16, ssrc uint32, payload []byte, ok bool) {
	if len(b) < rtpHdrLen || b[0]>>6 != 2 {
		return 0, 0, nil, false
	}
	off := rtpHdrLen + int(b[0]&0x0f)*4
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return 0, 0, nil, false
		}
		off += 4 + int(binary.BigEndian.Uint16(b[off+2:]))*4
	}
	if len(b) < off {
		return 0, 0, nil, false
	}
	return binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[8:]), b[off:], true
}

// onRTP accounts one RTP datagram of line i received at now. The caller
// holds g.mu. It runs for every packet, so it must not allocate.
func (g *rxGroup) onRTP(i int, b []byte, now int64) {
	l := &g.lines[i]
	seq, ssrc, payload, ok := rtpFields(b)
	if !ok || (g.floor && ssrc != g.floorSSRC) {
		l.stray++
		return
	}
	sl := l.seqFor(ssrc)
	if sl == nil {
		l.stray++
		return
	}
	sl.add(seq, len(b))
	l.quiet.arrive(now)
	if len(payload) >= loadHdrLen && string(payload[:4]) == loadMagic {
		if l.srtp && !g.floor {
			// an SRTP payload that reads as our header was not encrypted (the floor's
			// packets are meshload's own, plain, on the same lines)
			l.clear++
		} else {
			g.hist.add(now - int64(binary.BigEndian.Uint64(payload[4:])))
		}
	}
	if g.recording && l.rec != nil {
		l.rec.add((now-g.recBase)/1000, len(b), l.track)
	}
}

// seqFor returns the sequence line of ssrc, starting one if there is room;
// nil when the track already has maxSSRCs others.
func (l *lineState) seqFor(ssrc uint32) *seqLine {
	if l.nseq > 0 && l.seqs[l.cur].ssrc == ssrc {
		return &l.seqs[l.cur].seq
	}
	for j := range l.nseq {
		if l.seqs[j].ssrc == ssrc {
			l.cur = j
			return &l.seqs[j].seq
		}
	}
	if l.nseq == maxSSRCs {
		return nil
	}
	l.cur = l.nseq
	l.seqs[l.cur] = ssrcLine{ssrc: ssrc}
	l.nseq++
	return &l.seqs[l.cur].seq
}

// snap copies the track's counters.
func (l *lineState) snap() lineSnap {
	s := lineSnap{Seqs: make([]seqSnap, l.nseq), RTCP: l.rtcp, Stray: l.stray, Clear: l.clear, Quiet: l.quiet}
	for j := range s.Seqs {
		q := l.seqs[j].seq.snap()
		q.SSRC = l.seqs[j].ssrc
		s.Seqs[j] = q
		s.Received += q.Received
		s.Bytes += q.Bytes
		s.Dups += q.Dups
	}
	return s
}

// onRTCP counts one RTCP datagram of line i; the caller holds g.mu.
func (g *rxGroup) onRTCP(i int) { g.lines[i].rtcp++ }

// snapshot appends a copy of every line's counters to dst and merges the
// group's latency histogram into h.
func (g *rxGroup) snapshot(dst []lineSnap, h *latencyHist) []lineSnap {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.lines {
		dst = append(dst, g.lines[i].snap())
	}
	h.merge(&g.hist)
	return dst
}

// resetLatency starts a new latency interval (the window's, the floor's).
func (g *rxGroup) resetLatency() {
	g.mu.Lock()
	g.hist.reset()
	g.mu.Unlock()
}

// setRecording turns schedule recording on (offsets counted from base) or off.
func (g *rxGroup) setRecording(on bool, base int64) {
	g.mu.Lock()
	g.recording, g.recBase = on, base
	g.mu.Unlock()
}

// startFloor resets the lines' accounting and from now on counts only the
// floor's packets (SSRC ssrc), so late gateway packets cannot blur it.
func (g *rxGroup) startFloor(ssrc uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.floor, g.floorSSRC = true, ssrc
	for i := range g.lines {
		g.lines[i].seqs = [maxSSRCs]ssrcLine{}
		g.lines[i].nseq, g.lines[i].cur = 0, 0
		g.lines[i].stray = 0
		g.lines[i].rtcp = 0
		g.lines[i].quiet = silenceLog{}
	}
	g.hist.reset()
}
