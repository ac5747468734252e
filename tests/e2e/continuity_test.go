package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	pionrtp "github.com/pion/rtp"
)

// pktRec is one RTP packet as a Go reader saw it.
type pktRec struct {
	seq  uint16
	ts   uint32
	ssrc uint32
	at   time.Time
}

// goReader is an independent RTSP reader (gortsplib's client) that records the RTP header of
// every packet of every track, to check what the gateway's output line looks like on the wire.
type goReader struct {
	t      testing.TB
	c      *gortsplib.Client
	medias []*description.Media
	// clock is each media's RTP clock rate.
	clock []int

	mu      sync.Mutex
	pkts    [][]pktRec
	changed chan struct{}
	done    chan struct{}
	err     error
}

// startGoReader DESCRIBEs, SETUPs every track over transport ("udp" or "tcp") and PLAYs url.
func startGoReader(t testing.TB, url, transport string) *goReader {
	t.Helper()
	var tr gortsplib.Transport
	switch transport {
	case "udp":
		tr = gortsplib.TransportUDP
	case "tcp":
		tr = gortsplib.TransportTCP
	default:
		t.Fatalf("startGoReader: transport %q", transport)
	}
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatalf("startGoReader: %v", err)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, ReadTimeout: 10 * time.Second}
	if err := c.Start2(); err != nil {
		t.Fatalf("go reader start: %v", err)
	}
	r := &goReader{t: t, c: c, changed: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(r.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("go reader DESCRIBE %s: %v", url, err)
	}
	r.medias = desc.Medias
	r.pkts = make([][]pktRec, len(desc.Medias))
	idx := map[*description.Media]int{}
	for i, m := range desc.Medias {
		idx[m] = i
		r.clock = append(r.clock, m.Formats[0].ClockRate())
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("go reader SETUP %s over %s: %v", url, transport, err)
	}
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *pionrtp.Packet) {
		rec := pktRec{seq: p.SequenceNumber, ts: p.Timestamp, ssrc: p.SSRC, at: time.Now()}
		r.mu.Lock()
		r.pkts[idx[m]] = append(r.pkts[idx[m]], rec)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("go reader PLAY %s: %v", url, err)
	}
	go func() {
		err := c.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.done)
	}()
	return r
}

// Close ends the session (idempotent).
func (r *goReader) Close() { r.c.Close() }

// Err returns nil while the session is alive, else why it ended.
func (r *goReader) Err() error {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err == nil {
			return fmt.Errorf("session ended")
		}
		return r.err
	default:
		return nil
	}
}

// track returns the index of the first media of kind ("video", "audio").
func (r *goReader) track(kind string) int {
	for i, m := range r.medias {
		if string(m.Type) == kind {
			return i
		}
	}
	r.t.Fatalf("go reader: no %s media in %d medias", kind, len(r.medias))
	return -1
}

// packets returns a copy of the packets of track received so far.
func (r *goReader) packets(track int) []pktRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pktRec(nil), r.pkts[track]...)
}

// waitFor waits until cond holds on the packets of track, the session ends or timeout passes.
func (r *goReader) waitFor(track int, timeout time.Duration, what string, cond func([]pktRec) bool) {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.pkts[track])
		n := len(r.pkts[track])
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-r.done:
			r.t.Fatalf("go reader: session ended (%v) while waiting for %s (%d packets on track %d)", r.Err(), what, n, track)
		case <-deadline.C:
			r.t.Fatalf("go reader: no %s within %v (%d packets on track %d)", what, timeout, n, track)
		}
	}
}

// waitCount waits until track has at least n packets.
func (r *goReader) waitCount(track, n int, timeout time.Duration) {
	r.t.Helper()
	r.waitFor(track, timeout, fmt.Sprintf("%d packets", n), func(p []pktRec) bool { return len(p) >= n })
}

