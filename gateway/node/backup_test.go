package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/demo"
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

// lockedBuf is a log destination shared with the node's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// selHarness is a real node whose backed-up source's two legs the test
// drives itself (the ingests are built but never started), with a recording
// sink on each of the stream's real hubs.
type selHarness struct {
	t     testing.TB
	n     *Local
	sel   *selector
	sdp   []byte
	trks  []rtp.Track
	sinks []*recSink
	logs  *lockedBuf
	// next input seq/ts per leg and track
	seq [2][2]uint16
	ts  [2][2]uint32
}

var legSSRC = [2]uint32{0x11111111, 0x22222222}

func newSelHarness(t testing.TB, mode string, stall time.Duration) *selHarness {
	t.Helper()
	logs := &lockedBuf{}
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		if t.Failed() {
			t.Logf("node log:\n%s", logs)
		}
	})
	f := Flow{ID: "src", Stream: "st", Kind: SourceDemo, Backup: &Flow{Kind: SourceDemo}, BackupMode: mode, BackupStall: stall}
	n.mu.Lock()
	_, err = n.createSourceLocked(f) // its start is not run: the test is the ingests
	fl := n.flows["src"]
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	clip, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	h := &selHarness{t: t, n: n, sel: fl.sel, sdp: clip.SDP(), trks: clip.Tracks(), logs: logs}
	h.seq = [2][2]uint16{{1000, 3000}, {50000, 60000}}
	h.ts = [2][2]uint32{{90000, 48000}, {7_000_000, 9_000_000}}
	fl.sel.startDriver()
	return h
}

// ready announces both legs with the demo clip's layout and hangs the sinks.
func (h *selHarness) ready() {
	h.t.Helper()
	for i := range h.sel.legs {
		if err := h.sel.legs[i].OnReady(h.sdp, h.trks); err != nil {
			h.t.Fatalf("%s OnReady: %v", legNames[i], err)
		}
	}
	h.hangSinks()
}

