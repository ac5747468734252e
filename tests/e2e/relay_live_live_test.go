package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// SMPTE 2022-7 on relay links (control.relay_live_live), end to end: node-a sends the relay to
// node-b on two networks at once (leg A on the data network, eth0/br0; leg B on the live-live
// network, eth1/br1), node-b merges the legs by sequence number, and a reader on player 2 sees
// what either leg delivered. Loss is made with nftables on the hub's port facing node-a, per leg,
// and measured three ways: tshark on each of node-b's interfaces (what each leg delivered), tshark
// on player 2 (what the reader got) and the drop rules' own counters.

// llDataPort is the nodes' rtsp.rtp_port in the cluster: relays go to and come from it.
const llDataPort = 8000

// legLoss drops relay packets from node-a to node-b on either leg, with nftables in the hub
// namespace: a netdev ingress chain on the hub's port facing node-a on each bridge. There, what
// node-a sends is already cut into single packets (node-a's interfaces get gso_max_segs 1), so a
// rule drops packets one by one, unseen by the sender (a drop at node-a's own output hook would
// fail its sendmsg with EPERM and take whole GSO datagrams) and before node-b's captures look.
type legLoss struct {
	t   *testing.T
	hub *peertest.Host
	c   *cluster
}

// The legs, as legLoss and llCapture number them.
const (
	legA = 0 // data_address network (eth0, br0)
	legB = 1 // live_live_address network (eth1, br1)
)

var legNames = [2]string{"A", "B"}

// newLegLoss readies the drop chains (empty) and makes the packets crossing the legs and to the
// readers of node-b single datagrams (see segmentGSO).
func newLegLoss(t *testing.T, c *cluster) *legLoss {
	t.Helper()
	if !c.a.Addr2.IsValid() || !c.b.Addr2.IsValid() {
		t.Fatal("newLegLoss: node-a and node-b need the second network")
	}
	segmentGSO(t, c.a, c.a.Dev, c.a.Dev2)
	segmentGSO(t, c.b, c.b.Dev)
	l := &legLoss{t: t, hub: c.nn.HubHost(), c: c}
	l.nft(fmt.Sprintf(`table netdev mgwll {
  chain legA { type filter hook ingress device "%s" priority 0; policy accept; }
  chain legB { type filter hook ingress device "%s" priority 0; policy accept; }
}
`, c.a.Port, c.a.Port2))
	return l
}

// segmentGSO sets gso_max_segs 1 on h's devices, so the kernel cuts a UDP GSO datagram (meshgw
// sends runs of equal-size packets as one) into packets before the veth: rules and captures
// beyond it see every RTP packet as a frame of its own. It changes nothing meshgw sees.
func segmentGSO(t *testing.T, h *peertest.Host, devs ...string) {
	t.Helper()
	for _, d := range devs {
		out, err := exec.Command("ip", "-n", h.Name, "link", "set", "dev", d, "gso_max_segs", "1").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: gso_max_segs 1 on %s: %v: %s", h, d, err, out)
		}
	}
}

func (l *legLoss) nft(script string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.hub.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("nft in the hub: %v: %s\nscript:\n%s", err, out, script)
	}
	return string(out)
}

// set makes leg drop the relay packets to node-b that match the nft expression match (with ""
// every one: the leg is cut), replacing what the leg dropped before. Examples: "numgen random mod
// 10 0" (10 % at random), "numgen inc mod 250 < 5" (bursts of 5 every 250 packets).
func (l *legLoss) set(leg int, match string) {
	l.t.Helper()
	dst := l.c.b.Addr
	if leg == legB {
		dst = l.c.b.Addr2
	}
	l.nft(fmt.Sprintf("flush chain netdev mgwll leg%s\nadd rule netdev mgwll leg%s ip daddr %s udp dport %d %s counter drop\n",
		legNames[leg], legNames[leg], dst, llDataPort, match))
}

