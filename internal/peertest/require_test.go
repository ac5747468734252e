package peertest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records Skipf/Fatalf instead of ending the real test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runFake runs fn with a fakeTB in its own goroutine (Skipf/Fatalf exit it).
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestRequireMissingSkips(t *testing.T) {
	t.Setenv(RequirePeersEnv, "")
	f := runFake(t, func(tb testing.TB) { Require(tb, "meshgw-no-such-peer") })
	if f.fatal != "" || !strings.Contains(f.skipped, "meshgw-no-such-peer") || !strings.Contains(f.skipped, RequirePeersEnv) {
		t.Errorf("skipped=%q fatal=%q", f.skipped, f.fatal)
	}
}

func TestRequireMissingFailsWhenStrict(t *testing.T) {
	t.Setenv(RequirePeersEnv, "1")
	f := runFake(t, func(tb testing.TB) { Require(tb, "gst:meshgw-no-such-element") })
	if f.skipped != "" || !strings.Contains(f.fatal, "meshgw-no-such-element") {
		t.Errorf("skipped=%q fatal=%q", f.skipped, f.fatal)
	}
}

func TestRequirePresent(t *testing.T) {
	t.Setenv(RequirePeersEnv, "1")
	f := runFake(t, func(tb testing.TB) { Require(tb, "sh") })
	if f.skipped != "" || f.fatal != "" {
		t.Errorf("Require(sh): skipped=%q fatal=%q", f.skipped, f.fatal)
	}
}

// TestRequirePeers checks the real peers; it skips without them unless
// MESHGW_REQUIRE_PEERS=1.
func TestRequirePeers(t *testing.T) {
	Require(t, "ffmpeg", "ffprobe", "gst-launch-1.0", "gst-inspect-1.0", "tshark", "socat", "ip",
		PeerRTSPServer, "gst:rtspsrc", "gst:rtspclientsink", "gst:rtpst2022-1-fecdec", "gst:x264enc", "gst:avdec_h264")
}
