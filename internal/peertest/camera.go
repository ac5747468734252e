package peertest

import (
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed camera.py
var cameraScript string

var cameraReadyRE = regexp.MustCompile(`(?m)^READY (rtsps?://\S+)`)

// CameraOpts configures StartCamera.  Zero values take the defaults noted.
type CameraOpts struct {
	// Host runs the camera inside that network namespace host, listening
	// on the host's address; nil runs it on this host's loopback.
	Host *Host
	// Bind overrides the listen address (default 127.0.0.1, or Host.Addr).
	Bind string
	// Port is the RTSP port; 0 picks a free one (kept by Restart).
	Port int
	// Path is the PLAY mount point (default "/cam").
	Path string
	// Size is WIDTHxHEIGHT (default "640x360"), FPS the frame rate (25),
	// GOP the x264enc key-int-max (25) and Bitrate in kbit/s (1000).
	Size    string
	FPS     int
	GOP     int
	Bitrate int
	// Audio is "aac" (default), "opus" or "none".
	Audio string
	// Protocols lists the allowed lower transports: "udp", "tcp",
	// "mcast" (default all three).
	Protocols []string
	// Record adds RECORD mounts "PATH" or "PATH:N" (N media sections,
	// default 1) that accept ANNOUNCE/RECORD publishers and print decoded
	// buffer counts (see RecordCounts).
	Record []string
	// Auth "user:pass" requires authentication on every mount, with
	// AuthMethod "digest" (default) or "basic".
	Auth       string
	AuthMethod string
	// Shared serves one pipeline to all clients.  gst-rtsp-server 1.22
	// can abort when several clients of a shared media connect at once,
	// so the default is one pipeline per client.
	Shared bool
	// TLSCert and TLSKey (PEM files) serve RTSPS on Port; URL is then rtsps://.
	TLSCert, TLSKey string
	// SRTP offers RTP/SAVP only, keyed by MIKEY (needs TLS for clients that
	// insist on RTSPS for keys, such as gortsplib).
	SRTP bool
	// ReadyTimeout bounds the wait for the READY line (default 30 s).
	ReadyTimeout time.Duration
}

// Camera is a synthetic RTSP camera (and optional RECORD sink) run by
// GstRtspServer from an embedded Python script with SystemPython.  It is
// stopped automatically at the end of the test.
type Camera struct {
	t      testing.TB
	opts   CameraOpts
	script string

	mu      sync.Mutex
	proc    *Proc
	url     *url.URL
	history strings.Builder // output of earlier runs (before Restart)
}

// StartCamera starts a camera and waits until it listens.  It skips the
// test when GstRtspServer or the needed GStreamer elements are missing
// (fails under MESHGW_REQUIRE_PEERS=1).  Call it from the test goroutine.
func StartCamera(t testing.TB, opts CameraOpts) *Camera {
	t.Helper()
	if opts.Audio == "" {
		opts.Audio = "aac"
	}
	peers := []string{PeerRTSPServer, "gst:videotestsrc", "gst:x264enc", "gst:rtph264pay"}
	switch opts.Audio {
	case "aac":
		peers = append(peers, "gst:avenc_aac", "gst:rtpmp4gpay")
	case "opus":
		peers = append(peers, "gst:opusenc", "gst:rtpopuspay")
	case "none":
	default:
		t.Fatalf("StartCamera: unknown Audio %q", opts.Audio)
	}
	if len(opts.Record) > 0 {
		peers = append(peers, "gst:decodebin", "gst:avdec_h264")
	}
	Require(t, peers...)
	if opts.Host != nil {
		RequireRoot(t)
	}
	script := filepath.Join(t.TempDir(), "camera.py")
	if err := os.WriteFile(script, []byte(cameraScript), 0o644); err != nil {
		t.Fatalf("StartCamera: %v", err)
	}
	c := &Camera{t: t, opts: opts, script: script}
	c.start()
	return c
}

// CameraArgs returns the command-line options for the camera script that
// opts translate to (without --port and --bind).
func CameraArgs(opts CameraOpts) []string {
	var a []string
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	addInt := func(flag string, v int) {
		if v != 0 {
			a = append(a, flag, strconv.Itoa(v))
		}
	}
	add("--path", opts.Path)
	add("--size", opts.Size)
	addInt("--fps", opts.FPS)
	addInt("--gop", opts.GOP)
	addInt("--bitrate", opts.Bitrate)
	add("--audio", opts.Audio)
	add("--protocols", strings.Join(opts.Protocols, ","))
	for _, r := range opts.Record {
		a = append(a, "--record", r)
	}
	add("--auth", opts.Auth)
	add("--auth-method", opts.AuthMethod)
	if opts.Shared {
		a = append(a, "--shared")
	}
	add("--tls-cert", opts.TLSCert)
	add("--tls-key", opts.TLSKey)
	if opts.SRTP {
		a = append(a, "--srtp")
	}
	return a
}

func (c *Camera) bind() string {
	switch {
	case c.opts.Bind != "":
		return c.opts.Bind
	case c.opts.Host != nil:
		return c.opts.Host.Addr.String()
	default:
		return "127.0.0.1"
	}
}

// start runs the script and waits for READY.  The caller must not hold mu
// when the test may fail (Fatalf) — start does not take it itself.
func (c *Camera) start() {
	c.t.Helper()
	timeout := c.opts.ReadyTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	args := append([]string{"-u", c.script, "--bind", c.bind(), "--port", strconv.Itoa(c.opts.Port)},
		CameraArgs(c.opts)...)
	var cmd *exec.Cmd
	if c.opts.Host != nil {
		cmd = c.opts.Host.Command(context.Background(), SystemPython, args...)
	} else {
		cmd = exec.Command(SystemPython, args...)
	}
	p := Start(c.t, cmd)
	m, err := p.WaitForOutput(cameraReadyRE, timeout)
	if err != nil {
		p.Kill()
		c.t.Fatalf("camera did not start: %v\n%s", err, p.Tail(TailBytes))
	}
	u, err := url.Parse(m[1])
	if err != nil {
		p.Kill()
		c.t.Fatalf("camera printed a bad URL %q: %v", m[1], err)
	}
	c.mu.Lock()
	c.proc, c.url = p, u
	c.mu.Unlock()
}

// URL returns the PLAY URL, e.g. rtsp://127.0.0.1:PORT/cam.
func (c *Camera) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url.String()
}

