package rtp

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// Writer takes one track's RTP packets: the one per-packet method of every stage of a chain
// (Stage) and of the chain's end (HubInput). b is valid only during the call: a writer that keeps
// a packet copies it. Nothing is returned: a stage counts what it refuses on its flow's counters,
// as there is nobody upstream (a socket's read loop) to hand an error to.
type Writer interface {
	WriteRTP(b []byte)
}

// Stage is one filter of a track's chain (SRTP unprotect, the 2022-7 merge, NACK repair): in
// the spirit of pion/interceptor's Bind, a stage is linked once, when its flow composes the chain,
// to the writer after it, and returns the writer that takes its input (usually itself). Per
// packet a stage then calls the next one through one interface call, where hand-wired code had a
// direct call, and allocates nothing.
//
// A stage that does not fit one method per packet keeps the chain's shape and says how: Merge
// takes each leg at its own writer (Merge.Leg), made once at Bind, and checks SRTP itself
// between its duplicate test and its merge; Merge and nack.Repairer have timers that also write
// into the next stage, serialised with their packets; RTCP does not go through a chain (a relay's
// reports go straight to its hub, NACKs out through the repair's feedback sinks).
//
// The egress side is a chain too, of Sinks (they take the hub's shared *Packet, not a byte
// slice): a stage there is a Sink in front of the sink it was made with (nack.History in front
// of a relay's UDPSink, which protects SRTP in its egress worker; rtpout.Output, which encodes
// FEC, in front of its legs' and FEC's UDPSinks). Those links stay concrete (*UDPSink): the
// stage needs the UDPSink's own methods (a History resends through it), each flow kind has one
// shape, and a Sink interface between them would add a call per packet.
type Stage interface {
	// Bind links the stage to next and returns the stage's input. It is called before the first
	// packet, and again only with the same next or before packets reach the returned writer.
	Bind(next Writer) Writer
}

// Stages are a chain's filters in packet order, before they are bound (Chain, To).
type Stages []Stage

// Chain lists a track's filters in packet order; a nil stage (one the flow does not have, e.g.
// no repair without NACK) is left out. To ends the chain and binds it:
//
//	head := rtp.Chain(unprotect, repair).To(&rtp.HubInput{Hub: hub, ...})
func Chain(stages ...Stage) Stages { return stages }

// To binds the stages, the last first, onto end and returns the chain's head, the writer that
// takes the track's packets.
func (s Stages) To(end Writer) Writer {
	w := end
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != nil {
			w = s[i].Bind(w)
		}
	}
	return w
}

// HubInput is the end of a chain: it writes into a hub and counts on its flow's counters the
// packets and bytes the hub took and the packets it refused (not for being closed). Every
// counter must be set; a flow's tracks share them.
type HubInput struct {
	Hub                    *Hub
	Packets, Bytes, Errors *atomic.Uint64
}

// WriteRTP passes one packet to the hub and counts it.
func (in *HubInput) WriteRTP(b []byte) {
	if err := in.Hub.WriteRTP(b); err != nil {
		if !errors.Is(err, ErrClosed) {
			in.Errors.Add(1)
		}
		return
	}
	in.Packets.Add(1)
	in.Bytes.Add(uint64(len(b)))
}

// Unprotect is the SRTP stage of a received chain: it authenticates each packet, checks the
// replay window and decrypts it (into the context's own buffer, valid until its next call)
// before the next stage; a packet that fails is counted and dropped. A plain chain keeps the
// stage with no context, as it also stamps the flow's last activity.
type Unprotect struct {
	// Ctx is the flow's SRTP context, nil while plain. It is read per packet, as a flow re-pointed
	// with a new key swaps it; the tracks of a flow share it, so one goroutine at a time may use it.
	Ctx *atomic.Pointer[srtp.Unprotector]
	// Errors counts the packets that failed (not from the holder of the key).
	Errors *atomic.Uint64
	// Last is stamped (unix nanos) with every packet that passes.
	Last *atomic.Int64
	next Writer
}