// settle waits until no track has received a packet for 200 ms (packets still in flight after a
// source died have arrived) and returns the packet counts then.
func (r *goReader) settle(timeout time.Duration) []int {
	r.t.Helper()
	counts := func() []int {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := make([]int, len(r.pkts))
		for i := range r.pkts {
			n[i] = len(r.pkts[i])
		}
		return n
	}
	last, since := counts(), time.Now()
	ok := waitCond(context.Background(), timeout, func() bool {
		if n := counts(); !slices.Equal(n, last) {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 200*time.Millisecond
	})
	if !ok {
		r.t.Fatalf("go reader: packets kept coming for %v after the source stopped", timeout)
	}
	return last
}

// checkSwitch checks the join of two sources in p: packet k is the first of the new source. Its
// timestamp must have advanced by about the arrival gap (±50%, plus 20 ms of scheduling slack);
// SSRC and seq continuity are checkLine's job.
func checkSwitch(t testing.TB, name string, p []pktRec, k, clock int) {
	t.Helper()
	if k <= 0 || k >= len(p) {
		t.Errorf("%s: switch at packet %d of %d", name, k, len(p))
		return
	}
	a, b := p[k-1], p[k]
	gap := b.at.Sub(a.at)
	tsGap := time.Duration(float64(b.ts-a.ts) / float64(clock) * float64(time.Second))
	big := biggestGap(p)
	t.Logf("%s: switch at packet %d: seq %d -> %d, SSRC %08x -> %08x, arrival gap %v, timestamps advanced %v (biggest gap %v at %d)",
		name, k, a.seq, b.seq, a.ssrc, b.ssrc, gap, tsGap, big.gap, big.i)
	if d := tsGap - gap; d < -gap/2-20*time.Millisecond || d > gap/2+20*time.Millisecond {
		t.Errorf("%s: timestamps advanced %v across an outage of %v, want within ±50%%", name, tsGap, gap)
		for j := max(1, k-3); j < min(len(p), k+4); j++ {
			t.Logf("  %s #%d seq %d ts +%d arrival +%v", name, j, p[j].seq, p[j].ts-p[j-1].ts, p[j].at.Sub(p[j-1].at))
		}
	}
}

// outage is the biggest arrival gap in a packet series: packets[i-1] and packets[i].
type outage struct {
	i   int
	gap time.Duration
}

func biggestGap(p []pktRec) outage {
	var o outage
	for i := 1; i < len(p); i++ {
		if g := p[i].at.Sub(p[i-1].at); g > o.gap {
			o = outage{i: i, gap: g}
		}
	}
	return o
}

// checkLine verifies the output line of one track: a single SSRC, every sequence number the
// previous one plus one, and timestamps that never go backwards. It reports every violation
// (at most a few) and returns the number found.
func checkLine(t testing.TB, name string, p []pktRec) int {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 5 {
			t.Errorf(name+": "+format, args...)
		}
	}
	for i := 1; i < len(p); i++ {
		a, b := p[i-1], p[i]
		if b.ssrc != a.ssrc {
			report("packet %d: SSRC %08x after %08x", i, b.ssrc, a.ssrc)
		}
		if b.seq != a.seq+1 {
			report("packet %d: seq %d after %d (gap of %d, %v after the previous packet)", i, b.seq, a.seq, int16(b.seq-a.seq-1), b.at.Sub(a.at))
		}
		if d := int32(b.ts - a.ts); d < 0 {
			report("packet %d: timestamp %d after %d (went back by %d)", i, b.ts, a.ts, -d)
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d violations in all (%d packets)", name, bad, len(p))
	}
	return bad
}

// tcpConnsTo counts established TCP connections from this host to 127.0.0.1:port, read from
// /proc/net/tcp (the client side of each connection: the peer address is the camera's).
func tcpConnsTo(t testing.TB, port int) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatalf("tcpConnsTo: %v", err)
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[0] == "sl" {
			continue
		}
		// fields: sl local_address rem_address st ...; st 01 is ESTABLISHED
		if fields[2] == want && fields[3] == "01" {
			n++
		}
	}
	return n
}

// waitCond polls cond every 50 ms until it holds or timeout passes; it returns whether it held.
func waitCond(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
}

// describeOK reports whether a DESCRIBE of url is answered with 200 OK right now.
func describeOK(url string) bool {
	u, err := base.ParseURL(url)
	if err != nil {
		return false
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second}
	if err := c.Start2(); err != nil {
		return false
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	return err == nil
}

// waitPublished waits until url can be read (a publisher is recording to it).
func waitPublished(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	if !waitCond(context.Background(), timeout, func() bool { return describeOK(url) }) {
		t.Fatalf("%s not readable within %v", url, timeout)
	}
}