func (h *selHarness) hangSinks() {
	h.t.Helper()
	h.sinks = nil
	for i := range h.trks {
		hub, err := h.n.Hub("st", i)
		if err != nil {
			h.t.Fatal(err)
		}
		s := &recSink{}
		hub.AddSink(s)
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
func (h *selHarness) send(leg, track int, key bool) {
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
func (h *selHarness) until(what string, cond func() bool, step func()) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("no %s within 10s; stats %+v", what, h.sel.stats())
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
	h := newSelHarness(t, BackupSwitch, stall)
	h.ready()
	h.send(legPrimary, 0, true)
	for range 9 {
		h.send(legPrimary, 0, false)
		h.send(legPrimary, 1, false)
		h.send(legBackup, 0, false)
		h.send(legBackup, 1, false)
	}
	h.send(legBackup, 0, true)
	if v, a := h.sinks[0].got(), h.sinks[1].got(); len(v) != 10 || len(a) != 9 || legsOf(v) != "p" || legsOf(a) != "p" {
		t.Fatalf("healthy primary: %d video %d audio out (legs %q %q), want 10 and 9 from the primary only", len(v), len(a), legsOf(v), legsOf(a))
	}

	// the primary stalls: the backup is forwarded from its next keyframe on
	h.until("pending switch to the backup", func() bool { return h.sel.pending.Load() == legBackup }, func() {
		h.send(legBackup, 0, false)
		h.send(legBackup, 1, false)
	})
	if v := h.sinks[0].got(); len(v) != 10 {
		t.Fatalf("before the backup's keyframe %d video packets out, want still 10", len(v))
	}
	h.send(legBackup, 0, true)
	for range 5 {
		h.send(legBackup, 0, false)
		h.send(legBackup, 1, false)
	}
	st := h.sel.stats()
	if st.Active != "backup" || st.Switches != 1 || !strings.Contains(st.LastReason, "primary delivered nothing for") || st.LastSwitch.IsZero() {
		t.Fatalf("after the stall: stats %+v", st)
	}
	v := h.sinks[0].got()
	if len(v) != 16 || legsOf(v) != "pb" || v[10].inSeq != h.seq[legBackup][0]-6 {
		t.Fatalf("after the switch: %d video out, legs %q, first backup input seq %d; want 16, \"pb\", the keyframe %d",
			len(v), legsOf(v), v[min(10, len(v)-1)].inSeq, h.seq[legBackup][0]-6)
	}

	// the primary comes back: the stream returns after the hold-down, at the primary's keyframe
	h.until("pending switch back to the primary", func() bool { return h.sel.pending.Load() == legPrimary }, func() {
		h.send(legPrimary, 0, false)
		h.send(legPrimary, 1, false)
		h.send(legBackup, 0, false)
		h.send(legBackup, 1, false)
	})
	if got := legsOf(h.sinks[0].got()); got != "pb" {
		t.Fatalf("before the primary's keyframe the legs out were %q, want \"pb\"", got)
	}
	h.send(legPrimary, 0, true)
	h.send(legPrimary, 1, false)
	h.send(legBackup, 0, false)
	h.send(legPrimary, 0, false)
	st = h.sel.stats()
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
	hub, _ := h.n.Hub("st", 0)
	if e := hub.Stats().Epochs; e < 2 {
		t.Errorf("video hub began %d epochs after the first, want 2 (one per switch)", e)
	}
}

func TestSelectorPrimaryDisconnectSwitchesWithoutStall(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Hour) // only the disconnect can explain a switch
	h.ready()
	h.send(legPrimary, 0, true)
	h.send(legPrimary, 0, false)
	h.sel.legs[legPrimary].OnDisconnect(errors.New("camera gone"))
	h.send(legBackup, 0, false)
	h.send(legBackup, 1, false)
	if got := legsOf(h.sinks[0].got()); got != "p" {
		t.Fatalf("before the backup's keyframe: legs %q", got)
	}
	h.send(legBackup, 0, true)
	h.send(legBackup, 1, false)
	st := h.sel.stats()
	if st.Active != "backup" || st.Switches != 1 || !strings.Contains(st.LastReason, "disconnected") {
		t.Fatalf("stats %+v", st)
	}
	checkRecLine(t, "video", h.sinks[0].got())
	if !strings.Contains(h.logs.String(), "primary disconnected; the backup carries the stream") {
		t.Errorf("no log line about the disconnect")
	}
}

func TestSelectorUnclassifiedCodecSwitchesAtOnce(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Hour)
	// VP8 keyframes are not detected: every packet is a switch point
	h.sdp = []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 VP8/90000\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=control:trackID=1\r\na=rtpmap:97 opus/48000/2\r\n")
	h.trks = []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}, {Media: "audio", PayloadType: 97, ClockRate: 48000}}
	h.ready()
	h.send(legPrimary, 0, false)
	h.sel.legs[legPrimary].OnDisconnect(errors.New("gone"))
	h.send(legBackup, 1, false) // audio does not time switches while there is a video track
	h.send(legBackup, 0, false)
	if got := legsOf(h.sinks[0].got()); got != "pb" {
		t.Fatalf("legs %q, want the backup's first video packet forwarded", got)
	}
}

func TestSelectorRefusesOtherLayoutOnceLogged(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Second)
	if err := h.sel.legs[legPrimary].OnReady(h.sdp, h.trks); err != nil {
		t.Fatal(err)
	}
	one := h.trks[:1]
	for range 3 {
		err := h.sel.legs[legBackup].OnReady(h.sdp, one)
		if err == nil || !strings.Contains(err.Error(), "do not match the stream's") {
			t.Fatalf("backup with 1 track: err %v", err)
		}
	}
	other := []rtp.Track{h.trks[0], {Media: "audio", PayloadType: 0, ClockRate: 8000}}
	if err := h.sel.legs[legBackup].OnReady(h.sdp, other); err == nil {
		t.Fatal("backup with another audio clock rate accepted")
	}
	if n := strings.Count(h.logs.String(), "backup: refusing a leg"); n != 1 {
		t.Errorf("refusal logged %d times, want once", n)
	}
}

func TestSelectorRewritesPayloadType(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Hour)
	if err := h.sel.legs[legPrimary].OnReady(h.sdp, h.trks); err != nil {
		t.Fatal(err)
	}
	sdp := strings.NewReplacer("RTP/AVP 96", "RTP/AVP 98", ":96 ", ":98 ", "RTP/AVP 97", "RTP/AVP 99", ":97 ", ":99 ").Replace(string(h.sdp))
	trks := []rtp.Track{{Media: "video", PayloadType: 98, ClockRate: 90000}, {Media: "audio", PayloadType: 99, ClockRate: 48000}}
	if err := h.sel.legs[legBackup].OnReady([]byte(sdp), trks); err != nil {
		t.Fatalf("backup with other payload types refused: %v", err)
	}
	h.hangSinks()
	h.sel.legs[legPrimary].OnDisconnect(errors.New("gone"))
	h.sel.legs[legBackup].WriteRTP(0, packet(98, 1, 1, 5, legBackup, idr))
	h.sel.legs[legBackup].WriteRTP(1, packet(99, 1, 1, 5, legBackup, aac))
	v, a := h.sinks[0].got(), h.sinks[1].got()
	if len(v) != 1 || len(a) != 1 || v[0].pt != 96 || a[0].pt != 97 {
		t.Fatalf("out: video %+v audio %+v, want one packet each with payload types 96 and 97", v, a)
	}
}

