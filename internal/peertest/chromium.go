package peertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// ArtifactsEnv names a directory where tests save artifacts (screenshots)
// that outlive the test's temporary directory.  Artifacts are never
// committed.
const ArtifactsEnv = "MESHGW_ARTIFACTS"

// RequireChromium returns the path of a headless-capable Chromium, skipping
// the test (failing it under MESHGW_REQUIRE_PEERS=1) when none is installed.
func RequireChromium(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err == nil {
		return ChromiumPath
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "chromium", ChromiumPath+" not found and no chromium on PATH")
	return ""
}

// Browser is one headless Chromium with a single tab, driven over the
// DevTools protocol by chromedp.  NewBrowser ties its life to the test.
type Browser struct {
	t      testing.TB
	ctx    context.Context // the tab's context
	output *output         // Chromium's own stdout/stderr, logged on failure
}

// NewBrowser starts Chromium headless with an empty temporary profile and
// opens one tab.  The flags keep it off the network on its own: without
// them the browser's background connections are refused by this machine's
// closed network and it stalls.  The browser is closed in t.Cleanup.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	return newBrowser(t, nil)
}

// NewBrowserOn is NewBrowser with the browser running inside h's network
// namespace (through `ip netns exec`), so it reaches what listens there,
// loopback included.
func NewBrowserOn(t testing.TB, h *Host) *Browser {
	t.Helper()
	return newBrowser(t, h)
}

func newBrowser(t testing.TB, h *Host) *Browser {
	t.Helper()
	path := RequireChromium(t)
	out := newOutput()
	profile, err := os.MkdirTemp("", "meshgw-chromium-")
	if err != nil {
		t.Fatalf("chromium profile dir: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// A headless tab counts as hidden: without these its timers fire
		// once every few seconds, and a page that polls would look stuck.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	}
	if h != nil {
		ip, err := exec.LookPath("ip")
		if err != nil {
			t.Fatalf("chromium in netns %s: %v", h.Name, err)
		}
		// chromedp talks to the browser over a pipe on file descriptors 3
		// and 4; ip netns exec keeps them open across its exec.
		opts = append(opts, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append([]string{"ip", "netns", "exec", h.Name}, cmd.Args...)
			cmd.Path = ip
		}))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, ctx: ctx, output: out}
	t.Cleanup(func() {
		cancel()
		allocCancel() // waits for the browser process to exit
		// Chromium's helpers may still be flushing into the profile for a
		// moment; a leftover temporary directory is not worth failing for.
		for i := 0; i < 5; i++ {
			if os.RemoveAll(profile) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if t.Failed() {
			s, _ := out.snapshot()
			t.Logf("chromium output (tail):\n%s", tailLines(s, 30))
		}
	})
	// Start the browser now, so a broken installation fails here and not in
	// the first action.  This first Run must get the tab's own context: the
	// browser lives as long as the context of the Run that started it.  The
	// allocator's WebSocket-URL read timeout (20 s) bounds a hung start.
	if err := chromedp.Do(ctx); err != nil {
		s, _ := out.snapshot()
		t.Fatalf("start chromium %s: %v\n%s", path, err, tailLines(s, 30))
	}
	return b
}

// do runs actions with a timeout.
func (b *Browser) do(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// run runs one action that returns a value, with a timeout.
func run[T any](b *Browser, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// Navigate loads url in the tab and waits for the load event (up to 30 s).
func (b *Browser) Navigate(url string) error {
	if err := b.do(30*time.Second, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("navigate %s: %w", url, err)
	}
	return nil
}

// WaitVisible waits until an element matching the CSS selector sel is
// visible, for at most timeout.
func (b *Browser) WaitVisible(sel string, timeout time.Duration) error {
	if err := b.do(timeout, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("wait for %q visible: %w", sel, err)
	}
	return nil
}

// WaitJS evaluates the JavaScript expression expr every 100 ms until it is
// true (JavaScript truthiness), for at most timeout.  The error names the
// last value seen.
func (b *Browser) WaitJS(expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last any
	var lastErr error
	for {
		var v bool
		v, lastErr = Eval[bool](b, "!!("+expr+")")
		if lastErr == nil {
			last = v
			if v {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("wait for %s: %w", expr, lastErr)
			}
			return fmt.Errorf("wait for %s: still %v after %v", expr, last, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Eval evaluates the JavaScript expression expr in b's tab (for at most
// 10 s) and decodes its JSON value as a T.  A thrown exception is an error.
func Eval[T any](b *Browser, expr string) (T, error) {
	v, err := run(b, 10*time.Second, chromedp.Evaluate[T](expr))
	if err != nil {
		return v, fmt.Errorf("evaluate %s: %w", expr, err)
	}
	return v, nil
}

// Screenshot saves a PNG of the whole page as name (".png" is added) in
// ArtifactDir and returns its path.  Failing to take it fails the test.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png, err := run(b, 30*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(ArtifactDir(b.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot %s", path)
	return path
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ArtifactDir returns the directory for this test's artifacts: a directory
// named after the test under $MESHGW_ARTIFACTS when that is set (so the
// files survive the run), else the test's temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
