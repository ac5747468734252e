package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// hlsLoadEnv sets the viewers of TestHLSLoad (e.g. MESHGW_HLS_LOAD=100); unset skips it.
const hlsLoadEnv = "MESHGW_HLS_LOAD"

// procCPU is a process's user+system CPU time so far, from /proc.
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 on
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// hlsViewer is one load client. In parts mode it behaves like an LL-HLS player (hls.js with
// lowLatencyMode): a blocking playlist reload for the part it wants, then that part, five times a
// second. Otherwise like a plain HLS player: every second the playlist and the newest segment.
type hlsViewer struct {
	c               *http.Client
	base            string
	requests, fails atomic.Int64
	bytes, media    atomic.Int64
}

var (
	reHint    = regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`)
	reSegURI  = regexp.MustCompile(`(?m)^(\S+_seg(\d+)\.mp4)\s*$`)
	rePartURI = regexp.MustCompile(`(?m)^#EXT-X-PART:.*URI="`)
)

func (v *hlsViewer) get(ctx context.Context, path string) (string, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.base+path, nil)
	v.requests.Add(1)
	res, err := v.c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			v.fails.Add(1)
		}
		return "", false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		if ctx.Err() == nil {
			v.fails.Add(1)
		}
		return "", false
	}
	v.bytes.Add(int64(len(b)))
	return string(b), true
}

func (v *hlsViewer) run(ctx context.Context, media string, parts bool) {
	pl, ok := v.get(ctx, media)
	if !ok {
		return
	}
	if init := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl); init != nil {
		v.get(ctx, init[1])
	}
	for ctx.Err() == nil {
		if !parts {
			if seg := reSegURI.FindAllStringSubmatch(pl, -1); len(seg) > 0 {
				if _, ok := v.get(ctx, seg[len(seg)-1][1]); ok {
					v.media.Add(1)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if pl, ok = v.get(ctx, media); !ok {
				time.Sleep(time.Second)
			}
			continue
		}
		// the preload hint is the part being made: fetching it blocks until it is done
		hint := reHint.FindStringSubmatch(pl)
		segs := reSegURI.FindAllStringSubmatch(pl, -1)
		if hint == nil || len(segs) == 0 {
			time.Sleep(200 * time.Millisecond)
			pl, _ = v.get(ctx, media)
			continue
		}
		msn, _ := strconv.Atoi(segs[len(segs)-1][2])
		msn++
		after := pl[strings.LastIndex(pl, segs[len(segs)-1][1]):]
		part := len(rePartURI.FindAllStringIndex(after, -1))
		if _, ok := v.get(ctx, hint[1]); ok {
			v.media.Add(1)
		}
		// blocking reload until that part is listed; its answer carries the next hint
		if pl, ok = v.get(ctx, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", media, msn, part)); !ok {
			time.Sleep(200 * time.Millisecond)
			pl, _ = v.get(ctx, media)
		}
	}
}

// TestHLSLoad measures the gateway's CPU per HLS viewer: meshgw runs as its own process with the
// demo route over LL-HLS, and N viewers (MESHGW_HLS_LOAD=N) watch for 20 s as LL-HLS players
// (parts) and then as plain HLS players (segments); one viewer first gives the baseline (the
// route's source and muxer). Behind the env var: it loads the machine for a minute.
func TestHLSLoad(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(hlsLoadEnv))
	if n <= 0 {
		t.Skipf("set %s=N to run N HLS viewers", hlsLoadEnv)
	}
	dir := t.TempDir()
	rtspAddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	hlsAddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("log_level: warn\nrtsp: {listen: %q, rtp_port: 0}\nhls: {listen: %q}\nroutes:\n  demo: {source: demo}\n", rtspAddr, hlsAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := peertest.Run(context.Background(), t, meshgwBinary(t), "run", "-c", cfg)
	base := "http://" + hlsAddr + "/demo/"
	deadline := time.Now().Add(20 * time.Second)
	var index string
	for {
		res, err := http.Get(base + "index.m3u8")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				index = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never served the playlist: %v\n%s", err, p.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	media := regexp.MustCompile(`(?m)^(\S+_stream\.m3u8)\s*$`).FindStringSubmatch(index)[1]
	tr := &http.Transport{MaxIdleConnsPerHost: 4 * n, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	measure := func(viewers int, parts bool, d time.Duration) (cpu time.Duration, v *hlsViewer) {
		v = &hlsViewer{c: &http.Client{Transport: tr, Timeout: 10 * time.Second}, base: base}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		c0 := procCPU(t, p.Pid())
		var wg sync.WaitGroup
		for i := 0; i < viewers; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); v.run(ctx, media, parts) }()
		}
		wg.Wait()
		return procCPU(t, p.Pid()) - c0, v
	}
	const d = 20 * time.Second
	report := func(name string, viewers int, cpu time.Duration, v *hlsViewer) float64 {
		pct := 100 * cpu.Seconds() / d.Seconds()
		t.Logf("%s: %d viewers, %s: gateway CPU %v = %.1f%% of a core; %d requests (%.0f/s), %d parts or segments, %.1f MB, %d failed",
			name, viewers, d, cpu, pct, v.requests.Load(), float64(v.requests.Load())/d.Seconds(), v.media.Load(), float64(v.bytes.Load())/1e6, v.fails.Load())
		return pct
	}
	baseCPU, bv := measure(1, true, d)
	b := report("baseline LL-HLS", 1, baseCPU, bv)
	for _, parts := range []bool{true, false} {
		name := "LL-HLS (parts)"
		if !parts {
			name = "plain HLS (segments)"
		}
		cpu, v := measure(n, parts, d)
		pct := report(name, n, cpu, v)
		t.Logf("%s: %.3f%% of a core per viewer above the one-viewer baseline (%.2f ms of CPU per viewer-second)",
			name, (pct-b)/float64(n-1), (cpu-baseCPU).Seconds()*1000/float64(n-1)/d.Seconds())
		if f := v.fails.Load(); f > v.requests.Load()/100 {
			t.Errorf("%s: %d of %d requests failed", name, f, v.requests.Load())
		}
	}
}
