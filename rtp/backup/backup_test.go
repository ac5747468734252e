package backup

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
)

// recPkt is one packet a hub delivered, with the marker the test put into
// its payload: which leg sent it and its input sequence number.
type recPkt struct {
	seq   uint16
	ts    uint32
	ssrc  uint32
	pt    uint8
	leg   byte
	inSeq uint16
}

// recSink records what a real hub delivers.
type recSink struct {
	mu   sync.Mutex
	pkts []recPkt
}

func (s *recSink) DeliverRTP(p *rtp.Packet) {
	b := p.Bytes()
	r := recPkt{seq: binary.BigEndian.Uint16(b[2:]), ts: binary.BigEndian.Uint32(b[4:]), ssrc: binary.BigEndian.Uint32(b[8:]), pt: b[1] & 0x7f}
	if len(b) >= 17 { // after the 12-byte header and a 2-byte payload
		r.leg, r.inSeq = b[14], binary.BigEndian.Uint16(b[15:])
	}
	s.mu.Lock()
	s.pkts = append(s.pkts, r)
	s.mu.Unlock()
	p.Release()
}

func (s *recSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

func (s *recSink) got() []recPkt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recPkt(nil), s.pkts...)
}

// harness is a selector whose two legs the test drives itself, in front of
// real hubs with a recording sink each. It plays the owner's part (the
// node's, in gateway/node) as Config.Ready: the first leg up lays the
// stream out, a later one must fit it.
type harness struct {
	t      testing.TB
	sel    *Selector
	hubs   atomic.Pointer[[]*rtp.Hub]
	fwd    atomic.Uint64
	pool   *rtp.Pool
	log    *slog.Logger
	layout []rtp.Track
	codecs []keyframe.Codec
	trks   []rtp.Track
	sinks  []*recSink
	logs   *peertest.LogBuffer
	// next input seq/ts per leg and track
	seq [2][2]uint16
	ts  [2][2]uint32
}

var legSSRC = [2]uint32{0x11111111, 0x22222222}

// demoTracks is the demo clip's layout: H.264 video and AAC audio.
var demoTracks = []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}, {Media: "audio", PayloadType: 97, ClockRate: 48000}}

