package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestSoak runs the churn soak, scripts/soak.sh, which drives the gateway with ffmpeg players and
// publishers and meshload for minutes; it runs only when asked, so CI time does not grow:
//
//	MESHGW_SOAK=1 go test -count=1 -timeout 30m -run TestSoak -v ./tests/e2e      # 10 minutes
//	MESHGW_SOAK=1 MESHGW_SOAK_CLUSTER=1 go test ...                               # control + 2 nodes
//	MESHGW_SOAK=20s go test -count=1 -run TestSoak -v ./tests/e2e                 # self-test, ≈85 s
//
// MESHGW_SOAK=1 means 10m; any other value is the duration. A run of under 5 minutes is the
// self-test of the machinery: it samples every 2 s and does not judge the RSS and heap slopes (a few
// seconds after start-up cannot tell a leak from warm-up), but still judges goroutines, fds and
// UDP sockets at the quiet end against the quiet start, and the reader that stays.
func TestSoak(t *testing.T) {
	v := os.Getenv("MESHGW_SOAK")
	if v == "" {
		t.Skip("set MESHGW_SOAK=1 to run scripts/soak.sh 10m (or MESHGW_SOAK=20s for its self-test)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("scripts/soak.sh samples /proc: Linux only")
	}
	peertest.Require(t, "ffmpeg", "openssl", "bash", "timeout")
	dur := v
	if v == "1" {
		dur = "10m"
	}
	d, err := time.ParseDuration(dur)
	if err != nil {
		t.Fatalf("MESHGW_SOAK=%q: want 1 or a duration: %v", v, err)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "SOAK_DIR="+dir)
	short := d < 5*time.Minute
	if short {
		env = append(env, "SOAK_INTERVAL=2", "SOAK_QUIET=6", "SOAK_CYCLE=6", "SOAK_RSS_SLOPE=1000000000", "SOAK_HEAP_SLOPE=1000000000")
	}
	if os.Getenv("MESHGW_SOAK_CLUSTER") != "" {
		env = append(env, "SOAK_CLUSTER=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "soak.sh"), dur)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("scripts/soak.sh %s:\n%s", dur, out.String())
	if err != nil {
		t.Fatalf("scripts/soak.sh %s: %v", dur, err)
	}
	verdict, err := os.ReadFile(filepath.Join(dir, "verdict.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\ngw ", "staying reader: ", "verdict: flat"} {
		if !strings.Contains(string(verdict), want) {
			t.Errorf("verdict.txt lacks %q", want)
		}
	}
	rows, err := os.ReadFile(filepath.Join(dir, "gw.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(rows), "\n") - 1; n < 5 {
		t.Errorf("gw.csv has %d samples", n)
	}
	if !strings.Contains(string(rows), ",churn,") || !strings.Contains(string(rows), ",quiet,") {
		t.Errorf("gw.csv lacks churn or quiet samples:\n%s", rows)
	}
}
