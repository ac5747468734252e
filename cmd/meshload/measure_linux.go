//go:build linux

package main

import (
	"context"
	"fmt"
	"time"
)

// snapshot is every line's counters and the merged latency at one instant.
type snapshot struct {
	lines [][]lineSnap // by group id, then line index
	hist  latencyHist
}

func (rn *runner) snapshot() *snapshot {
	s := &snapshot{lines: make([][]lineSnap, len(rn.groups))}
	for i, g := range rn.groups {
		s.lines[i] = g.snapshot(nil, &s.hist)
	}
	return s
}

func (s *snapshot) line(l readerLine) lineSnap { return s.lines[l.g.id][l.i] }

// cpuMark is the CPU counters at one instant.
type cpuMark struct {
	at      int64 // run clock
	gw, own uint64
	gwErr   error
}

func (rn *runner) mark() cpuMark {
	m := cpuMark{at: rn.clock.now()}
	if rn.cfg.PID > 0 {
		m.gw, m.gwErr = procCPU(rn.cfg.PID)
	}
	m.own, _ = procCPU(0)
	return m
}

// corePercent is the share of one core used between two marks.
func corePercent(ticks uint64, from, to int64) float64 {
	if to <= from {
		return 0
	}
	return 100 * float64(ticks) / clockTicks / (float64(to-from) / 1e9)
}

// window measures the gateway for cfg.Duration and returns the reader whose
// recorded arrivals the floor should replay.
func (rn *runner) window(ctx context.Context) (*reader, error) {
	for _, g := range rn.groups {
		g.resetLatency()
		g.setRecording(true, rn.clock.now())
	}
	rn.logf("measuring for %s", rn.cfg.Duration)
	s0, m0 := rn.snapshot(), rn.mark()
	err := sleepCtx(ctx, rn.cfg.Duration)
	s1, m1 := rn.snapshot(), rn.mark()
	for _, g := range rn.groups {
		g.setRecording(false, 0)
	}
	if err != nil {
		return nil, err
	}
	rep := rn.rep
	secs := float64(m1.at-m0.at) / 1e9
	rep.WindowSeconds = secs

	var best *reader
	var bestRecv, bestLine, bytes uint64
	d, l := &rep.Delivered, &rep.Loss
	routes := newRouteAcc(rn.urls)
	for _, r := range rn.readers {
		var recv, exp, lost uint64
		routes.addReader(r.route)
		for _, rl := range r.lines {
			a, b := s0.line(rl), s1.line(rl)
			w := window(a, b)
			routes.addLine(r.route, rl.track, w)
			recv += w.Received
			exp += w.Expected
			lost += w.Lost
			bytes += w.Bytes
			l.Duplicates += w.Dups
			l.Reorders += w.Reorders
			rep.RTCPPackets += w.RTCP
			rep.StrayPackets += b.Stray - a.Stray
			rep.ClearSRTPPayloads += b.Clear - a.Clear
			bestLine = max(bestLine, w.Received)
			rn.addSilences(r.idx, rl.track, &b.Quiet, m0.at, m1.at)
		}
		d.Packets += recv
		l.Expected += exp
		l.Lost += lost
		if lost > 0 {
			l.ReadersWithLoss++
			l.WorstPercent = max(l.WorstPercent, pct(lost, exp))
		}
		if r.srtp {
			rep.SRTPReaders++
		}
		if r.idx < schedCandidates && (best == nil || recv > bestRecv) {
			best, bestRecv = r, recv
		}
		if gone, err := r.rc.lost(); gone {
			if rep.Disconnected == 0 {
				rn.note(fmt.Sprintf("reader %d lost its connection: %v", r.idx, err))
			}
			rep.Disconnected++
		}
	}
	l.Percent = pct(l.Lost, l.Expected)
	if len(rn.urls) > 1 {
		rep.Routes = routes.report()
	}
	if secs > 0 {
		d.PktPerSec = float64(d.Packets) / secs
		d.BitsPerSec = float64(bytes) * 8 / secs
		d.SourcePktPerSec = float64(bestLine) / secs
	}
	rep.Latency = latencyReport(&s1.hist)
	if rep.SRTPReaders > 0 {
		rep.LatencyUnavailable = fmt.Sprintf("%d of %d readers receive SRTP: their payloads, which carry the send time, are encrypted", rep.SRTPReaders, len(rn.readers))
		if rep.ClearSRTPPayloads > 0 {
			rn.note(fmt.Sprintf("%d packets to SRTP readers carried a clear payload: the gateway did not encrypt them", rep.ClearSRTPPayloads))
		}
	}
	rep.Self = CPUReport{CorePercent: corePercent(m1.own-m0.own, m0.at, m1.at)}
	if rn.cfg.PID > 0 {
		switch {
		case m0.gwErr != nil:
			rn.note("gateway CPU not measured: " + m0.gwErr.Error())
		case m1.gwErr != nil:
			rn.note("gateway CPU not measured: " + m1.gwErr.Error())
		default:
			g := &CPUReport{PID: rn.cfg.PID, CorePercent: corePercent(m1.gw-m0.gw, m0.at, m1.at)}
			if d.Packets > 0 {
				g.USPerPkt = float64(m1.gw-m0.gw) / clockTicks * 1e6 / float64(d.Packets)
			}
			if rss, err := procRSS(rn.cfg.PID); err == nil {
				g.RSSBytes = rss
			}
			rep.Gateway = g
		}
	} else {
		rn.note("gateway CPU figures omitted: no -pid given")
	}
	for _, w := range rn.workers {
		e, t := w.counters()
		rep.RxErrors += e
		rep.Truncated += t
	}
	rep.KeepaliveErrors = rn.ka.errors()
	if d.Packets == 0 && rn.cfg.Readers > 0 {
		rn.note("no media packet was delivered in the window")
	}
	return best, nil
}

// addSilences reports the silences of one reader line that ended inside
// the window [from, to] (clock nanoseconds), the one still going at its end
// included, as wall-clock times.
func (rn *runner) addSilences(reader, track int, q *silenceLog, from, to int64) {
	rep := rn.rep
	add := func(s silence) {
		rep.MaxSilenceMS = max(rep.MaxSilenceMS, float64(s.dur)/1e6)
		rep.Silences = append(rep.Silences, SilenceReport{Reader: reader, Track: track,
			EndUnixMS: rn.clock.base.Add(time.Duration(s.end)).UnixMilli(), MS: float64(s.dur) / 1e6})
	}
	for _, s := range q.e[:min(q.n, maxSilences)] {
		if s.end > from {
			add(s)
		}
	}
	if q.n > maxSilences {
		rep.SilencesDropped += q.n - maxSilences
		rep.MaxSilenceMS = max(rep.MaxSilenceMS, float64(q.longest)/1e6)
	}
	switch {
	case q.last == 0:
		add(silence{end: to, dur: to - from}) // nothing ever arrived
	case to-q.last >= silenceMin:
		add(silence{end: to, dur: to - q.last})
	}
}

// latencyReport summarises a histogram; nil when it holds no sample (no
// load header came through, e.g. readers of the demo).
func latencyReport(h *latencyHist) *LatencyReport {
	if h.total == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return &LatencyReport{Samples: h.total, P50us: us(h.quantile(0.5)), P99us: us(h.quantile(0.99)), MaxUS: us(time.Duration(h.max))}
}

// pct is part in percent of whole, 0 for an empty whole.
func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}