// AuthURL returns the PLAY URL with the Auth credentials embedded
// (rtsp://user:pass@host:port/path), as ffmpeg expects them.
func (c *Camera) AuthURL() string {
	c.mu.Lock()
	u := *c.url
	c.mu.Unlock()
	if user, pass, ok := strings.Cut(c.opts.Auth, ":"); ok {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

// RecordURL returns the URL of the RECORD mount path (e.g. "/pub").
func (c *Camera) RecordURL(path string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := *c.url
	u.Path = path
	return u.String()
}

// HostPort returns the RTSP listen address as host:port.
func (c *Camera) HostPort() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url.Host
}

// Port returns the RTSP port.
func (c *Camera) Port() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, _ := strconv.Atoi(c.url.Port())
	return p
}

// Proc returns the current camera process.
func (c *Camera) Proc() *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Output returns the camera's output of all runs so far.
func (c *Camera) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.history.String() + c.proc.Output()
}

// RecordCounts returns the final decoded-buffer counts of finished RECORD
// sessions (see the package function RecordCounts).  Counts of sessions
// still running appear after the publisher tears down or after Stop.
func (c *Camera) RecordCounts() map[string]map[int]int { return RecordCounts(c.Output()) }

// WaitRecord waits until the camera has printed the final decoded-buffer
// counts of a RECORD session on path (printed once the publisher has torn
// down) and returns them by stream index.  It fails the test on timeout.
func (c *Camera) WaitRecord(path string, timeout time.Duration) map[int]int {
	c.t.Helper()
	re := regexp.MustCompile(`(?m)^RECORD ` + regexp.QuoteMeta(path) + ` stream\d+ buffers=\d+ \(final\)`)
	if _, err := c.Proc().WaitForOutput(re, timeout); err != nil {
		c.t.Fatalf("camera: no final RECORD counts for %s: %v", path, err)
	}
	// All streams of a session are reported together; give the remaining
	// lines a moment to arrive.
	time.Sleep(100 * time.Millisecond)
	return c.RecordCounts()[path]
}

// Stop terminates the camera (SIGTERM, then SIGKILL after 5 s) and waits
// for it to exit.  Stopping twice is harmless.
func (c *Camera) Stop() {
	p := c.Proc()
	if err := p.Stop(5 * time.Second); err != nil && !p.Exited() {
		c.t.Errorf("camera stop: %v", err)
	}
}

// Restart kills the camera (SIGKILL, like a crashing or rebooting camera;
// no final RECORD lines) and starts it again on the same address and port,
// for reconnect tests.  Call it from the test goroutine.
func (c *Camera) Restart() {
	c.t.Helper()
	c.Proc().Kill()
	c.mu.Lock()
	c.history.WriteString(c.proc.Output())
	c.opts.Port, _ = strconv.Atoi(c.url.Port())
	c.mu.Unlock()
	c.start()
}

// String describes the camera for logs.
func (c *Camera) String() string { return fmt.Sprintf("camera %s", c.URL()) }
