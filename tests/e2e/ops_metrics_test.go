package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshgw/meshgw/internal/peertest"
)

// opsGateway runs a gateway with the demo route and the api: listener on a free loopback port;
// it returns the gateway and the listener's base URL.
func opsGateway(t *testing.T) (*gw, string) {
	t.Helper()
	g := startGateway(t, "rtsp:\n  listen: LISTEN\napi:\n  listen: 127.0.0.1:0\nroutes:\n  demo: {source: demo}\n")
	if g.Ops() == nil {
		t.Fatal("no api listener")
	}
	return g, g.Ops().URL()
}

// scrape fetches /metrics and parses it with Prometheus's own text parser.
func scrape(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value is the value of the series of family name with exactly these label values; ok is false
// when there is no such series.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func seriesCount(mfs map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// TestOpsMetricsReaders: real ffmpeg readers move the route's series: two UDP readers and one
// interleaved (TCP) reader of the demo route show up by transport while they play, the packets
// sent to readers and taken from the source grow, and when the readers leave their gauges drop
// to nothing while the sent counter keeps what they got (it never goes down).
func TestOpsMetricsReaders(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g, base := opsGateway(t)
	for _, probe := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + probe)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", probe, resp.Status)
		}
	}
	before := scrape(t, base)
	if v, ok := value(before, "meshgw_route_streams", "route", "demo", "state", "live"); !ok || v != 1 {
		t.Errorf("demo stream not live before readers: %v %v", v, ok)
	}
	sent0, _ := value(before, "meshgw_route_sent_packets_total", "route", "demo")

	url := g.URL + "demo"
	const secs = 8
	var wg sync.WaitGroup
	frames := make([]int, 3)
	for i, transport := range []string{"udp", "udp", "tcp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frames[i], _ = ffmpegFrames(t, transport, url, secs)
		}()
	}
	// while they play: wait until all three are counted, then watch the counters move
	var during map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		during = scrape(t, base)
		udp, _ := value(during, "meshgw_route_readers", "route", "demo", "transport", "udp")
		tcp, _ := value(during, "meshgw_route_readers", "route", "demo", "transport", "tcp")
		if udp == 2 && tcp == 1 {
			break
		}
	}
	udp, _ := value(during, "meshgw_route_readers", "route", "demo", "transport", "udp")
	tcp, _ := value(during, "meshgw_route_readers", "route", "demo", "transport", "tcp")
	if udp != 2 || tcp != 1 {
		t.Fatalf("readers by transport: udp %v tcp %v, want 2 and 1", udp, tcp)
	}
	sent1, _ := value(during, "meshgw_route_sent_packets_total", "route", "demo")
	in1, _ := value(during, "meshgw_route_received_packets_total", "route", "demo")
	time.Sleep(2 * time.Second)
	later := scrape(t, base)
	sent2, _ := value(later, "meshgw_route_sent_packets_total", "route", "demo")
	in2, _ := value(later, "meshgw_route_received_packets_total", "route", "demo")
	inBytes, _ := value(later, "meshgw_route_received_bytes_total", "route", "demo")
	t.Logf("sent %v -> %v -> %v, received %v -> %v (%v bytes)", sent0, sent1, sent2, in1, in2, inBytes)
	// the demo clip is ~100 packets/s (video and audio); two UDP readers get each packet
	if in2-in1 < 100 {
		t.Errorf("source packets grew by %v in 2 s", in2-in1)
	}
	if sent2-sent1 < 2*(in2-in1)*0.8 {
		t.Errorf("sent to 2 UDP readers grew by %v while the source brought %v", sent2-sent1, in2-in1)
	}
	if inBytes < in2*100 {
		t.Errorf("received bytes %v for %v packets", inBytes, in2)
	}
	wg.Wait()
	for i, n := range frames {
		if n < 50 {
			t.Errorf("reader %d decoded %d frames", i, n)
		}
	}
	// after: no reader series, and the counter kept what the readers got
	var after map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		after = scrape(t, base)
		if _, ok := value(after, "meshgw_route_readers", "route", "demo", "transport", "udp"); !ok {
			break
		}
	}
	if v, ok := value(after, "meshgw_route_readers", "route", "demo", "transport", "udp"); ok {
		t.Errorf("udp readers still %v after they left", v)
	}
	sent3, _ := value(after, "meshgw_route_sent_packets_total", "route", "demo")
	if sent3 < sent2 {
		t.Errorf("sent packets went down from %v to %v when the readers left", sent2, sent3)
	}
}

var (
	loadOnce sync.Once
	loadPath string
	loadErr  error
)