func newHarness(t testing.TB, mode string, stall time.Duration) *harness {
	t.Helper()
	logs := &peertest.LogBuffer{}
	h := &harness{t: t, pool: rtp.NewPool(), logs: logs, trks: demoTracks, codecs: []keyframe.Codec{keyframe.H264, keyframe.Other},
		log: logs.Logger()}
	h.sel = New(Config{Mode: mode, Stall: stall, Hubs: &h.hubs, Forwarded: &h.fwd, Logger: h.log, Ready: h.onReady})
	h.seq = [2][2]uint16{{1000, 3000}, {50000, 60000}}
	h.ts = [2][2]uint32{{90000, 48000}, {7_000_000, 9_000_000}}
	h.sel.Start()
	t.Cleanup(func() {
		h.sel.Close()
		if hp := h.hubs.Load(); hp != nil {
			for _, hub := range *hp {
				hub.Close()
			}
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return h
}

// onReady is Config.Ready as the node plays it, without its locks.
func (h *harness) onReady(leg int, _ []byte, tracks []rtp.Track) error {
	switch {
	case h.hubs.Load() == nil:
		hubs := make([]*rtp.Hub, len(tracks))
		for i, tr := range tracks {
			hubs[i] = rtp.NewHub(rtp.HubConfig{Track: tr, Pool: h.pool, Logger: h.log})
		}
		h.layout = append([]rtp.Track(nil), tracks...)
		h.hubs.Store(&hubs)
		h.sel.SetTracks(tracks, h.codecs)
	case !Compatible(h.layout, tracks):
		h.sel.Refused(leg)
		return errors.New("the tracks do not match the stream's")
	default:
		h.sel.NewSession(leg)
	}
	h.sel.Leg(leg).Ready(h.codecs)
	return nil
}

// hub returns the stream's hub of track.
func (h *harness) hub(track int) *rtp.Hub {
	h.t.Helper()
	hp := h.hubs.Load()
	if hp == nil || track >= len(*hp) {
		h.t.Fatalf("no hub for track %d", track)
	}
	return (*hp)[track]
}

// ready announces both legs with the demo clip's layout and hangs the sinks.
func (h *harness) ready() {
	h.t.Helper()
	for i := range h.sel.legs {
		if err := h.sel.legs[i].OnReady(nil, h.trks); err != nil {
			h.t.Fatalf("%s OnReady: %v", legNames[i], err)
		}
	}
	h.hangSinks()
}

func (h *harness) hangSinks() {
	h.t.Helper()
	h.sinks = nil
	for i := range h.trks {
		s := &recSink{}
		h.hub(i).AddSink(s)
		h.sinks = append(h.sinks, s)
	}
}

// Payloads: H.264 IDR and non-IDR single NAL units, an AAC frame.
var (
	idr    = []byte{0x65, 0x88}
	nonIDR = []byte{0x41, 0x9a}
	aac    = []byte{0x00, 0x10}
)

// packet builds an RTP packet whose payload starts with nal and carries the
// leg and the input sequence number as a marker.
func packet(pt uint8, seq uint16, ts, ssrc uint32, leg int, nal []byte) []byte {
	b := make([]byte, 12, 32)
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	b = append(b, nal...)
	b = append(b, byte(leg), byte(seq>>8), byte(seq))
	return b
}

// send writes one packet of track on leg (video: IDR when key) and advances
// the leg's line.
func (h *harness) send(leg, track int, key bool) {
	payload := aac
	if track == 0 {
		payload = nonIDR
		if key {
			payload = idr
		}
	}
	pt := h.trks[track].PayloadType
	h.sel.legs[leg].WriteRTP(track, packet(pt, h.seq[leg][track], h.ts[leg][track], legSSRC[leg], leg, payload))
	h.seq[leg][track]++
	h.ts[leg][track] += 3600
}

// until sends on legs every few ms until cond holds (10 s at most).
func (h *harness) until(what string, cond func() bool, step func()) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("no %s within 10s; stats %+v", what, h.sel.Stats())
		}
		step()
		time.Sleep(5 * time.Millisecond)
	}
}

// checkRecLine wants one SSRC, seq +1 per packet and timestamps that never go
// back on a track's output.
func checkRecLine(t *testing.T, name string, p []recPkt) {
	t.Helper()
	for i := 1; i < len(p); i++ {
		a, b := p[i-1], p[i]
		if b.ssrc != a.ssrc || b.seq != a.seq+1 || int32(b.ts-a.ts) < 0 {
			t.Fatalf("%s: packet %d: ssrc %08x seq %d ts %d after ssrc %08x seq %d ts %d", name, i, b.ssrc, b.seq, b.ts, a.ssrc, a.seq, a.ts)
		}
	}
}

func legsOf(p []recPkt) string {
	var b strings.Builder
	for i, r := range p {
		if i == 0 || p[i-1].leg != r.leg {
			b.WriteString(legNames[r.leg][:1])
		}
	}
	return b.String()
}

