package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// dashboardFile is the Grafana dashboard deploy/ ships.
const dashboardFile = "../../deploy/grafana/meshgw-mesh.json"

var metricNameRE = regexp.MustCompile(`\bmeshgw_[a-z0-9_]+`)

// dashboardMetrics lists the metric names the dashboard's PromQL expressions use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	seen := map[string]bool{}
	exprs := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			names := metricNameRE.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: expression %q names no meshgw metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	for _, v := range dash.Templating.List {
		for _, n := range metricNameRE.FindAllString(v.Definition, -1) {
			seen[n] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	t.Logf("%d expressions use %d metric names", exprs, len(out))
	return out
}

// sampleNames fetches a /metrics page and returns the names of its samples (histograms show as
// their _bucket, _sum and _count series).
func sampleNames(t *testing.T, url string, into map[string]bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %s %v", url, resp.Status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			into[line[:i]] = true
		}
	}
}

// TestOpsDashboardMetricsExist: every metric the Grafana dashboard queries is served. A control
// and a node run as processes on loopback, both on two networks (127.0.0.1/.2 and .3/.4) with
// relays over both (2022-7) and NACK repair; an ffmpeg UDP reader the node serves makes the
// control relay the demo to it. While it plays, the control's and the node's /metrics together
// hold a series of every name the dashboard's expressions use.
func TestOpsDashboardMetricsExist(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	want := dashboardMetrics(t)
	bin := meshgwBinary(t)
	dir := t.TempDir()
	peertest.Run(context.Background(), t, bin, "certs", "-dir", dir, "-td", "meshgw.test", "n1").MustSucceed(30 * time.Second)
	idn := func(base string) string {
		return fmt.Sprintf("identity: {trust_domain: meshgw.test, cert: %s, key: %s, bundle: %s}\n",
			filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key"), filepath.Join(dir, "ca.pem"))
	}
	rtspPort, grpcPort, ctlAPI, nodeAPI := peertest.FreePort(t), peertest.FreePort(t), peertest.FreePort(t), peertest.FreePort(t)
	ctlRTP, _ := peertest.FreeUDPPair(t)
	nodeRTP, _ := peertest.FreeUDPPair(t)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctlCfg := write("control.yaml", fmt.Sprintf(`log_level: info
rtsp: {listen: "127.0.0.1:%d", rtp_port: %d}
control: {listen: "127.0.0.1:%d", startup_grace: 0s, node_timeout: 10s, relay_live_live: B}
node: {name: control, data_address: 127.0.0.1, live_live_address: 127.0.0.2}
api: {listen: "127.0.0.1:%d"}
%sroutes:
  demo: {source: demo, node: control}
`, rtspPort, ctlRTP, grpcPort, ctlAPI, idn("control")))
	nodeCfg := write("n1.yaml", fmt.Sprintf(`log_level: info
rtsp: {rtp_port: %d}
node: {name: n1, control: "127.0.0.1:%d", data_address: 127.0.0.3, live_live_address: 127.0.0.4, client_networks: [127.0.0.0/8]}
api: {listen: "127.0.0.1:%d"}
%s`, nodeRTP, grpcPort, nodeAPI, idn("n1")))
	ctl := peertest.Run(context.Background(), t, bin, "control", "-c", ctlCfg)
	t.Cleanup(func() { _ = ctl.Stop(5 * time.Second) })
	if _, err := ctl.WaitForOutput(regexp.MustCompile(`msg="meshgw listening"`), 20*time.Second); err != nil {
		t.Fatalf("control: %v\n%s", err, ctl.Tail(3000))
	}
	n1 := peertest.Run(context.Background(), t, bin, "node", "-c", nodeCfg)
	t.Cleanup(func() { _ = n1.Stop(5 * time.Second) })
	if _, err := ctl.WaitForOutput(regexp.MustCompile(`msg="node attached".*node=n1`), 20*time.Second); err != nil {
		t.Fatalf("node did not attach: %v\n%s\n%s", err, ctl.Tail(3000), n1.Tail(3000))
	}
	ff := peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("udp", fmt.Sprintf("rtsp://127.0.0.1:%d/demo", rtspPort), 10)...)
	if _, err := ctl.WaitForOutput(regexp.MustCompile(`msg="relay up".*to=n1.*legs=2`), 20*time.Second); err != nil {
		t.Fatalf("no two-leg relay to n1: %v\n%s", err, ctl.Tail(3000))
	}
	time.Sleep(3 * time.Second) // a stats report or two from the node
	have := map[string]bool{}
	sampleNames(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", ctlAPI), have)
	sampleNames(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", nodeAPI), have)
	var missing []string
	for _, n := range want {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics neither /metrics serves: %v", missing)
	}
	_ = ff.Wait(30 * time.Second)
}
