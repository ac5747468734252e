package rtp

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func outHdr(t *testing.T, b []byte) rtp.Header {
	t.Helper()
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		t.Fatalf("output is not RTP: %v", err)
	}
	return h
}

func TestHubContinuityAcrossRestartAndSSRCChange(t *testing.T) {
	pool := NewPool()
	h := NewHub(HubConfig{Track: Track{Media: "video", PayloadType: 96, ClockRate: 90000}, Pool: pool})
	defer h.Close()
	s := &recSink{}
	h.AddSink(s)

	if _, _, ok := h.NextSeqTS(); ok {
		t.Fatal("NextSeqTS ok before any packet")
	}
	// epoch 1: ssrc 1, seq from 100, ts step 3000
	for i := range 10 {
		if err := h.WriteRTP(mkRTP(1, uint16(100+i), uint32(5000+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	seq, _, ok := h.NextSeqTS()
	if !ok {
		t.Fatal("NextSeqTS not ok")
	}
	time.Sleep(20 * time.Millisecond)
	// epoch 2: explicit restart, same SSRC, seq and ts start elsewhere
	h.SourceRestarted()
	for i := range 10 {
		if err := h.WriteRTP(mkRTP(1, uint16(60000+i), uint32(777+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	// epoch 3: SSRC change without notice
	for i := range 10 {
		if err := h.WriteRTP(mkRTP(2, uint16(5+i), uint32(1e9+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	// epoch 4: a forward seq jump beyond MAX_DROPOUT
	if err := h.WriteRTP(mkRTP(2, 5+10+maxDropout+1, 42, 10)); err != nil {
		t.Fatal(err)
	}

	got, _ := s.snapshot()
	if len(got) != 31 {
		t.Fatalf("got %d packets, want 31", len(got))
	}
	first := outHdr(t, got[0])
	if first.SequenceNumber != seq-10 {
		t.Errorf("NextSeqTS before epoch 2 gave %d, first seq %d", seq, first.SequenceNumber)
	}
	for i := 1; i < len(got); i++ {
		prev, cur := outHdr(t, got[i-1]), outHdr(t, got[i])
		if cur.SSRC != h.SSRC() || cur.SSRC != prev.SSRC {
			t.Fatalf("packet %d: ssrc %x, want %x", i, cur.SSRC, h.SSRC())
		}
		if cur.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: seq %d after %d", i, cur.SequenceNumber, prev.SequenceNumber)
		}
		d := cur.Timestamp - prev.Timestamp
		switch i {
		case 10: // restart after >=20ms: ts advances by wall clock (>= 1800 ticks)
			if d < 1800 || d > 90000 {
				t.Errorf("restart: ts advanced %d, want ~wall clock", d)
			}
		case 20, 30: // immediate switch: at least one tick, not a huge jump
			if d == 0 || d > 9000 {
				t.Errorf("packet %d: ts advanced %d across epoch", i, d)
			}
		default:
			if d != 3000 {
				t.Errorf("packet %d: ts step %d, want 3000", i, d)
			}
		}
		if cur.PayloadType != 96 || len(cur.CSRC) != 0 {
			t.Errorf("header changed: %+v", cur)
		}
	}
	if st := h.Stats(); st.Epochs != 3 || st.PacketsIn != 31 || st.PacketsOut != 31 || st.Invalid != 0 {
		t.Errorf("stats %+v", st)
	}
	next, _, _ := h.NextSeqTS()
	if last := outHdr(t, got[30]); next != last.SequenceNumber+1 {
		t.Errorf("NextSeqTS seq %d, want %d", next, last.SequenceNumber+1)
	}
	h.Close()
	checkNoLeak(t, pool)
}

// TestHubTransparent: a relay hub outputs its upstream hub's line unchanged,
// and when the upstream is replaced (new SSRC, new seq/ts base) it continues
// that line like any hub.
func TestHubTransparent(t *testing.T) {
	pool := NewPool()
	const up = 0xfeedf00d
	h := NewHub(HubConfig{Track: Track{Media: "video", PayloadType: 96, ClockRate: 90000}, Pool: pool, SSRC: up, Transparent: true})
	defer h.Close()
	if h.SSRC() != up {
		t.Fatalf("SSRC %x, want %x", h.SSRC(), up)
	}
	s := &recSink{}
	h.AddSink(s)
	// seq wraps inside the epoch: still identity
	for i := range 10 {
		if err := h.WriteRTP(mkRTP(up, uint16(65530+i), uint32(4e9+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.snapshot()
	for i, b := range got {
		o := outHdr(t, b)
		if o.SSRC != up || o.SequenceNumber != uint16(65530+i) || o.Timestamp != uint32(4e9+3000*i) {
			t.Fatalf("packet %d: ssrc %x seq %d ts %d, want the input line", i, o.SSRC, o.SequenceNumber, o.Timestamp)
		}
	}
	time.Sleep(20 * time.Millisecond)
	// the upstream moved: another hub, another line
	for i := range 5 {
		if err := h.WriteRTP(mkRTP(0x1234, uint16(100+i), uint32(777+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = s.snapshot()
	if len(got) != 15 {
		t.Fatalf("got %d packets, want 15", len(got))
	}
	prev, cur := outHdr(t, got[9]), outHdr(t, got[10])
	if cur.SSRC != up {
		t.Errorf("SSRC after upstream change %x, want %x", cur.SSRC, up)
	}
	if cur.SequenceNumber != prev.SequenceNumber+1 {
		t.Errorf("seq %d after %d", cur.SequenceNumber, prev.SequenceNumber)
	}
	if d := cur.Timestamp - prev.Timestamp; d < 1800 || d > 90000 {
		t.Errorf("ts advanced by %d ticks over >=20ms", d)
	}
	for i := 11; i < 15; i++ {
		a, b := outHdr(t, got[i-1]), outHdr(t, got[i])
		if b.SequenceNumber != a.SequenceNumber+1 || b.Timestamp-a.Timestamp != 3000 {
			t.Errorf("packet %d: seq %d ts %d after seq %d ts %d", i, b.SequenceNumber, b.Timestamp, a.SequenceNumber, a.Timestamp)
		}
	}
	if e := h.Stats().Epochs; e != 1 {
		t.Errorf("epochs %d, want 1", e)
	}
	h.Close()
	checkNoLeak(t, pool)
}

// TestHubFixedSSRC: SSRC without Transparent fixes the SSRC only; offsets
// stay random. Transparent without SSRC falls back to a normal hub.
func TestHubFixedSSRC(t *testing.T) {
	var seqs, tss int
	for range 4 { // random offsets equal to zero four times running: broken
		h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, SSRC: 7})
		s := &recSink{}
		h.AddSink(s)
		if err := h.WriteRTP(mkRTP(7, 1, 1, 4)); err != nil {
			t.Fatal(err)
		}
		got, _ := s.snapshot()
		o := outHdr(t, got[0])
		if o.SSRC != 7 {
			t.Fatalf("SSRC %x, want 7", o.SSRC)
		}
		if o.SequenceNumber == 1 {
			seqs++
		}
		if o.Timestamp == 1 {
			tss++
		}
		h.Close()
	}
	if seqs == 4 || tss == 4 {
		t.Errorf("a fixed-SSRC hub passes seq/ts through")
	}
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Transparent: true, Logger: slog.New(slog.DiscardHandler)})
	defer h.Close()
	if h.SSRC() == 0 || h.transparent {
		t.Errorf("transparent without SSRC: ssrc %x transparent %v", h.SSRC(), h.transparent)
	}
}

func TestHubReorderAndDuplicateKeepEpoch(t *testing.T) {
	h := NewHub(HubConfig{Track: Track{ClockRate: 8000}})
	defer h.Close()
	s := &recSink{}
	h.AddSink(s)
	for _, seq := range []uint16{1000, 1002, 1001, 1002, 1003, 1003 - maxMisorder} {
		if err := h.WriteRTP(mkRTP(9, seq, uint32(seq)*160, 4)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.snapshot()
	base := outHdr(t, got[0]).SequenceNumber
	for i, want := range []int{0, 2, 1, 2, 3, 3 - maxMisorder} {
		if d := int(int16(outHdr(t, got[i]).SequenceNumber - base)); d != want {
			t.Errorf("packet %d: seq offset %d, want %d", i, d, want)
		}
	}
	if e := h.Stats().Epochs; e != 0 {
		t.Errorf("epochs %d, want 0", e)
	}
	// one further back than MAX_MISORDER: new epoch, continues at last+1
	if err := h.WriteRTP(mkRTP(9, 1003-maxMisorder-1, 0, 4)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.snapshot()
	if d := outHdr(t, got[6]).SequenceNumber - base; d != 4 || h.Stats().Epochs != 1 {
		t.Errorf("after big backward jump: offset %d epochs %d", d, h.Stats().Epochs)
	}
}

func TestHubRejectsInvalid(t *testing.T) {
	pool := NewPool()
	h := NewHub(HubConfig{Pool: pool})
	s := &recSink{}
	h.AddSink(s)
	good := mkRTP(1, 1, 1, 8)
	bad := map[string][]byte{
		"short":      good[:11],
		"version":    append([]byte{0x40}, good[1:]...),
		"csrc":       append([]byte{0x8f}, good[1:]...),
		"ext":        append([]byte{0x90}, good[1:13]...),
		"extlen":     append(append([]byte{0x90}, good[1:12]...), 0xbe, 0xde, 0, 9),
		"pad zero":   append(append([]byte{0xa0}, good[1:]...), 0),
		"pad long":   append(append([]byte{0xa0}, good[1:]...), 200),
		"pad no pay": append([]byte{0xa0}, good[1:12]...),
	}
	for name, b := range bad {
		if err := h.WriteRTP(b); !errors.Is(err, ErrInvalidRTP) {
			t.Errorf("%s: err %v, want ErrInvalidRTP", name, err)
		}
	}
	if err := h.WriteRTP(append(append([]byte{0xa0}, good[1:]...), 0, 0, 3)); err != nil {
		t.Errorf("valid padded packet: %v", err)
	}
	if st := h.Stats(); st.Invalid != uint64(len(bad)) || st.PacketsIn != 1 {
		t.Errorf("stats %+v", st)
	}
	h.Close()
	h.Close()
	if err := h.WriteRTP(good); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	checkNoLeak(t, pool)
}

func TestHubSenderReports(t *testing.T) {
	pool := NewPool()
	h := NewHub(HubConfig{Track: Track{Media: "audio", ClockRate: 48000}, Pool: pool, CNAME: "cam1", SRInterval: 50 * time.Millisecond})
	a := &recSink{}
	h.AddSink(a)
	start := time.Now()
	for i := range 3 {
		if err := h.WriteRTP(mkRTP(5, uint16(i), uint32(960*i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	// a second sink gets its own SR right after its first packet
	b := &recSink{}
	h.AddSink(b)
	if err := h.WriteRTP(mkRTP(5, 3, 960*3, 100)); err != nil {
		t.Fatal(err)
	}
	rtpA, rtcpA := a.snapshot()
	rtpB, rtcpB := b.snapshot()
	if len(rtcpA) != 1 || len(rtcpB) != 1 || len(rtpB) != 1 {
		t.Fatalf("SRs: a %d, b %d (b rtp %d)", len(rtcpA), len(rtcpB), len(rtpB))
	}
	pkts, err := rtcp.Unmarshal(rtcpB[0])
	if err != nil {
		t.Fatal(err)
	}
	sr, ok := pkts[0].(*rtcp.SenderReport)
	if !ok || len(pkts) != 2 {
		t.Fatalf("not SR+SDES: %v", pkts)
	}
	sdes := pkts[1].(*rtcp.SourceDescription)
	if sdes.Chunks[0].Items[0].Text != "cam1" || sdes.Chunks[0].Source != h.SSRC() {
		t.Errorf("SDES %+v", sdes)
	}
	last := outHdr(t, rtpA[3])
	if sr.SSRC != h.SSRC() || sr.RTPTime != last.Timestamp || sr.PacketCount != 4 || sr.OctetCount != 400 {
		t.Errorf("SR %+v, last ts %d", sr, last.Timestamp)
	}
	if d := time.Duration(int64(sr.NTPTime-ntpTime(start)) * int64(time.Second) >> 32); d < 0 || d > time.Second {
		t.Errorf("SR NTP %v away from now", d)
	}

	// Through the source's SR: NTP = source NTP + (ts - source RTP)/rate.
	srcNTP := uint64(3_900_000_000) << 32
	src := rtcp.SenderReport{SSRC: 5, NTPTime: srcNTP, RTPTime: 960 * 3}
	raw, _ := src.Marshal()
	if err := h.WriteRTCP(raw); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteRTCP(raw[:10]); err == nil {
		t.Error("truncated RTCP accepted")
	}
	time.Sleep(110 * time.Millisecond) // past the randomised 0.5..1.5 interval
	if err := h.WriteRTP(mkRTP(5, 4, 960*3+48000, 100)); err != nil {
		t.Fatal(err)
	}
	_, rtcpA = a.snapshot()
	if len(rtcpA) != 2 {
		t.Fatalf("periodic SR missing: %d", len(rtcpA))
	}
	pkts, _ = rtcp.Unmarshal(rtcpA[1])
	sr = pkts[0].(*rtcp.SenderReport)
	if want := srcNTP + 1<<32; sr.NTPTime != want {
		t.Errorf("mapped NTP %x, want %x", sr.NTPTime, want)
	}
	h.Close()
	checkNoLeak(t, pool)
}

// chanSink is a bounded sink consumed by a goroutine; its consumer can be
// paused to make it slow.
type chanSink struct {
	ch      chan *Packet
	dropped int
}

func (s *chanSink) DeliverRTP(p *Packet) {
	select {
	case s.ch <- p:
	default:
		s.dropped++
		p.Release()
	}
}
func (s *chanSink) DeliverRTCP(p *Packet) { p.Release() }

func TestHubSlowSinkDropsFastSinkGetsAll(t *testing.T) {
	pool := NewPool()
	h := NewHub(HubConfig{Pool: pool, SRInterval: time.Hour})
	slow := &chanSink{ch: make(chan *Packet, 16)} // never drained until the end
	fast := &recSink{}
	h.AddSink(slow)
	h.AddSink(fast)
	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := h.WriteRTP(mkRTP(1, uint16(i), uint32(i), 20)); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hub blocked on a slow sink")
	}
	if got, _ := fast.snapshot(); len(got) != n {
		t.Errorf("fast sink got %d, want %d", len(got), n)
	}
	if slow.dropped != n-16 {
		t.Errorf("slow sink dropped %d, want %d", slow.dropped, n-16)
	}
	h.RemoveSink(slow)
	close(slow.ch)
	for p := range slow.ch {
		p.Release()
	}
	h.Close()
	checkNoLeak(t, pool)
}

func TestHubAddRemoveSinks(t *testing.T) {
	h := NewHub(HubConfig{})
	a, b := &recSink{}, &recSink{}
	h.AddSink(a)
	h.AddSink(a) // duplicate: still one delivery per packet
	h.AddSink(b)
	_ = h.WriteRTP(mkRTP(1, 1, 1, 1))
	h.RemoveSink(a)
	_ = h.WriteRTP(mkRTP(1, 2, 2, 1))
	h.Close()
	h.AddSink(a) // closed: ignored
	_ = h.WriteRTP(mkRTP(1, 3, 3, 1))
	ra, _ := a.snapshot()
	rb, _ := b.snapshot()
	if len(ra) != 1 || len(rb) != 2 {
		t.Errorf("a got %d (want 1), b got %d (want 2)", len(ra), len(rb))
	}
	if binary.BigEndian.Uint32(rb[1][8:]) != h.SSRC() {
		t.Error("ssrc not rewritten")
	}
}

// TestHubContinuesALine: a hub on another node continues a line that went away: same SSRC, the
// first sequence number a little past the old line's (forward, within what readers take for a
// loss) and the timestamp advanced by the time since the old line's position.
func TestHubContinuesALine(t *testing.T) {
	pool := NewPool()
	track := Track{Media: "video", PayloadType: 96, ClockRate: 90000}
	old := NewHub(HubConfig{Track: track, Pool: pool})
	defer old.Close()
	for i := range 100 {
		if err := old.WriteRTP(mkRTP(0xaaaa, uint16(65500+i), uint32(3000*i), 10)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond / 2)
	}
	pos, ok := old.Line()
	if !ok || pos.SSRC != old.SSRC() || pos.Rate <= 0 {
		t.Fatalf("Line() = %+v, %v", pos, ok)
	}
	time.Sleep(100 * time.Millisecond) // the old node went on sending for a while, then died
	h := NewHub(HubConfig{Track: track, Pool: pool, SSRC: pos.SSRC, Continue: &pos, Logger: slog.New(slog.DiscardHandler)})
	defer h.Close()
	s := &recSink{}
	h.AddSink(s)
	for i := range 3 {
		if err := h.WriteRTP(mkRTP(0xbbbb, uint16(7+i), uint32(5e8+3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.snapshot()
	first := outHdr(t, got[0])
	skip := first.SequenceNumber - pos.NextSeq
	if first.SSRC != pos.SSRC || skip < continueMargin || skip > continueMaxSkip {
		t.Errorf("first packet ssrc %x seq %d, want ssrc %x and seq %d + %d..%d", first.SSRC, first.SequenceNumber, pos.SSRC, pos.NextSeq, continueMargin, continueMaxSkip)
	}
	// 100 ms at 90 kHz is 9000 ticks; allow a loaded machine's scheduling
	if adv := first.Timestamp - pos.NextTS; adv < 9000 || adv > 90000 {
		t.Errorf("timestamp advanced %d ticks over ~100 ms", adv)
	}
	for i := 1; i < len(got); i++ {
		if a, b := outHdr(t, got[i-1]), outHdr(t, got[i]); b.SequenceNumber != a.SequenceNumber+1 || b.Timestamp-a.Timestamp != 3000 {
			t.Errorf("packet %d does not follow %d", i, i-1)
		}
	}
	// a Continue for another SSRC is ignored: a random line
	h2 := NewHub(HubConfig{Track: track, Pool: pool, SSRC: 0x1, Continue: &pos})
	defer h2.Close()
	if h2.cont != nil {
		t.Error("Continue with another SSRC was taken")
	}
	old.Close()
	h.Close()
	h2.Close()
	checkNoLeak(t, pool)
}

// TestHubJoinsAndLeavesKeepList: sinks added while the hub fans out are each delivered every
// packet after their join (the list grows in place, under a reading fan-out), removed ones
// get nothing more, and N joins allocate O(N) bytes (each its entry, plus the list's
// doublings), not a new list each time.
func TestHubJoinsAndLeavesKeepList(t *testing.T) {
	pool := NewPool()
	h := NewHub(HubConfig{Track: Track{Media: "video", PayloadType: 96, ClockRate: 90000}, Pool: pool})
	defer h.Close()
	const n = 2048
	sinks := make([]*recSink, n)
	for i := range sinks {
		sinks[i] = &recSink{}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, s := range sinks {
		h.AddSink(s)
	}
	runtime.ReadMemStats(&after)
	if b := after.TotalAlloc - before.TotalAlloc; b > 256*n {
		t.Errorf("%d joins allocated %d bytes, want at most %d (an entry each plus the list's doublings, not a list per join)", n, b, 256*n)
	}
	for _, s := range sinks[n/2:] {
		h.RemoveSink(s)
	}
	// joins and packets interleaved: the fan-out reads the list while it grows
	extra := make([]*recSink, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range extra {
			extra[i] = &recSink{}
		}
		for _, s := range extra {
			h.AddSink(s)
		}
	}()
	for i := range 50 {
		if err := h.WriteRTP(mkRTP(1, uint16(i), uint32(3000*i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if err := h.WriteRTP(mkRTP(1, 50, 150000, 10)); err != nil {
		t.Fatal(err)
	}
	for i, s := range sinks {
		r, _ := s.snapshot()
		got := len(r)
		if i < n/2 && got != 51 {
			t.Fatalf("kept sink %d got %d packets, want 51", i, got)
		}
		if i >= n/2 && got != 0 {
			t.Fatalf("removed sink %d got %d packets, want 0", i, got)
		}
	}
	for i, s := range extra {
		if r, _ := s.snapshot(); len(r) < 1 || len(r) > 51 {
			t.Fatalf("late sink %d got %d packets, want 1..51 (at least the last)", i, len(r))
		}
	}
}