func TestSelectorSwitchesAtKeyframes(t *testing.T) {
	const stall = 100 * time.Millisecond
	h := newHarness(t, Switch, stall)
	h.ready()
	h.send(LegPrimary, 0, true)
	for range 9 {
		h.send(LegPrimary, 0, false)
		h.send(LegPrimary, 1, false)
		h.send(LegBackup, 0, false)
		h.send(LegBackup, 1, false)
	}
	h.send(LegBackup, 0, true)
	if v, a := h.sinks[0].got(), h.sinks[1].got(); len(v) != 10 || len(a) != 9 || legsOf(v) != "p" || legsOf(a) != "p" {
		t.Fatalf("healthy primary: %d video %d audio out (legs %q %q), want 10 and 9 from the primary only", len(v), len(a), legsOf(v), legsOf(a))
	}

	// the primary stalls: the backup is forwarded from its next keyframe on
	h.until("pending switch to the backup", func() bool { return h.sel.pending.Load() == LegBackup }, func() {
		h.send(LegBackup, 0, false)
		h.send(LegBackup, 1, false)
	})
	if v := h.sinks[0].got(); len(v) != 10 {
		t.Fatalf("before the backup's keyframe %d video packets out, want still 10", len(v))
	}
	h.send(LegBackup, 0, true)
	for range 5 {
		h.send(LegBackup, 0, false)
		h.send(LegBackup, 1, false)
	}
	st := h.sel.Stats()
	if st.Active != "backup" || st.Switches != 1 || !strings.Contains(st.LastReason, "primary delivered nothing for") || st.LastSwitch.IsZero() {
		t.Fatalf("after the stall: stats %+v", st)
	}
	v := h.sinks[0].got()
	if len(v) != 16 || legsOf(v) != "pb" || v[10].inSeq != h.seq[LegBackup][0]-6 {
		t.Fatalf("after the switch: %d video out, legs %q, first backup input seq %d; want 16, \"pb\", the keyframe %d",
			len(v), legsOf(v), v[min(10, len(v)-1)].inSeq, h.seq[LegBackup][0]-6)
	}

	// the primary comes back: the stream returns after the hold-down, at the primary's keyframe
	h.until("pending switch back to the primary", func() bool { return h.sel.pending.Load() == LegPrimary }, func() {
		h.send(LegPrimary, 0, false)
		h.send(LegPrimary, 1, false)
		h.send(LegBackup, 0, false)
		h.send(LegBackup, 1, false)
	})
	if got := legsOf(h.sinks[0].got()); got != "pb" {
		t.Fatalf("before the primary's keyframe the legs out were %q, want \"pb\"", got)
	}
	h.send(LegPrimary, 0, true)
	h.send(LegPrimary, 1, false)
	h.send(LegBackup, 0, false)
	h.send(LegPrimary, 0, false)
	st = h.sel.Stats()
	if st.Active != "primary" || st.Switches != 2 || !strings.Contains(st.LastReason, "primary delivering again for") {
		t.Fatalf("after the recovery: stats %+v", st)
	}
	v, a := h.sinks[0].got(), h.sinks[1].got()
	if legsOf(v) != "pbp" || legsOf(a) != "pbp" {
		t.Fatalf("legs out: video %q audio %q, want \"pbp\"", legsOf(v), legsOf(a))
	}
	checkRecLine(t, "video", v)
	checkRecLine(t, "audio", a)
	if n := strings.Count(h.logs.String(), "backup: switched"); n != 2 {
		t.Errorf("%d switch log lines, want 2", n)
	}
	hub := h.hub(0)
	if e := hub.Stats().Epochs; e < 2 {
		t.Errorf("video hub began %d epochs after the first, want 2 (one per switch)", e)
	}
}

func TestSelectorPrimaryDisconnectSwitchesWithoutStall(t *testing.T) {
	h := newHarness(t, Switch, time.Hour) // only the disconnect can explain a switch
	h.ready()
	h.send(LegPrimary, 0, true)
	h.send(LegPrimary, 0, false)
	h.sel.legs[LegPrimary].OnDisconnect(errors.New("camera gone"))
	h.send(LegBackup, 0, false)
	h.send(LegBackup, 1, false)
	if got := legsOf(h.sinks[0].got()); got != "p" {
		t.Fatalf("before the backup's keyframe: legs %q", got)
	}
	h.send(LegBackup, 0, true)
	h.send(LegBackup, 1, false)
	st := h.sel.Stats()
	if st.Active != "backup" || st.Switches != 1 || !strings.Contains(st.LastReason, "disconnected") {
		t.Fatalf("stats %+v", st)
	}
	checkRecLine(t, "video", h.sinks[0].got())
}

func TestSelectorUnclassifiedCodecSwitchesAtOnce(t *testing.T) {
	h := newHarness(t, Switch, time.Hour)
	// a VP8 and an Opus track: keyframes are not detected, every packet is a switch point
	h.codecs = []keyframe.Codec{keyframe.Other, keyframe.Other}
	h.ready()
	h.send(LegPrimary, 0, false)
	h.sel.legs[LegPrimary].OnDisconnect(errors.New("gone"))
	h.send(LegBackup, 1, false) // audio does not time switches while there is a video track
	h.send(LegBackup, 0, false)
	if got := legsOf(h.sinks[0].got()); got != "pb" {
		t.Fatalf("legs %q, want the backup's first video packet forwarded", got)
	}
}

