//go:build linux

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Timing of the floor phase: after PAUSE the gateway may still flush what it
// had queued; after the floor, the receive workers may still be reading
// (a busy machine can leave them seconds behind), so the floor is counted
// only once the readers' counts stop moving for floorQuiet, or after
// floorDrainMax.
const (
	pauseSettle   = 300 * time.Millisecond
	floorQuiet    = 200 * time.Millisecond
	floorDrainMax = 10 * time.Second
)

// schedMaxRate bounds the packets per second a recorded schedule can hold
// (logs are preallocated from it); a faster source fills the log early and
// the floor replays what was recorded in a loop.
const schedMaxRate = 20000

// maxSchedule is the longest schedule recorded: a minute of arrivals is
// plenty to replay, and it bounds the logs' memory.
const maxSchedule = 60 * time.Second

// schedule merges the recorded arrivals of r's lines into one time-ordered
// schedule and returns it with the length of time it covers.
func (rn *runner) schedule(r *reader) ([]schedEntry, time.Duration) {
	var all []schedEntry
	cut := int64(-1) // with a full log, the schedule ends where that log ends
	for _, rl := range r.lines {
		rl.g.mu.Lock()
		if rec := rl.g.lines[rl.i].rec; rec != nil {
			all = append(all, rec.e[:rec.n]...)
			if rec.n == len(rec.e) && rec.n > 0 {
				last := int64(rec.e[rec.n-1].at)
				if cut < 0 || last < cut {
					cut = last
				}
			}
		}
		rl.g.mu.Unlock()
	}
	slices.SortStableFunc(all, func(a, b schedEntry) int { return cmp.Compare(a.at, b.at) })
	span := min(rn.cfg.Duration, maxSchedule)
	// a window longer than maxSchedule recorded more than one replay cycle holds
	if k, _ := slices.BinarySearchFunc(all, uint32(span/time.Microsecond), func(e schedEntry, at uint32) int { return cmp.Compare(e.at, at) }); k < len(all) {
		all = all[:k]
	}
	if cut >= 0 {
		k := 0
		for k < len(all) && int64(all[k].at) <= cut {
			k++
		}
		all = all[:k]
		span = time.Duration(cut+1) * time.Microsecond
		rn.note(fmt.Sprintf("floor: schedule log full after %s; replayed in a loop", span))
	}
	return all, span
}

// floor pauses the readers and replays the best reader's schedule to all of
// them from a raw sendmmsg loop, for the same length as the window.
func (rn *runner) floor(ctx context.Context, best *reader) error {
	if best == nil {
		return errors.New("floor: no reader to take the schedule from")
	}
	sched, span := rn.schedule(best)
	if len(sched) == 0 {
		return errors.New("floor: not run, the window recorded no packet to replay")
	}
	paused := rn.pauseAll()
	if paused < len(rn.readers) {
		rn.note(fmt.Sprintf("floor: %d readers did not accept PAUSE", len(rn.readers)-paused))
	}
	if err := sleepCtx(ctx, pauseSettle); err != nil {
		return err
	}
	ssrc := rand.Uint32()
	for _, g := range rn.groups {
		g.startFloor(ssrc)
	}
	plan := floorPlan{span: span, dur: rn.cfg.Duration, ssrc: ssrc, sched: sched, local: rn.readers[0].lines[0].ip}
	for _, r := range rn.readers {
		for _, rl := range r.lines {
			for len(plan.targets) <= rl.track {
				plan.targets = append(plan.targets, nil)
			}
			plan.targets[rl.track] = append(plan.targets[rl.track], floorDst{ip: rl.ip, port: rl.rtpPort})
		}
	}
	rn.logf("floor for %s", rn.cfg.Duration)
	m0 := rn.mark()
	res, err := runFloor(ctx, plan, rn.clock)
	m1 := rn.mark()
	if err != nil {
		return err
	}
	s, err := rn.settle(ctx)
	if err != nil {
		return err
	}
	f := &FloorReport{Seconds: res.elapsed.Seconds(), SendFailures: res.failed}
	for _, r := range rn.readers {
		for _, rl := range r.lines {
			ls := s.line(rl)
			exp := res.sent[rl.track]
			f.Sent += exp
			f.Expected += exp
			f.Delivered += ls.Received
			if ls.Received < exp {
				f.Lost += exp - ls.Received
			}
			rn.rep.StrayPackets += ls.Stray
		}
	}
	f.LossPercent = pct(f.Lost, f.Expected)
	if res.elapsed > 0 {
		f.CorePercent = 100 * res.cpu.Seconds() / res.elapsed.Seconds()
	}
	if f.Delivered > 0 {
		f.USPerPkt = float64(res.cpu.Microseconds()) / float64(f.Delivered)
	}
	f.Latency = latencyReport(&s.hist)
	if rn.cfg.PID > 0 && m0.gwErr == nil && m1.gwErr == nil {
		p := corePercent(m1.gw-m0.gw, m0.at, m1.at)
		f.GatewayCorePercent = &p
	}
	rn.rep.Floor = f
	if g := rn.rep.Gateway; g != nil && g.USPerPkt > 0 && f.USPerPkt > 0 {
		rn.rep.Ratio = g.USPerPkt / f.USPerPkt
	}
	return nil
}

// settle waits until no reader line has received anything for floorQuiet
// (at most floorDrainMax) and returns the snapshot taken then.
func (rn *runner) settle(ctx context.Context) (*snapshot, error) {
	total := func(s *snapshot) (n uint64) {
		for _, g := range s.lines {
			for _, l := range g {
				n += l.Received + l.Dups + l.Stray
			}
		}
		return n
	}
	s := rn.snapshot()
	deadline := time.Now().Add(floorDrainMax)
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, floorQuiet); err != nil {
			return nil, err
		}
		next := rn.snapshot()
		if total(next) == total(s) {
			return next, nil
		}
		s = next
	}
	rn.note("floor: readers still receiving " + floorDrainMax.String() + " after the floor ended; counted as they were")
	return s, nil
}
