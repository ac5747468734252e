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

// lineState is the receive side of one reader track.
type lineState struct {
	seq   seqLine
	track int
	rtcp  uint64
	stray uint64
	rec   *schedLog // non-nil for the lines whose arrivals may become the floor's schedule
	// srtp: the gateway encrypts this line's payloads (the description keyed the track),
	// so the load header cannot be read; one that can is counted in clear.
	srtp  bool
	clear uint64
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
	l.seq.add(seq, len(b))
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

// onRTCP counts one RTCP datagram of line i; the caller holds g.mu.
func (g *rxGroup) onRTCP(i int) { g.lines[i].rtcp++ }

// snapshot appends a copy of every line's counters to dst and merges the
// group's latency histogram into h.
func (g *rxGroup) snapshot(dst []lineSnap, h *latencyHist) []lineSnap {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.lines {
		l := &g.lines[i]
		s := l.seq.snap()
		s.RTCP, s.Stray, s.Clear = l.rtcp, l.stray, l.clear
		dst = append(dst, s)
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
		g.lines[i].seq = seqLine{}
		g.lines[i].stray = 0
		g.lines[i].rtcp = 0
	}
	g.hist.reset()
}