func TestSelectorRewritesPayloadType(t *testing.T) {
	h := newHarness(t, Switch, time.Hour)
	if err := h.sel.legs[LegPrimary].OnReady(nil, h.trks); err != nil {
		t.Fatal(err)
	}
	trks := []rtp.Track{{Media: "video", PayloadType: 98, ClockRate: 90000}, {Media: "audio", PayloadType: 99, ClockRate: 48000}}
	if err := h.sel.legs[LegBackup].OnReady(nil, trks); err != nil {
		t.Fatalf("backup with other payload types refused: %v", err)
	}
	h.hangSinks()
	h.sel.legs[LegPrimary].OnDisconnect(errors.New("gone"))
	h.sel.legs[LegBackup].WriteRTP(0, packet(98, 1, 1, 5, LegBackup, idr))
	h.sel.legs[LegBackup].WriteRTP(1, packet(99, 1, 1, 5, LegBackup, aac))
	v, a := h.sinks[0].got(), h.sinks[1].got()
	if len(v) != 1 || len(a) != 1 || v[0].pt != 96 || a[0].pt != 97 {
		t.Fatalf("out: video %+v audio %+v, want one packet each with payload types 96 and 97", v, a)
	}
}

// TestSelectorMergeLosesOnlyWhatBothLost: two copies of one stream, each
// losing its own packets, come out whole except where both lost.
func TestSelectorMergeLosesOnlyWhatBothLost(t *testing.T) {
	h := newHarness(t, Merge, time.Second)
	h.ready()
	const n = 300
	bothLost := 0
	for i := range n {
		seq, ts := uint16(65000+i), uint32(i*3600) // wraps
		lostP, lostB := i%3 == 1, i%5 == 2
		if lostP && lostB {
			bothLost++
		}
		if !lostP {
			h.sel.legs[LegPrimary].WriteRTP(0, packet(96, seq, ts, 0xabc, LegPrimary, nonIDR))
		}
		if !lostB {
			h.sel.legs[LegBackup].WriteRTP(0, packet(96, seq, ts, 0xabc, LegBackup, nonIDR))
		}
	}
	want := n - bothLost
	h.until("merged output", func() bool { return len(h.sinks[0].got()) >= want }, func() {})
	time.Sleep(3 * mergeSkew) // anything more would come now
	v := h.sinks[0].got()
	if len(v) != want {
		t.Fatalf("%d packets out, want %d (%d lost on both legs)", len(v), want, bothLost)
	}
	for i := 1; i < len(v); i++ {
		if d := v[i].inSeq - v[i-1].inSeq; d != 1 && d != 2 {
			t.Fatalf("packet %d: input seq %d after %d", i, v[i].inSeq, v[i-1].inSeq)
		}
	}
	st := h.sel.Stats()
	if st.Mode != Merge || st.Active != "both" || st.Lost != uint64(bothLost) || st.Switches != 0 {
		t.Fatalf("stats %+v, want merge of both with %d lost", st, bothLost)
	}
}

// TestSelectorAutoMergesIdenticalLegs: the primary runs alone for a while,
// then an identical backup joins: auto mode merges, and no packet the
// primary already delivered comes out twice.
func TestSelectorAutoMergesIdenticalLegs(t *testing.T) {
	h := newHarness(t, Auto, time.Second)
	h.ready()
	const n = 200
	for i := range n {
		seq, ts := uint16(100+i), uint32(i*3600)
		h.sel.legs[LegPrimary].WriteRTP(0, packet(96, seq, ts, 0xabc, LegPrimary, nonIDR))
		if i >= 40 && i != 150 {
			h.sel.legs[LegBackup].WriteRTP(0, packet(96, seq, ts, 0xabc, LegBackup, nonIDR))
		}
	}
	h.until("all packets out", func() bool { return len(h.sinks[0].got()) >= n }, func() {})
	time.Sleep(3 * mergeSkew)
	v := h.sinks[0].got()
	if len(v) != n {
		t.Fatalf("%d packets out, want %d", len(v), n)
	}
	checkRecLine(t, "video", v)
	if st := h.sel.Stats(); st.Mode != Merge {
		t.Fatalf("stats %+v, want merge", st)
	}
	if !strings.Contains(h.logs.String(), "packets identical on both legs") {
		t.Error("the decision is not logged")
	}
}