// Bind implements Stage.
func (u *Unprotect) Bind(next Writer) Writer { u.next = next; return u }

// WriteRTP checks one packet and passes it on.
func (u *Unprotect) WriteRTP(b []byte) {
	if b, ok := u.check(b); ok {
		u.next.WriteRTP(b)
	}
}

// check is the stage's work without the passing on: b unprotected, or false if it failed.
func (u *Unprotect) check(b []byte) ([]byte, bool) {
	if un := u.Ctx.Load(); un != nil {
		var err error
		if b, err = un.RTP(b); err != nil {
			u.Errors.Add(1)
			return nil, false
		}
	}
	u.Last.Store(time.Now().UnixNano())
	return b, true
}

// MergeConfig configures a Merge.
type MergeConfig struct {
	// Skew is how long a packet waits for the other leg (merge.Config.Skew; 0: merge.ClassB).
	Skew time.Duration
	// Unprotect checks each number's first copy; its Ctx, Errors and Last are the flow's. It is
	// not bound: the merge calls it between its duplicate test and its merge.
	Unprotect *Unprotect
	// Mu serialises the legs of every track of the flow, which share the flow's SRTP context
	// (Unprotect.Ctx): the two pairs' read goroutines both reach it.
	Mu *sync.Mutex
	// Refill hands packets that come back behind the merged line (merge.Config.Refill) to the
	// next stage too: set it when that stage drops what it already has (a nack.Repairer).
	Refill bool
	// Logger gets stream resets and window overruns; nil means slog.Default().
	Logger *slog.Logger
}

// Merge is the SMPTE 2022-7 stage of a received chain with two legs: each leg enters at its own
// writer (Leg; the chain's head, which Bind returns, is leg 0). A copy of a number the merge
// already has is counted and dropped before any SRTP work: dropping it unchecked is safe, as it
// can only be dropped, and skipping its decryption halves a relay's cost. The first copy is
// checked (so a forged packet on one leg cannot take the place of the genuine copy on the
// other) with the flow's one SRTP context, shared by the legs, so that its replay window and
// rollover counter see every index once, in whichever leg's order it came first; then merged; the merged line goes on in sequence order, from the legs' goroutines or
// from the merge's timer when no later packet comes to release what waits behind a gap.
type Merge struct {
	cfg  MergeConfig
	t    *merge.Timed
	legs [2]mergeLeg
}

// NewMerge returns a merge stage; it starts with Bind.
func NewMerge(cfg MergeConfig) *Merge {
	m := &Merge{cfg: cfg}
	for i := range m.legs {
		m.legs[i] = mergeLeg{m: m, leg: i}
	}
	return m
}

// Bind implements Stage: it makes the merger, whose output is next, and returns leg 0. A merge
// is bound once.
func (m *Merge) Bind(next Writer) Writer {
	skew := m.cfg.Skew
	if skew <= 0 {
		skew = merge.ClassB
	}
	cfg := merge.Config{Skew: skew, Legs: len(m.legs), Logger: m.cfg.Logger, Out: next.WriteRTP}
	if m.cfg.Refill {
		cfg.Refill = cfg.Out
	}
	m.t = merge.NewTimed(cfg, Now)
	return &m.legs[0]
}

// Leg returns the input of leg i (0 or 1).
func (m *Merge) Leg(i int) Writer { return &m.legs[i] }

// Stats returns the merger's counters.
func (m *Merge) Stats() merge.Stats { return m.t.Stats() }

// Close stops the merge's timer and drops what still waits.
func (m *Merge) Close() { m.t.Close() }

// mergeLeg is one leg's input of a Merge.
type mergeLeg struct {
	m   *Merge
	leg int
}

// WriteRTP takes one packet of the leg.
func (l *mergeLeg) WriteRTP(b []byte) {
	m := l.m
	now := Now()
	m.cfg.Mu.Lock()
	defer m.cfg.Mu.Unlock()
	if m.t.Known(l.leg, b, now) {
		return
	}
	b, ok := m.cfg.Unprotect.check(b)
	if !ok {
		return
	}
	m.t.Push(l.leg, b, now)
}