// meshloadBinary builds cmd/meshload once per test binary run.
func meshloadBinary(t testing.TB) string {
	t.Helper()
	loadOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshgw-e2e-load")
		if err != nil {
			loadErr = err
			return
		}
		loadPath = filepath.Join(dir, "meshload")
		if out, err := exec.Command("go", "build", "-o", loadPath, "github.com/meshgw/meshgw/cmd/meshload").CombinedOutput(); err != nil {
			loadErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loadPath
}

// TestOpsMetricsCardinality: the number of series on /metrics does not grow with the readers.
// meshload plays the demo route with 5, then 50 UDP readers; while they play, /metrics shows
// them all in meshgw_route_readers and holds the same number of series both times.
func TestOpsMetricsCardinality(t *testing.T) {
	g, base := opsGateway(t)
	bin := meshloadBinary(t)
	count := func(readers int) int {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		p := peertest.Run(ctx, t, bin, "-url", g.URL+"demo", "-readers", fmt.Sprint(readers), "-duration", "3s", "-warmup", "0s")
		defer func() { _ = p.Wait(30 * time.Second) }()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			mfs := scrape(t, base)
			if v, _ := value(mfs, "meshgw_route_readers", "route", "demo", "transport", "udp"); int(v) == readers {
				return seriesCount(mfs)
			}
		}
		t.Fatalf("/metrics never showed %d udp readers; meshload:\n%s", readers, p.Tail(2000))
		return 0
	}
	few, many := count(5), count(50)
	t.Logf("series: %d with 5 readers, %d with 50", few, many)
	if few != many {
		t.Errorf("series count grew with readers: %d with 5, %d with 50", few, many)
	}
}

// scrapeIn fetches /metrics from the api: listener on 127.0.0.1:9997 inside h's namespace.
func scrapeIn(t testing.TB, h *peertest.Host) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "curl", "-sS", "-f", "http://127.0.0.1:9997/metrics").Output()
	if err != nil {
		t.Fatalf("curl /metrics in %s: %v", h, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v", h, err)
	}
	return mfs
}

// TestOpsMetricsRelayLoss: a relay hop that loses a known share of its packets shows that share
// on /metrics. In the netns cluster, nftables drops 5 % of the packets node-a relays to node-b
// (NACK repair on, one leg); an ffmpeg reader on player 2 pulls the stream over that hop. While
// it plays, node-b's own /metrics counts as missing before repair 80-100 % of what nftables
// dropped (the rest are resends it dropped too), a rate of 2.5-7.5 % (three sigmas around 5 % for
// the ~800 packets of 10 s), and almost none left after repair; node-a's /metrics counts the
// resends and the control's shows the hop and node-b up.
func TestOpsMetricsRelayLoss(t *testing.T) {
	peertest.Require(t, "ffmpeg", "tshark", "nft", "curl")
	c := newClusterOpts(t, clusterOpts{liveLive: []string{"node-a", "node-b"}, nodeTimeout: llNodeTimeout, api: true})
	loss := newLegLoss(t, c)
	loss.set(legA, "numgen random mod 20 0")
	ff := c.p2.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("udp", c.url, 14)...)
	c.waitLog(c.ctlP, `msg="relay up".*to=node-b`, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := c.b.Command(ctx, "curl", "-sS", "-f", "http://127.0.0.1:9997/readyz").CombinedOutput(); err != nil || string(out) != "ready\n" {
		t.Errorf("node-b /readyz: %v %q", err, out)
	}
	time.Sleep(10 * time.Second)
	hop := []string{"route", "demo", "from", "node-a", "to", "node-b", "leg", "a"}
	b := scrapeIn(t, c.b)
	dropped := loss.dropped(legA)
	a := scrapeIn(t, c.a)
	ctl := scrapeIn(t, c.ctl)
	pkts, ok1 := value(b, "meshgw_relay_received_packets_total", hop...)
	before, ok2 := value(b, "meshgw_relay_lost_before_repair_packets_total", hop...)
	after, ok3 := value(b, "meshgw_relay_lost_packets_total", hop...)
	nacks, _ := value(b, "meshgw_relay_nacks_total", hop...)
	resent, ok4 := value(a, "meshgw_relay_retransmitted_packets_total", hop...)
	ctlPkts, ok5 := value(ctl, "meshgw_relay_received_packets_total", hop...)
	up, _ := value(ctl, "meshgw_node_up", "node", "node-b")
	t.Logf("node-b: %v packets, %v missing before repair, %v after, %v NACKs; node-a resent %v; nft dropped %d; control sees %v packets, node-b up %v",
		pkts, before, after, nacks, resent, dropped, ctlPkts, up)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		t.Fatalf("hop series missing: node-b %v %v %v, node-a %v, control %v", ok1, ok2, ok3, ok4, ok5)
	}
	// every gap is a drop (node-b was read first, so nftables' count can only be ahead); the drops
	// that are not gaps are resends nftables dropped too (5 % of them)
	if fd := float64(dropped); before > fd+2 || before < 0.8*fd {
		t.Errorf("missing before repair %v, nftables dropped %d: want 80-100 %% of it", before, dropped)
	}
	// ~800 packets: 5 % is 40 ± 6 (one sigma); 2.5-7.5 % is three sigmas
	if rate := before / (pkts + after); rate < 0.025 || rate > 0.075 {
		t.Errorf("per-hop loss before repair %.2f %%, induced 5 %%", 100*rate)
	}
	if after > 0.01*pkts {
		t.Errorf("%v packets still missing after repair of %v", after, pkts)
	}
	if resent < 0.8*before {
		t.Errorf("node-a resent %v for %v gaps", resent, before)
	}
	if ctlPkts < 0.8*pkts || up != 1 {
		t.Errorf("control's view: %v packets (node-b counts %v), node-b up %v", ctlPkts, pkts, up)
	}
	_ = ff.Wait(30 * time.Second)
}