func TestSelectorAutoSwitchesDifferentStreams(t *testing.T) {
	h := newHarness(t, Auto, time.Second)
	h.ready()
	for range 3 {
		h.send(LegPrimary, 0, false)
		h.send(LegBackup, 0, false)
	}
	if st := h.sel.Stats(); st.Mode != Switch || st.Active != "primary" {
		t.Fatalf("stats %+v, want switch mode on the primary", st)
	}
	if !strings.Contains(h.logs.String(), "the legs' SSRCs differ") {
		t.Error("the decision is not logged")
	}
}

// BenchmarkSelectorSwitch is the switch mode packet path: the active leg's
// packets into a real hub with one sink, the other leg's dropped.
func BenchmarkSelectorSwitch(b *testing.B) {
	h := newHarness(b, Switch, time.Hour)
	benchSelector(b, h, func(i int, p, q []byte) {
		h.sel.legs[LegPrimary].WriteRTP(0, p)
		h.sel.legs[LegBackup].WriteRTP(0, q)
	})
}

// BenchmarkSelectorMerge is the merge mode packet path: both legs' copies
// through the 2022-7 merger into a real hub with one sink.
func BenchmarkSelectorMerge(b *testing.B) {
	h := newHarness(b, Merge, time.Hour)
	benchSelector(b, h, func(i int, p, q []byte) {
		h.sel.legs[LegPrimary].WriteRTP(0, p)
		copy(q[2:4], p[2:4])
		copy(q[4:12], p[4:12])
		h.sel.legs[LegBackup].WriteRTP(0, q)
	})
}

func benchSelector(b *testing.B, h *harness, write func(i int, p, q []byte)) {

	for i := range h.sel.legs {
		if err := h.sel.legs[i].OnReady(nil, h.trks); err != nil {
			b.Fatal(err)
		}
	}
	h.hub(0).AddSink(discardSink{})
	p := packet(96, 0, 0, 0xabc, LegPrimary, nonIDR)
	q := packet(96, 0, 0, 0xdef, LegBackup, nonIDR)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint16(p[2:], uint16(i))
		binary.BigEndian.PutUint32(p[4:], uint32(i)*3000)
		binary.BigEndian.PutUint16(q[2:], uint16(i+7))
		write(i, p, q)
	}
}

type discardSink struct{}

func (discardSink) DeliverRTP(p *rtp.Packet)  { p.Release() }
func (discardSink) DeliverRTCP(p *rtp.Packet) { p.Release() }

// TestSelectorPrimaryStartGrace: a primary that has not delivered yet is given startGrace, not
// the stall time, before the backup takes over; then the backup does.
func TestSelectorPrimaryStartGrace(t *testing.T) {
	const stall = 50 * time.Millisecond
	h := newHarness(t, Switch, stall)
	h.ready()
	start := time.Now()
	for time.Since(start) < 10*stall {
		h.send(LegBackup, 0, true)
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.sel.Stats(); st.Switches != 0 || len(h.sinks[0].got()) != 0 {
		t.Fatalf("after %v without the primary: stats %+v, %d packets out; want the primary's start grace", time.Since(start), st, len(h.sinks[0].got()))
	}
	h.until("the backup taking over", func() bool { return h.sel.Stats().Active == "backup" }, func() { h.send(LegBackup, 0, true) })
	if took := time.Since(start); took < startGrace-stall {
		t.Errorf("the backup took over after %v, before the start grace %v", took, startGrace)
	}
}