// TestSelectorMergeLosesOnlyWhatBothLost: two copies of one stream, each
// losing its own packets, come out whole except where both lost.
func TestSelectorMergeLosesOnlyWhatBothLost(t *testing.T) {
	h := newSelHarness(t, BackupMerge, time.Second)
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
			h.sel.legs[legPrimary].WriteRTP(0, packet(96, seq, ts, 0xabc, legPrimary, nonIDR))
		}
		if !lostB {
			h.sel.legs[legBackup].WriteRTP(0, packet(96, seq, ts, 0xabc, legBackup, nonIDR))
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
	st := h.sel.stats()
	if st.Mode != BackupMerge || st.Active != "both" || st.Lost != uint64(bothLost) || st.Switches != 0 {
		t.Fatalf("stats %+v, want merge of both with %d lost", st, bothLost)
	}
}

// TestSelectorAutoMergesIdenticalLegs: the primary runs alone for a while,
// then an identical backup joins: auto mode merges, and no packet the
// primary already delivered comes out twice.
func TestSelectorAutoMergesIdenticalLegs(t *testing.T) {
	h := newSelHarness(t, BackupAuto, time.Second)
	h.ready()
	const n = 200
	for i := range n {
		seq, ts := uint16(100+i), uint32(i*3600)
		h.sel.legs[legPrimary].WriteRTP(0, packet(96, seq, ts, 0xabc, legPrimary, nonIDR))
		if i >= 40 && i != 150 {
			h.sel.legs[legBackup].WriteRTP(0, packet(96, seq, ts, 0xabc, legBackup, nonIDR))
		}
	}
	h.until("all packets out", func() bool { return len(h.sinks[0].got()) >= n }, func() {})
	time.Sleep(3 * mergeSkew)
	v := h.sinks[0].got()
	if len(v) != n {
		t.Fatalf("%d packets out, want %d", len(v), n)
	}
	checkRecLine(t, "video", v)
	if st := h.sel.stats(); st.Mode != BackupMerge {
		t.Fatalf("stats %+v, want merge", st)
	}
	if !strings.Contains(h.logs.String(), "packets identical on both legs") {
		t.Error("the decision is not logged")
	}
}

func TestSelectorAutoSwitchesDifferentStreams(t *testing.T) {
	h := newSelHarness(t, BackupAuto, time.Second)
	h.ready()
	for range 3 {
		h.send(legPrimary, 0, false)
		h.send(legBackup, 0, false)
	}
	if st := h.sel.stats(); st.Mode != BackupSwitch || st.Active != "primary" {
		t.Fatalf("stats %+v, want switch mode on the primary", st)
	}
	if !strings.Contains(h.logs.String(), "the legs' SSRCs differ") {
		t.Error("the decision is not logged")
	}
}

