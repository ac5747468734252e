package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/roq"
)

// roqCounter counts the RTP packets a RoQ client receives.
type roqCounter struct {
	c *roq.Client
	n *atomic.Uint64
}

func (r roqCounter) HandlePacket(flow uint64, _ []byte) {
	if ref, ok := r.c.Flow(flow); ok && !ref.RTCP {
		r.n.Add(1)
	}
}

// TestRoQLoadRatio measures, on one meshgw process, the CPU per delivered packet of the demo
// route to 100 RTSP/UDP readers (meshload) and to 100 RoQ datagram clients, and reports the
// ratio (issue target ≤ 3×). It takes about 40 s, so it runs only with MESHGW_ROQ_LOAD=1.
func TestRoQLoadRatio(t *testing.T) {
	if os.Getenv("MESHGW_ROQ_LOAD") != "1" {
		t.Skip("set MESHGW_ROQ_LOAD=1 to measure RoQ against UDP readers (about 40 s)")
	}
	const readers = 100
	window := 10 * time.Second
	bin := meshgwBinary(t)
	dir := t.TempDir()
	load := filepath.Join(dir, "meshload")
	if out, err := exec.Command("go", "build", "-o", load, "github.com/meshgw/meshgw/cmd/meshload").CombinedOutput(); err != nil {
		t.Fatalf("build meshload: %v\n%s", err, out)
	}
	cert, key := roqCert(t)
	rtspPort := peertest.FreePort(t)
	quicPort, _ := peertest.FreeUDPPair(t)
	cfg := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "log_level: info\nrtsp:\n  listen: 127.0.0.1:%d\n  rtp_port: 0\nquic:\n  listen: 127.0.0.1:%d\n  cert: %s\n  key: %s\nroutes:\n  demo:\n    source: demo\n",
		rtspPort, quicPort, cert, key), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gwp := peertest.Run(ctx, t, bin, "run", "-c", cfg)
	time.Sleep(2 * time.Second)
	pid := gwp.Pid()

	// UDP readers
	ml := peertest.Run(ctx, t, load, "-url", fmt.Sprintf("rtsp://127.0.0.1:%d/demo", rtspPort), "-readers", strconv.Itoa(readers),
		"-tracks", "all", "-pid", strconv.Itoa(pid), "-duration", window.String(), "-warmup", "3s", "-floor=false", "-json")
	out := ml.MustSucceed(2 * time.Minute)
	var rep struct {
		Delivered struct{ Packets uint64 } `json:"delivered"`
		Gateway   struct {
			USPerPkt    float64 `json:"us_per_pkt"`
			CorePercent float64 `json:"core_percent"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):]), &rep); err != nil {
		t.Fatalf("meshload report: %v\n%s", err, out)
	}

	// RoQ datagram clients
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	var got atomic.Uint64
	var wg sync.WaitGroup
	rctx, rcancel := context.WithCancel(ctx)
	clients := make([]*roq.Client, 0, readers)
	for range readers {
		c, err := roq.Dial(ctx, fmt.Sprintf("quic://127.0.0.1:%d/demo", quicPort), roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}})
		if err != nil {
			t.Fatalf("roq client: %v", err)
		}
		clients = append(clients, c)
		wg.Go(func() { _ = c.Run(rctx, roqCounter{c, &got}) })
	}
	time.Sleep(3 * time.Second)
	n0, c0, t0 := got.Load(), procCPU(t, pid), time.Now()
	time.Sleep(window)
	n1, c1, t1 := got.Load(), procCPU(t, pid), time.Now()
	rcancel()
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()
	roqPkts := n1 - n0
	cpu := c1 - c0 // procCPU: hls_load_test.go
	roqUS := float64(cpu.Microseconds()) / float64(roqPkts)
	ratio := roqUS / rep.Gateway.USPerPkt
	t.Logf("| readers | delivered packets | gateway CPU | µs per packet |")
	t.Logf("| %d RTSP/UDP | %d | %.1f %% of a core | %.2f |", readers, rep.Delivered.Packets, rep.Gateway.CorePercent, rep.Gateway.USPerPkt)
	t.Logf("| %d RoQ datagram | %d | %.1f %% of a core | %.2f |", readers, roqPkts, 100*cpu.Seconds()/t1.Sub(t0).Seconds(), roqUS)
	t.Logf("RoQ / UDP = %.2f×", ratio)
	if roqPkts == 0 || rep.Delivered.Packets == 0 {
		t.Fatal("nothing delivered")
	}
	_ = gwp.Stop(5 * time.Second)
	for _, l := range strings.Split(gwp.Output(), "\n") {
		if strings.Contains(l, "roq reader reception") && strings.Contains(l, "track=0") {
			t.Log(l)
			break
		}
	}
}
