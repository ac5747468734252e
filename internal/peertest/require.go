package peertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequirePeersEnv is the environment variable that turns missing peers from
// a skip into a test failure when it is set to "1".
const RequirePeersEnv = "MESHGW_REQUIRE_PEERS"

// SystemPython is the interpreter that can import python3-gi (the default
// python3 on PATH may be a pyenv/venv one that cannot).
const SystemPython = "/usr/bin/python3"

// PeerRTSPServer is the Require name for GstRtspServer usable from
// SystemPython (python3-gi, python3-gst-1.0, gir1.2-gst-rtsp-server-1.0).
// The names "python3" and "/usr/bin/python3" mean the same.
const PeerRTSPServer = "gst-rtsp-server"

// GstPrefix marks a Require name as a GStreamer element (checked with
// gst-inspect-1.0), for example "gst:rtspsrc".
const GstPrefix = "gst:"

// StrictPeers reports whether missing peers must fail tests
// (MESHGW_REQUIRE_PEERS=1).
func StrictPeers() bool { return os.Getenv(RequirePeersEnv) == "1" }

// missing skips the test, or fails it in strict mode.
func missing(t testing.TB, what, why string) {
	t.Helper()
	if StrictPeers() {
		t.Fatalf("peer %s not installed: %s (%s=1 is set, so this is an error)", what, why, RequirePeersEnv)
	}
	t.Skipf("peer %s not installed: %s (set %s=1 to make this fail)", what, why, RequirePeersEnv)
}

// Require checks that every named peer is available and skips the test (or
// fails it under MESHGW_REQUIRE_PEERS=1) otherwise.  A name is one of:
//   - a program looked up on PATH or by absolute path: "ffmpeg", "ffprobe",
//     "gst-launch-1.0", "tshark", "socat", "ip", ...;
//   - PeerRTSPServer ("gst-rtsp-server"), "python3" or "/usr/bin/python3":
//     SystemPython able to import gi's GstRtspServer;
//   - "gst:ELEMENT": a GStreamer element known to gst-inspect-1.0, for
//     example "gst:rtspsrc" or "gst:rtpst2022-1-fecdec".
func Require(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := checkPeer(name); err != nil {
			missing(t, name, err.Error())
		}
	}
}

func checkPeer(name string) error {
	switch {
	case name == PeerRTSPServer || name == "python3" || name == SystemPython:
		return checkRTSPServer()
	case strings.HasPrefix(name, GstPrefix):
		return checkGstElement(strings.TrimPrefix(name, GstPrefix))
	default:
		if _, err := exec.LookPath(name); err != nil {
			return err
		}
		return nil
	}
}

func checkRTSPServer() error {
	if _, err := os.Stat(SystemPython); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, SystemPython, "-c",
		"import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import GstRtspServer: %v: %s", SystemPython, err, lastLine(string(out)))
	}
	return nil
}

func checkGstElement(elem string) error {
	inspect, err := exec.LookPath("gst-inspect-1.0")
	if err != nil {
		return fmt.Errorf("gst-inspect-1.0 not found, cannot check element %q", elem)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, inspect, "--exists", elem).Run(); err != nil {
		return fmt.Errorf("GStreamer element %q not found by gst-inspect-1.0 (%v)", elem, err)
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// RequireRoot skips the test unless it runs as root (fails instead under
// MESHGW_REQUIRE_PEERS=1).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root", "test needs uid 0, running as uid "+strconv.Itoa(os.Geteuid()))
	}
}

// RequireNetns skips the test unless network namespaces can be created: it
// needs root, the ip program and a working `ip netns add` (fails instead
// under MESHGW_REQUIRE_PEERS=1).
func RequireNetns(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	Require(t, "ip")
	name := fmt.Sprintf("mgwprobe-%d-%s", os.Getpid(), randHex(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		missing(t, "netns", fmt.Sprintf("ip netns add failed: %v: %s", err, lastLine(string(out))))
		return
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", name, err, out)
	}
}