func TestValidateBackup(t *testing.T) {
	base := Flow{ID: "f", Stream: "s", Kind: SourcePull, URL: "rtsp://a/b"}
	bad := map[string]func(f *Flow){
		"stall without backup": func(f *Flow) { f.BackupStall = time.Second },
		"mode without backup":  func(f *Flow) { f.BackupMode = BackupMerge },
		"unknown mode":         func(f *Flow) { f.Backup = &Flow{Kind: SourceDemo}; f.BackupMode = "hot" },
		"negative stall":       func(f *Flow) { f.Backup = &Flow{Kind: SourceDemo}; f.BackupStall = -1 },
		"publisher backup":     func(f *Flow) { f.Backup = &Flow{Kind: SourcePublisher, Tracks: make([]rtp.Track, 1)} },
		"pull backup w/o URL":  func(f *Flow) { f.Backup = &Flow{Kind: SourcePull} },
		"backup of a backup":   func(f *Flow) { f.Backup = &Flow{Kind: SourceDemo, Backup: &Flow{Kind: SourceDemo}} },
		"publisher with backup": func(f *Flow) {
			f.Kind = SourcePublisher
			f.Tracks = make([]rtp.Track, 1)
			f.Backup = &Flow{Kind: SourceDemo}
		},
	}
	for name, mod := range bad {
		f := base
		mod(&f)
		if err := f.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f := base
	f.Backup, f.BackupMode, f.BackupStall = &Flow{Kind: SourcePull, URL: "rtsp://c/d"}, BackupSwitch, time.Second
	if err := f.Validate(); err != nil {
		t.Errorf("valid backup refused: %v", err)
	}
	c := f.clone()
	c.Backup.URL = "rtsp://changed"
	if f.Backup.URL != "rtsp://c/d" {
		t.Error("clone shares the backup")
	}
}

// BenchmarkSelectorSwitch is the switch mode packet path: the active leg's
// packets into a real hub with one sink, the other leg's dropped.
func BenchmarkSelectorSwitch(b *testing.B) {
	h := newSelHarness(b, BackupSwitch, time.Hour)
	benchSelector(b, h, func(i int, p, q []byte) {
		h.sel.legs[legPrimary].WriteRTP(0, p)
		h.sel.legs[legBackup].WriteRTP(0, q)
	})
}

// BenchmarkSelectorMerge is the merge mode packet path: both legs' copies
// through the 2022-7 merger into a real hub with one sink.
func BenchmarkSelectorMerge(b *testing.B) {
	h := newSelHarness(b, BackupMerge, time.Hour)
	benchSelector(b, h, func(i int, p, q []byte) {
		h.sel.legs[legPrimary].WriteRTP(0, p)
		copy(q[2:4], p[2:4])
		copy(q[4:12], p[4:12])
		h.sel.legs[legBackup].WriteRTP(0, q)
	})
}

func benchSelector(b *testing.B, h *selHarness, write func(i int, p, q []byte)) {

	for i := range h.sel.legs {
		if err := h.sel.legs[i].OnReady(h.sdp, h.trks); err != nil {
			b.Fatal(err)
		}
	}
	hub, err := h.n.Hub("st", 0)
	if err != nil {
		b.Fatal(err)
	}
	hub.AddSink(discardSink{})
	p := packet(96, 0, 0, 0xabc, legPrimary, nonIDR)
	q := packet(96, 0, 0, 0xdef, legBackup, nonIDR)
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

// TestBackupFlowWithRealIngests applies a demo source backed up by a second demo player (two
// streams with their own SSRCs): both legs run, auto mode settles on switch, the primary feeds
// the hubs, and deleting the flow stops everything (goleak checks the goroutines).
func TestBackupFlowWithRealIngests(t *testing.T) {
	ev := &recEvents{}
	n := newLocal(t, ev)
	f := Flow{ID: "src", Version: 1, Stream: "st", Kind: SourceDemo, Backup: &Flow{Kind: SourceDemo}}
	if _, err := n.Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	var st FlowStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = n.Stats("src"); err != nil {
			t.Fatal(err)
		}
		if st.Backup.Mode == BackupSwitch && st.Packets > 50 && st.Backup.BackupPackets > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want switch mode with both legs delivering", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Backup.Active != "primary" || st.Backup.Switches != 0 || st.Packets > st.Backup.PrimaryPackets {
		t.Fatalf("stats %+v: the primary should carry the stream alone", st)
	}
	ev.mu.Lock()
	readies := len(ev.ready)
	ev.mu.Unlock()
	if readies != 1 {
		t.Errorf("%d SourceReady events, want 1 (the primary; the backup matches its layout)", readies)
	}
	if err := n.Delete(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Hub("st", 0); err == nil {
		t.Error("the stream outlived its source flow")
	}
}

// TestSelectorPrimaryStartGrace: a primary that has not delivered yet is given startGrace, not
// the stall time, before the backup takes over; then the backup does.
func TestSelectorPrimaryStartGrace(t *testing.T) {
	const stall = 50 * time.Millisecond
	h := newSelHarness(t, BackupSwitch, stall)
	h.ready()
	start := time.Now()
	for time.Since(start) < 10*stall {
		h.send(legBackup, 0, true)
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.sel.stats(); st.Switches != 0 || len(h.sinks[0].got()) != 0 {
		t.Fatalf("after %v without the primary: stats %+v, %d packets out; want the primary's start grace", time.Since(start), st, len(h.sinks[0].got()))
	}
	h.until("the backup taking over", func() bool { return h.sel.stats().Active == "backup" }, func() { h.send(legBackup, 0, true) })
	if took := time.Since(start); took < startGrace-stall {
		t.Errorf("the backup took over after %v, before the start grace %v", took, startGrace)
	}
}