// clear stops leg's loss.
func (l *legLoss) clear(leg int) {
	l.t.Helper()
	l.nft(fmt.Sprintf("flush chain netdev mgwll leg%s\n", legNames[leg]))
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+)`)

// dropped is the packets leg's current rule has dropped.
func (l *legLoss) dropped(leg int) int {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.hub.Command(ctx, "nft", "list", "chain", "netdev", "mgwll", "leg"+legNames[leg]).CombinedOutput()
	if err != nil {
		l.t.Fatalf("nft list chain: %v: %s", err, out)
	}
	n := 0
	for _, m := range nftCounterRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// captureLeg runs tshark on dev of host h for d: the RTP arriving at the data port from src.
func captureLeg(ctx context.Context, t *testing.T, h *peertest.Host, dev string, src netip.Addr, d time.Duration) *peertest.Proc {
	t.Helper()
	return captureFilter(ctx, t, h, dev, fmt.Sprintf("udp dst port %d and src host %s", llDataPort, src), d)
}

// captureFilter runs tshark on dev of host h for d with a capture filter, printing the fields
// parseCapture reads (UDP decoded as RTP). It is captureOn with -l: tshark's stdout and stderr
// share one pipe, and without a flush per packet its closing "N packets captured" can land
// inside a buffered line, which parseCapture then drops as garbage: one packet that looks lost.
func captureFilter(ctx context.Context, t *testing.T, h *peertest.Host, dev, filter string, d time.Duration) *peertest.Proc {
	t.Helper()
	return h.Run(ctx, t, "tshark", "-l", "-n", "-i", dev, "-a", fmt.Sprintf("duration:%d", int(d.Seconds())),
		"-f", filter, "-d", "udp.port==1024-65535,rtp",
		"-T", "fields", "-E", "separator=,", "-E", "aggregator=|", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "rtp.ssrc", "-e", "rtp.seq", "-e", "udp.dstport", "-e", "udp.length")
}

// llCaptures are the three captures of one measurement: leg A and leg B arriving at node-b, and
// the reader on player 2.
type llCaptures struct {
	legs   [2]*peertest.Proc
	reader *peertest.Proc
}

// startLLCaptures starts the captures, for d each.
func (c *cluster) startLLCaptures(ctx context.Context, d time.Duration) llCaptures {
	c.t.Helper()
	return llCaptures{
		legs: [2]*peertest.Proc{
			captureLeg(ctx, c.t, c.b, c.b.Dev, c.a.Addr, d),
			captureLeg(ctx, c.t, c.b, c.b.Dev2, c.a.Addr2, d),
		},
		reader: captureFilter(ctx, c.t, c.p2, c.p2.Dev, fmt.Sprintf("udp and src port %d", llDataPort), d),
	}
}

// llCounts compares, sequence number by sequence number, what each leg delivered to node-b with
// what the reader got, over the window all three captures cover (a few packets in from its
// edges), all SSRCs together.
type llCounts struct {
	window    int // sequence numbers inside the window
	lost      [2]int
	both      int    // lost on both legs
	late      [2]int // arrived on the leg after a later sequence number (a retransmission)
	bothFirst int    // not on time on either leg: lost on both at the first try
	reader    int    // missing at the reader
	notBoth   int    // of those, delivered by at least one leg
	bothGot   int    // lost on both legs, yet at the reader (a repair, or a capture that missed one)
	ssrcs     int    // SSRCs at the reader
	legPkts   [2]int
	readPkts  int
	bigFrames int // frames over 1480 bytes of UDP (an unsegmented GSO datagram)
	maxGap    time.Duration
	lineMiss  int // lineReport's missing count for the reader
	readerSeq []string
}

func (n llCounts) String() string {
	pct := func(k int) string { return fmt.Sprintf("%d (%.2f %%)", k, 100*float64(k)/float64(max(n.window, 1))) }
	return fmt.Sprintf("window %d seqs over %d SSRCs; leg A lost %s, leg B lost %s, both %s; late (resent) on A %d, on B %d; not on time on either leg %s; reader missed %s (%d of them delivered by a leg), %d lost on both yet at the reader; packets: leg A %d, leg B %d, reader %d; reader's largest silence %v",
		n.window, n.ssrcs, pct(n.lost[legA]), pct(n.lost[legB]), pct(n.both), n.late[legA], n.late[legB], pct(n.bothFirst), pct(n.reader), n.notBoth, n.bothGot,
		n.legPkts[legA], n.legPkts[legB], n.readPkts, n.maxGap.Round(time.Millisecond))
}

// llEdge is how many sequence numbers in from each end of the common window are looked at: the
// captures start and stop a moment apart, and the reader's packets trail the legs' by the merge.
const llEdge = 5

// results waits for the captures and counts.
func (cs llCaptures) results(t *testing.T, c *cluster) llCounts {
	t.Helper()
	var legs [2][]rtpSeen
	for i, p := range cs.legs {
		legs[i] = parseCapture(result(p, 60*time.Second))
	}
	var reader []rtpSeen
	for _, p := range parseCapture(result(cs.reader, 60*time.Second)) {
		if p.src == c.b.Addr.String() {
			reader = append(reader, p)
		}
	}
	return countLL(t, legs, reader)
}

// countLL does the counting of results.
func countLL(t *testing.T, legs [2][]rtpSeen, reader []rtpSeen) llCounts {
	t.Helper()
	var n llCounts
	n.readPkts = len(reader)
	_, n.maxGap, n.lineMiss, n.ssrcs = lineReport(t, reader)
	// Sequence numbers are made wide relative to the reader's first packet of each SSRC; every
	// capture spans far less than half the 16-bit space.
	ref := map[string]int{}
	for _, p := range reader {
		if _, ok := ref[p.ssrc]; !ok {
			ref[p.ssrc] = p.seq
		}
	}
	wide := func(p rtpSeen) int { r := ref[p.ssrc]; return r + int(int16(uint16(p.seq-r))) }
	type line struct {
		seen, late map[int]bool
		lo, hi     int
		anything   bool
	}
	lines := func(pkts []rtpSeen) map[string]*line {
		m := map[string]*line{}
		for _, p := range pkts {
			if p.len > 1480 {
				n.bigFrames++
			}
			if _, ok := ref[p.ssrc]; !ok {
				continue // an SSRC the reader never saw: not compared
			}
			l := m[p.ssrc]
			if l == nil {
				l = &line{seen: map[int]bool{}, late: map[int]bool{}}
				m[p.ssrc] = l
			}
			s := wide(p)
			if l.anything && s < l.hi && !l.seen[s] {
				l.late[s] = true // the captures are in arrival order
			}
			l.seen[s] = true
			if !l.anything || s < l.lo {
				l.lo = s
			}
			if !l.anything || s > l.hi {
				l.hi = s
			}
			l.anything = true
		}
		return m
	}
	r := lines(reader)
	var lg [2]map[string]*line
	for i := range legs {
		n.legPkts[i] = len(legs[i])
		lg[i] = lines(legs[i])
	}
	ssrcs := make([]string, 0, len(r))
	for s := range r {
		ssrcs = append(ssrcs, s)
	}
	sort.Strings(ssrcs)
	for _, ssrc := range ssrcs {
		rl, a, b := r[ssrc], lg[legA][ssrc], lg[legB][ssrc]
		if a == nil || b == nil {
			t.Errorf("SSRC %s at the reader, but leg A has %v and leg B %v of it", ssrc, a != nil, b != nil)
			continue
		}
		lo, hi := max(rl.lo, a.lo, b.lo)+llEdge, min(rl.hi, a.hi, b.hi)-llEdge
		var missing, notBoth, bothGot []int
		for s := lo; s <= hi; s++ {
			n.window++
			la, lb, lr := !a.seen[s], !b.seen[s], !rl.seen[s]
			if la {
				n.lost[legA]++
			}
			if lb {
				n.lost[legB]++
			}
			if a.late[s] {
				n.late[legA]++
			}
			if b.late[s] {
				n.late[legB]++
			}
			if (la || a.late[s]) && (lb || b.late[s]) {
				n.bothFirst++
			}
			if la && lb {
				n.both++
				if !lr {
					n.bothGot++
					bothGot = append(bothGot, s)
				}
			}
			if lr {
				n.reader++
				missing = append(missing, s)
				if !la || !lb {
					n.notBoth++
					notBoth = append(notBoth, s)
				}
			}
		}
		n.readerSeq = append(n.readerSeq, fmt.Sprintf("%s: window %d..%d, reader missing %v (delivered by a leg: %v; lost on both, at the reader: %v)",
			ssrc, uint16(lo), uint16(hi), u16s(missing), u16s(notBoth), u16s(bothGot)))
	}
	return n
}

// u16s turns wide sequence numbers back into RTP ones, for logs.
func u16s(w []int) []uint16 {
	out := make([]uint16, len(w))
	for i, s := range w {
		out[i] = uint16(s)
	}
	return out
}

// llNodeTimeout is the control's node_timeout in these tests: no node fails in them, and on a
// shared 2-core machine a stall of 3 s has moved a reader off node-b with the default 2 s.
const llNodeTimeout = "10s"

// newLLCluster is the cluster with node-a and node-b on both networks and the given relay
// settings, its leg loss ready.
func newLLCluster(t *testing.T, liveLive, nack string) (*cluster, *legLoss) {
	t.Helper()
	peertest.Require(t, "ffmpeg", "tshark", "nft")
	c := newClusterOpts(t, clusterOpts{liveLive: []string{"node-a", "node-b"}, relayLiveLive: liveLive, relayNACK: nack, nodeTimeout: llNodeTimeout})
	return c, newLegLoss(t, c)
}

// llReader starts the captures (for capSecs) and, a second later, an ffmpeg UDP reader on player
// 2 for secs seconds, and waits for the two-leg relay it causes.
func (c *cluster) llReader(capSecs, secs int) (llCaptures, *peertest.Proc) {
	c.t.Helper()
	ctx := context.Background()
	cs := c.startLLCaptures(ctx, time.Duration(capSecs)*time.Second)
	time.Sleep(time.Second) // tshark needs a moment to open the interfaces
	ff := c.p2.Run(ctx, c.t, "ffmpeg", playFFmpegArgs("udp", c.url, secs)...)
	c.waitLog(c.ctlP, `msg="relay up".*to=node-b.*legs=2`, 15*time.Second)
	return cs, ff
}

// checkLegsSegmented fails the test when a capture saw GSO datagrams whole: then sequence
// numbers inside them look lost and the counts mean nothing.
func checkLegsSegmented(t *testing.T, n llCounts) {
	t.Helper()
	if n.bigFrames > 0 {
		t.Fatalf("%d captured frames are unsegmented GSO datagrams: the counts are not per packet", n.bigFrames)
	}
	if n.window < 300 {
		t.Fatalf("only %d sequence numbers in the common window: %s", n.window, n)
	}
}

// runLossyLegs drops 10 % at random on each leg of a live-live relay (skew B, relay_nack as
// nack) under an 18 s ffmpeg reader and returns what the captures counted.
func runLossyLegs(t *testing.T, nack string) (llCounts, int, *peertest.Proc) {
	t.Helper()
	c, loss := newLLCluster(t, "B", nack)
	loss.set(legA, "numgen random mod 10 0")
	loss.set(legB, "numgen random mod 10 0")
	cs, ff := c.llReader(20, 18)
	n := cs.results(t, c)
	_ = ff.Wait(40 * time.Second)
	frames, _ := peertest.FFmpegFrames(ff.Output())
	t.Logf("10 %% per leg, relay_nack %s: %s; nft dropped A %d, B %d; ffmpeg decoded %d frames", nack, n, loss.dropped(legA), loss.dropped(legB), frames)
	t.Logf("reader: %s", strings.Join(n.readerSeq, "; "))
	checkLegsSegmented(t, n)
	return n, frames, ff
}

// TestRelayLiveLiveLossyLegs: each leg of a live-live relay (NACK off) loses 10 % at random,
// independently. The reader misses only what both legs lost: about 1 %, not 10 %.
func TestRelayLiveLiveLossyLegs(t *testing.T) {
	n, frames, ff := runLossyLegs(t, "false")
	for leg := range n.lost {
		if share := float64(n.lost[leg]) / float64(n.window); share < 0.05 || share > 0.15 {
			t.Errorf("leg %s lost %.1f %% of the window, want 5–15 %%: the loss is not what the test set", legNames[leg], 100*share)
		}
	}
	// What the reader misses is what both legs lost; a couple more at most, for packets the merge
	// gave up at a capture's edge or a capture that dropped one.
	if n.notBoth > 2 {
		t.Errorf("the reader missed %d packets that a leg delivered", n.notBoth)
	}
	if n.bothGot > 2 {
		t.Errorf("%d packets lost on both legs reached the reader with NACK off: the captures do not show the legs", n.bothGot)
	}
	if 3*n.reader > min(n.lost[legA], n.lost[legB]) {
		t.Errorf("the reader missed %d packets, not far fewer than leg A's %d or leg B's %d", n.reader, n.lost[legA], n.lost[legB])
	}
	if n.ssrcs != 2 {
		t.Errorf("reader saw %d SSRCs, want 2", n.ssrcs)
	}
	if frames < 150 {
		t.Errorf("ffmpeg decoded %d frames in 18 s, want ≥ 150:\n%s", frames, playTail(ff.Output(), 3000))
	}
}

// TestRelayLiveLiveLegCut cuts leg A for 5 s, then (after it is back) leg B for 5 s, NACK off:
// the reader's line runs on without a missing packet or a silence, and ffmpeg decodes it clean.
func TestRelayLiveLiveLegCut(t *testing.T) {
	c, loss := newLLCluster(t, "B", "false")
	cs, ff := c.llReader(24, 21)
	time.Sleep(3 * time.Second)
	var cut [2]int
	for _, leg := range []int{legA, legB} {
		loss.set(leg, "")
		time.Sleep(5 * time.Second)
		cut[leg] = loss.dropped(leg)
		loss.clear(leg)
		time.Sleep(3 * time.Second)
	}
	n := cs.results(t, c)
	playCheckFFmpeg(t, "ffmpeg across the leg cuts", ff, 40*time.Second, 200)
	t.Logf("leg A cut, then leg B, 5 s each, NACK off: %s; nft dropped A %d, B %d", n, cut[legA], cut[legB])
	t.Logf("reader: %s", strings.Join(n.readerSeq, "; "))
	checkLegsSegmented(t, n)
	// 5 s of the demo are some 300 packets (video and audio).
	for leg := range cut {
		if cut[leg] < 150 || n.lost[leg] < 150 {
			t.Errorf("leg %s: the cut dropped %d packets, %d missing in its capture; want ≥ 150 each (5 s of the stream)", legNames[leg], cut[leg], n.lost[leg])
		}
	}
	if n.both != 0 {
		t.Errorf("%d packets lost on both legs; the cuts did not overlap, so want 0", n.both)
	}
	if n.reader != 0 || n.lineMiss != 0 {
		t.Errorf("the reader missed %d packets in the window (%d along its whole line), want 0", n.reader, n.lineMiss)
	}
	if n.ssrcs != 2 {
		t.Errorf("reader saw %d SSRCs, want 2 (one line per track across both cuts)", n.ssrcs)
	}
	// A cut leg that the merge did not cover would show as a silence of the cut's length; a leg
	// switch is at most the skew (50 ms) on top of the frame spacing.
	if n.maxGap > 500*time.Millisecond {
		t.Errorf("the reader's largest silence is %v, want under 500 ms", n.maxGap)
	}
}

// TestRelayLiveLiveWithNACK: both legs lose 10 % at random and NACK repair is on behind the
// merge: the reader misses (next to) nothing.
func TestRelayLiveLiveWithNACK(t *testing.T) {
	n, frames, ff := runLossyLegs(t, "true")
	// With 10 % on each leg about 1 % of the packets miss both legs at the first try (some 13
	// in the window): those are NACK's work, resent late on a leg.
	if n.bothFirst < 3 {
		t.Errorf("only %d packets missed both legs at the first try: the test does not test NACK behind the merge", n.bothFirst)
	}
	// NACK gives up a gap after relay_nack_wait; with 10 % per leg and retransmissions crossing
	// the lossy legs too, a rare give-up is legitimate, more than 0.1 % is not.
	if limit := max(1, n.window/1000); n.reader > limit {
		t.Errorf("the reader missed %d of %d packets with live-live and NACK, want ≤ %d (0.1 %%)", n.reader, n.window, limit)
	}
	if n.ssrcs != 2 {
		t.Errorf("reader saw %d SSRCs, want 2", n.ssrcs)
	}
	if frames < 150 {
		t.Errorf("ffmpeg decoded %d frames in 18 s, want ≥ 150:\n%s", frames, playTail(ff.Output(), 3000))
	}
}

// TestRelayLiveLiveOneLeg: a relay is sent as one leg when the far node has no
// live_live_address, or when control.relay_live_live is off: nothing crosses the second network.
func TestRelayLiveLiveOneLeg(t *testing.T) {
	peertest.Require(t, "ffmpeg", "tshark")
	for _, tc := range []struct {
		name     string
		opts     clusterOpts
		watchOnB bool // watch the second network on node-b (else on node-a, the only one on it)
	}{
		{"node-b-without-address", clusterOpts{liveLive: []string{"node-a"}, relayLiveLive: "B", nodeTimeout: llNodeTimeout}, false},
		{"relay_live_live-off", clusterOpts{liveLive: []string{"node-a", "node-b"}, relayLiveLive: "off", nodeTimeout: llNodeTimeout}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterOpts(t, tc.opts)
			ctx := context.Background()
			watch := c.a
			if tc.watchOnB {
				watch = c.b
			}
			second := captureFilter(ctx, t, watch, peertest.NetnsDev2, "udp", 8*time.Second)
			first := captureLeg(ctx, t, c.b, c.b.Dev, c.a.Addr, 8*time.Second)
			time.Sleep(time.Second)
			ff := c.p2.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", c.url, 4)...)
			c.waitLog(c.ctlP, `msg="relay up".*to=node-b`, 15*time.Second)
			playCheckFFmpeg(t, "ffmpeg on player 2", ff, 40*time.Second, 50)
			onSecond := capturedFrames(result(second, 30*time.Second))
			onFirst := parseCapture(result(first, 30*time.Second))
			up := regexp.MustCompile(`msg="relay up".*`).FindString(c.ctlP.Output())
			t.Logf("%s: %d RTP packets on the data network, %d on the second; %s", tc.name, len(onFirst), len(onSecond), up)
			if !strings.Contains(up, "legs=1") {
				t.Errorf("relay up line %q, want legs=1", up)
			}
			if len(onSecond) != 0 {
				t.Errorf("%d UDP packets on the second network, want none: %q", len(onSecond), onSecond[:min(5, len(onSecond))])
			}
			if len(onFirst) < 100 {
				t.Errorf("%d relay packets on the data network, want ≥ 100", len(onFirst))
			}
		})
	}
}

// capturedFrames returns the lines of a captureFilter output that stand for a frame, RTP or not.
func capturedFrames(out string) []string {
	var frames []string
	for _, line := range strings.Split(out, "\n") {
		at, _, _ := strings.Cut(strings.TrimSpace(line), ",")
		if v, err := strconv.ParseFloat(at, 64); err == nil && v > 1e9 {
			frames = append(frames, line)
		}
	}
	return frames
}

// TestRelayLiveLiveTable measures the reader's residual loss against loss induced on each leg,
// for live-live alone and live-live with NACK (MESHGW_PROTECT_TABLE=1 go test -count=1 -run
// TestRelayLiveLiveTable -v ./tests/e2e; some six minutes). One cluster per mode; each loss
// pattern is one 20 s phase of the same reader.
func TestRelayLiveLiveTable(t *testing.T) {
	if os.Getenv("MESHGW_PROTECT_TABLE") == "" {
		t.Skip("set MESHGW_PROTECT_TABLE=1 to measure")
	}
	const phase = 20 // seconds
	patterns := []struct {
		name string
		a, b string // nft matches per leg
	}{
		{"random 1 %", "numgen random mod 100 0", "numgen random mod 100 0"},
		{"random 5 %", "numgen random mod 100 < 5", "numgen random mod 100 < 5"},
		{"random 10 %", "numgen random mod 10 0", "numgen random mod 10 0"},
		// every 250th packet on a leg starts a burst; leg B's bursts are half a period after A's
		{"bursts of 5 (every 250)", "numgen inc mod 250 < 5", "numgen inc mod 250 125-129"},
		{"bursts of 20 (every 250)", "numgen inc mod 250 < 20", "numgen inc mod 250 125-144"},
		// both legs count the same packets from the same moment, so these bursts hit the same
		// sequence numbers on both: loss common to the legs, beyond what live-live can repair
		{"bursts of 5 (every 250), same on both legs", "numgen inc mod 250 < 5", "numgen inc mod 250 < 5"},
		{"bursts of 20 (every 250), same on both legs", "numgen inc mod 250 < 20", "numgen inc mod 250 < 20"},
	}
	// sub is the subtest's name: it ends up in a temporary directory's name, written unquoted in
	// the cluster's YAML files
	modes := []struct{ sub, name, nack string }{
		{"nack-off", "live-live (B), NACK off", "false"},
		{"nack-on", "live-live (B) + NACK", "true"},
	}
	cells := map[[2]int]string{}
	for mi, m := range modes {
		t.Run(m.sub, func(t *testing.T) {
			c, loss := newLLCluster(t, "B", m.nack)
			// a phase takes longer than its captures (tshark's start, nft, the counting): the
			// reader outlives them all and is stopped at the end
			secs := len(patterns)*(phase+10) + 10
			ctx := context.Background()
			ff := c.p2.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", c.url, secs)...)
			c.waitLog(c.ctlP, `msg="relay up".*to=node-b.*legs=2`, 15*time.Second)
			time.Sleep(2 * time.Second)
			for pi, p := range patterns {
				loss.set(legA, p.a)
				loss.set(legB, p.b)
				cs := c.startLLCaptures(ctx, phase*time.Second)
				n := cs.results(t, c)
				da, db := loss.dropped(legA), loss.dropped(legB)
				loss.clear(legA)
				loss.clear(legB)
				t.Logf("%s, %s: %s; nft dropped A %d, B %d", m.name, p.name, n, da, db)
				if n.bigFrames > 0 || n.window < 300 {
					t.Errorf("%s: captures unusable (%d GSO frames, window %d)", p.name, n.bigFrames, n.window)
				}
				pct := func(k int) float64 { return 100 * float64(k) / float64(max(n.window, 1)) }
				cells[[2]int{mi, pi}] = fmt.Sprintf("%.1f / %.1f %% (both %.2f %%) → %.2f %%", pct(n.lost[legA]+n.late[legA]), pct(n.lost[legB]+n.late[legB]), pct(n.bothFirst), pct(n.reader))
				time.Sleep(time.Second)
			}
			ff.Kill()
		})
	}
	var b strings.Builder
	b.WriteString("\nRelay node-a → node-b, live-live skew B (50 ms), demo stream (video + audio, ~70 packets/s), " +
		fmt.Sprintf("%d s per cell; loss by nftables on each leg; cells: leg A / leg B loss at the first try (lost on both) → missing at the reader\n\n| induced loss per leg |", phase))
	for _, m := range modes {
		b.WriteString(" " + m.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(modes)) + "\n")
	for pi, p := range patterns {
		b.WriteString("| " + p.name + " |")
		for mi := range modes {
			cell := cells[[2]int{mi, pi}]
			if cell == "" {
				cell = "–"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}
