//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProcSockets counts this process's fds and UDP sockets, opens one more
// UDP socket and sees both counts rise by one.
func TestProcSockets(t *testing.T) {
	pid := os.Getpid()
	fds0, udp0, err := procSockets(pid)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fds1, udp1, err := procSockets(pid)
	if err != nil {
		t.Fatal(err)
	}
	if fds1 != fds0+1 || udp1 != udp0+1 {
		t.Errorf("after one more UDP socket: fds %d→%d, udp %d→%d; want +1 each", fds0, fds1, udp0, udp1)
	}
	if _, _, err := procSockets(1 << 30); err == nil {
		t.Error("a PID that does not exist gave no error")
	}
}

func TestMemStat(t *testing.T) {
	b := []byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 5\n# HeapAlloc = 2370760\n# HeapInuse = 3981312\n")
	if a, u, x := memStat(b, "HeapAlloc"), memStat(b, "HeapInuse"), memStat(b, "NextGC"); a != 2370760 || u != 3981312 || x != -1 {
		t.Errorf("HeapAlloc %d, HeapInuse %d, NextGC %d (absent)", a, u, x)
	}
}

func TestParseGoroutines(t *testing.T) {
	for in, want := range map[string]int{
		"# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\n": 42,
		"goroutine profile: total 17\n3 @ 0x1\n":                                 17,
	} {
		n, err := parseGoroutines([]byte(in))
		if err != nil || n != want {
			t.Errorf("%q: %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "go_goroutines x\n", "goroutine profile: total -3\n", "other 1\n"} {
		if n, err := parseGoroutines([]byte(in)); err == nil {
			t.Errorf("%q: %d, want an error", in, n)
		}
	}
}

// TestSampleSelf runs the sampler on this process for a few samples and reads the CSV back.
func TestSampleSelf(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "self.pid")
	phase := filepath.Join(dir, "phase")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(phase, []byte("churn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	var out, errs bytes.Buffer
	if err := sampleMain(ctx, []string{"-dir", dir, "-interval", "100ms", "-phase", phase, "self=" + pidFile}, &out, &errs); err != nil {
		t.Fatalf("%v: %s", err, errs.String())
	}
	rows, err := readSamples(filepath.Join(dir, "self.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 {
		t.Fatalf("%d samples in 350 ms at 100 ms", len(rows))
	}
	r := rows[0]
	if r.pid != os.Getpid() || r.phase != "churn" || r.vals[0] < 1024 || r.vals[1] != -1 || r.vals[2] < 3 || r.vals[4] != -1 {
		t.Errorf("sample %+v: want this PID, phase churn, RSS over 1 MiB, goroutines and heap -1 (no URL), some fds", r)
	}
}

// writeSamples writes a sample CSV: quiet start, churn with rss(min) and
// count(min) as the series, quiet end.
func writeSamples(t *testing.T, path string, churnMin float64, rss, heap func(float64) float64, end [4]float64, pids ...int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(sampleHeader + "\n")
	start := [4]float64{20000, 50, 20, 6}
	pid := func(i int) int { return pids[i%len(pids)] }
	fmt.Fprintf(&b, "0,0.0,start,%d,%.0f,%.0f,%.0f,%.0f,%.0f,8000\n", pid(0), start[0], start[1], start[2], start[3], heap(0))
	i := 0
	for s := 10.0; s <= churnMin*60; s += 10 {
		m := s / 60
		// readers come and go: the counts swing with the churn but do not trend
		swing := float64(i%3) * 10
		fmt.Fprintf(&b, "0,%.1f,churn,%d,%.0f,%.0f,%.0f,%.0f,%.0f,8000\n", s+10, pid(i), rss(m), 60+swing, 30+swing, 10+swing, heap(m))
		i++
	}
	fmt.Fprintf(&b, "0,%.1f,quiet,%d,%.0f,%.0f,%.0f,%.0f,%.0f,8000\n", churnMin*60+60, pid(0), end[0], end[1], end[2], end[3], heap(churnMin))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerdict(t *testing.T) {
	dir := t.TempDir()
	flat := func(m float64) float64 { return 30000 + 500*float64(int(m*6)%2) } // ±250 KiB of noise
	live := func(m float64) float64 { return 5000 + 100*float64(int(m*6)%3) }
	for _, c := range []struct {
		name  string
		rss   func(float64) float64
		heap  func(float64) float64
		end   [4]float64
		pids  []int
		leak  string // "" flat
		judge bool
	}{
		{"flat", flat, live, [4]float64{30000, 52, 20, 6}, []int{7}, "", true},
		{"rssleak", func(m float64) float64 { return 30000 + 2048*m }, live, [4]float64{40000, 50, 20, 6}, []int{7}, "RSS grows", true},
		// an argon2id hash in flight at a sample: 19 MiB more live heap, now and then
		{"spiky", flat, func(m float64) float64 { return 5000 + 19456*float64(int(m*6+3)%17/16) }, [4]float64{30000, 50, 20, 6}, []int{7}, "", true},
		{"heapleak", flat, func(m float64) float64 { return 5000 + 128*m }, [4]float64{30000, 50, 20, 6}, []int{7}, "live heap grows", true},
		{"goleak", flat, live, [4]float64{30000, 90, 20, 6}, []int{7}, "goroutines 90 at the quiet end", true},
		{"fdleak", flat, live, [4]float64{30000, 50, 30, 6}, []int{7}, "fds 30", true},
		{"udpleak", flat, live, [4]float64{30000, 50, 20, 9}, []int{7}, "udp_sockets 9", true},
		{"restarted", func(m float64) float64 { return 30000 + 4096*m }, live, [4]float64{90000, 500, 90, 60}, []int{7, 8}, "", false},
	} {
		path := filepath.Join(dir, c.name+".csv")
		writeSamples(t, path, 10, c.rss, c.heap, c.end, c.pids...)
		var out, errs bytes.Buffer
		err := verdictMain(context.Background(), []string{"-warmup", "2m", path}, &out, &errs)
		switch {
		case c.leak == "" && err != nil:
			t.Errorf("%s: %v\n%s%s", c.name, err, out.String(), errs.String())
		case c.leak != "" && (err == nil || !strings.Contains(out.String(), c.leak)):
			t.Errorf("%s: err %v, want a leak naming %q in\n%s", c.name, err, c.leak, out.String())
		case !c.judge && !strings.Contains(out.String(), "not judged"):
			t.Errorf("%s: a restarted process was judged:\n%s", c.name, out.String())
		}
	}
}

func TestVerdictReader(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "gw.csv")
	writeSamples(t, csvPath, 5, func(float64) float64 { return 30000 }, func(float64) float64 { return 5000 }, [4]float64{30000, 50, 20, 6}, 7)
	kill := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC).UnixMilli()
	events := filepath.Join(dir, "events.log")
	if err := os.WriteFile(events, []byte(fmt.Sprintf("%d kill edge\n", kill)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		silences []SilenceReport
		ok       bool
	}{
		{"none", nil, true},
		{"short", []SilenceReport{{EndUnixMS: kill + 600_000, MS: 400}}, true},
		{"after kill", []SilenceReport{{EndUnixMS: kill + 4000, MS: 3500}}, true},
		{"no kill", []SilenceReport{{EndUnixMS: kill + 600_000, MS: 3500}}, false},
	} {
		rep := Report{ReadersOK: 1, WindowSeconds: 600, Silences: c.silences}
		var b bytes.Buffer
		if err := rep.writeJSON(&b); err != nil {
			t.Fatal(err)
		}
		js := filepath.Join(dir, "staying.json")
		if err := os.WriteFile(js, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errs bytes.Buffer
		err := verdictMain(context.Background(), []string{"-warmup", "1m", "-reader", js, "-events", events, csvPath}, &out, &errs)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v\n%s", c.name, err, c.ok, out.String())
		}
	}
}

func TestSilenceLog(t *testing.T) {
	var q silenceLog
	ms := int64(1e6)
	for _, at := range []int64{1000, 1040, 1080, 1500, 1540, 3540} {
		q.arrive(at * ms)
	}
	if q.n != 2 || q.e[0] != (silence{end: 1500 * ms, dur: 420 * ms}) || q.e[1] != (silence{end: 3540 * ms, dur: 2000 * ms}) || q.longest != 2000*ms {
		t.Errorf("silences %+v", q)
	}
	for i := range maxSilences + 5 {
		q.arrive(int64(4000+i*300) * ms)
	}
	if q.n != 2+maxSilences+5 {
		t.Errorf("%d silences counted, want %d", q.n, 2+maxSilences+5)
	}
}

// TestVerdictSum: a stream that moves from one node to another moves its sockets and heap with
// it; judged one by one, the receiving node looks leaky, judged as a sum nothing grew. A leak in
// one of them still shows in the sum.
func TestVerdictSum(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, udp func(i int) int, heap func(i int) int, skip int) string {
		var b strings.Builder
		b.WriteString(sampleHeader + "\n")
		for i := range 80 {
			if i == skip {
				continue // being restarted: no sample
			}
			phase := "churn"
			switch {
			case i < 3:
				phase = "start"
			case i >= 77:
				phase = "quiet"
			}
			fmt.Fprintf(&b, "0,%d.%d,%s,7,30000,20,12,%d,%d,8000\n", i*10, i%3, phase, udp(i), heap(i))
		}
		path := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	moved := func(before, after int) func(int) int {
		return func(i int) int {
			if i < 40 {
				return before
			}
			return after
		}
	}
	a := write("control", moved(2, 6), moved(2000, 6000), -1)
	b := write("edge", moved(6, 2), moved(6000, 2000), 50)
	var out, errs bytes.Buffer
	if err := verdictMain(context.Background(), []string{"-warmup", "1m", a, b}, &out, &errs); err == nil {
		t.Errorf("judged one by one, the moved stream was not taken for a leak:\n%s", out.String())
	}
	out.Reset()
	if err := verdictMain(context.Background(), []string{"-warmup", "1m", "-sum", "control,edge", a, b}, &out, &errs); err != nil {
		t.Errorf("judged as a sum: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "\nsum ") {
		t.Errorf("no sum line:\n%s", out.String())
	}
	c := write("leaky", moved(2, 2), func(i int) int { return 2000 + 20*i }, -1)
	out.Reset()
	if err := verdictMain(context.Background(), []string{"-warmup", "1m", "-sum", "control,edge,leaky", a, b, c}, &out, &errs); err == nil || !strings.Contains(out.String(), "live heap grows") {
		t.Errorf("a leak in one process did not show in the sum: %v\n%s", err, out.String())
	}
}
