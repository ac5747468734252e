package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/gwtest"
	"github.com/meshgw/meshgw/internal/peertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gw is a gateway running in the test process.
type gw = gwtest.Gateway

// startGateway runs a gateway on a config given as YAML, where the literal LISTEN is replaced by a
// free loopback address. It is closed when the test ends; goleak then proves nothing was left.
func startGateway(t testing.TB, yaml string) *gw { return gwtest.Start(t, yaml) }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// meshgwBinary builds cmd/meshgw once per test binary run (for tests that run the gateway in
// another network namespace or as a separate process).
func meshgwBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshgw-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "meshgw")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/meshgw/meshgw/cmd/meshgw").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// ffmpegFrames runs an ffmpeg reader for secs seconds and returns the decoded frame count and
// its output.
func ffmpegFrames(t testing.TB, transport, url string, secs int) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+20)*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-rtsp_transport", transport, "-i", url, "-t", fmt.Sprint(secs), "-f", "null", "-")
	_ = p.Wait(time.Duration(secs+20) * time.Second)
	out := p.Output()
	n, _ := peertest.FFmpegFrames(out)
	return n, out
}
