// Package gwtest runs a real meshgw gateway inside a test process, for the
// end-to-end tests and the load tool's tests: the same code path as
// `meshgw run`, on a free loopback port, closed when the test ends.
package gwtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/internal/peertest"
)

// Gateway is a gateway running in the test process.
type Gateway struct {
	*gateway.Gateway
	// URL is "rtsp://127.0.0.1:PORT/".
	URL string
}

// Start runs a gateway on a config given as YAML, where the literal LISTEN is
// replaced by a free loopback address and, unless the YAML sets rtp_port,
// the node takes a free RTP/RTCP pair. Gateway logs go to the test log
// (shown for failing tests; MESHGW_TEST_LOG=1 adds debug lines). The
// gateway is closed when the test ends.
func Start(t testing.TB, yaml string) *Gateway {
	t.Helper()
	return StartLogged(t, yaml, Logger(t))
}

// StartLogged is Start with the gateway logging to log, for tests that assert on log lines.
func StartLogged(t testing.TB, yaml string, log *slog.Logger) *Gateway {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	yaml = strings.ReplaceAll(yaml, "LISTEN", listen)
	if !strings.Contains(yaml, "rtp_port") {
		yaml = strings.Replace(yaml, "rtsp:\n", "rtsp:\n  rtp_port: 0\n", 1)
	}
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := gateway.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
	})
	return &Gateway{Gateway: g, URL: "rtsp://" + listen + "/"}
}

// Logger logs to the test log at warn level, or debug with MESHGW_TEST_LOG
// set.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("MESHGW_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(Writer{t}, &slog.HandlerOptions{Level: level}))
}

// Writer sends each write to the test log as one line.
type Writer struct{ T testing.TB }

func (w Writer) Write(b []byte) (int, error) {
	w.T.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
