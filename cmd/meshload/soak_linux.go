//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// The soak subcommands are the Go half of scripts/soak.sh: bash starts and
// restarts the processes and churns the readers; these sample the gateways,
// make failed logins from an address of their own, and judge the samples.
var soakCommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"sample":  sampleMain,
	"guess":   guessMain,
	"verdict": verdictMain,
}

// sampleHeader is the first line of every sample CSV.
const sampleHeader = "unix_s,elapsed_s,phase,pid,rss_kib,goroutines,fds,udp_sockets,live_heap_kib,heap_inuse_kib"

// sampled is one process the sampler follows: its PID is read from a file at
// every sample, so a process the script restarts is followed too.
type sampled struct {
	name    string
	pidFile string
	pprof   string // base URL of the process's /debug/pprof/ (goroutines, heap); "": none
	out     *os.File
}

func sampleMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("sample", stderr, "-dir DIR [-interval 10s] [-phase FILE] NAME=PIDFILE[,PPROF_URL]...\n\n"+
		"Every interval, appends to DIR/NAME.csv ("+sampleHeader+") for each process:\n"+
		"VmRSS, open fds and UDP sockets, and from PPROF_URL (the process's /debug/pprof/, e.g.\n"+
		"http://127.0.0.1:9997/debug/pprof/) goroutines and the Go heap after a collection the\n"+
		"sample forces (live heap and heap in use; -1 without a URL). The phase\n"+
		"column is the first line of -phase FILE. Runs until interrupted.")
	dir := fs.String("dir", "", "directory of the CSV files (required)")
	every := fs.Duration("interval", 10*time.Second, "time between samples")
	phase := fs.String("phase", "", "file whose first line names the current phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() == 0 || *every <= 0 {
		fs.Usage()
		return errors.New("sample: -dir, a positive -interval and at least one NAME=PIDFILE are required")
	}
	var procs []*sampled
	defer func() {
		for _, p := range procs {
			p.out.Close()
		}
	}()
	for _, a := range fs.Args() {
		name, spec, ok := strings.Cut(a, "=")
		if !ok || name == "" || spec == "" || strings.ContainsAny(name, "/,") {
			return fmt.Errorf("sample: %q: want NAME=PIDFILE[,URL]", a)
		}
		pf, url, _ := strings.Cut(spec, ",")
		f, err := os.Create(filepath.Join(*dir, name+".csv"))
		if err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		if url != "" && !strings.HasSuffix(url, "/") {
			url += "/"
		}
		procs = append(procs, &sampled{name: name, pidFile: pf, pprof: url, out: f})
		if _, err := fmt.Fprintln(f, sampleHeader); err != nil {
			return fmt.Errorf("sample: %w", err)
		}
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	start := time.Now()
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		ph := readPhase(*phase)
		for _, p := range procs {
			line, err := p.sample(ctx, hc, start, ph)
			if err != nil {
				fmt.Fprintf(stderr, "meshload sample: %s: %v\n", p.name, err)
				continue
			}
			if _, err := io.WriteString(p.out, line); err != nil {
				return fmt.Errorf("sample: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// subFlags is the flag set of the subcommand name, whose usage line goes on
// with usage.
func subFlags(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("meshload "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshload %s %s\n\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// readPhase is the first line of file, "-" when there is none.
func readPhase(file string) string {
	if file == "" {
		return "-"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "-"
	}
	ph, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if ph == "" || strings.ContainsAny(ph, ", ") {
		return "-"
	}
	return ph
}

// sample reads one CSV line of the process; an error when it is not running.
func (p *sampled) sample(ctx context.Context, hc *http.Client, start time.Time, phase string) (string, error) {
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return "", err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("%s: no PID in it", p.pidFile)
	}
	now := time.Now()
	rss, err := procRSS(pid)
	if err != nil {
		return "", err
	}
	fds, udp, err := procSockets(pid)
	if err != nil {
		return "", err
	}
	gr, alloc, inuse := -1, int64(-1), int64(-1)
	if p.pprof != "" {
		if b, err := fetch(ctx, hc, p.pprof+"goroutine?debug=1"); err == nil {
			if n, err := parseGoroutines(b); err == nil {
				gr = n
			}
		}
		// gc=1 collects first, so HeapAlloc is the live heap, not live plus
		// whatever garbage the last collection left: a leak shows in it at once,
		// while RSS swings with the collector's pacing and the scavenger.
		if b, err := fetch(ctx, hc, p.pprof+"heap?debug=1&gc=1"); err == nil {
			alloc, inuse = memStat(b, "HeapAlloc")/1024, memStat(b, "HeapInuse")/1024
		}
	}
	return fmt.Sprintf("%d,%.1f,%s,%d,%d,%d,%d,%d,%d,%d\n", now.Unix(), now.Sub(start).Seconds(), phase, pid, rss/1024, gr, fds, udp, alloc, inuse), nil
}

// procSockets counts a process's open file descriptors and, of them, the
// UDP sockets: fds that are socket:[INODE] with an inode listed in the
// process's network namespace's /proc/PID/net/udp or udp6.
func procSockets(pid int) (fds, udp int, err error) {
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return 0, 0, err
	}
	inodes := map[string]bool{}
	for _, t := range []string{"/net/udp", "/net/udp6"} {
		b, err := os.ReadFile(dir + t)
		if err != nil {
			continue // no IPv6
		}
		for _, ino := range udpInodes(b) {
			inodes[ino] = true
		}
	}
	for _, e := range ents {
		l, err := os.Readlink(dir + "/fd/" + e.Name())
		if err != nil {
			continue // closed since ReadDir
		}
		fds++
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			udp++
		}
	}
	return fds, udp, nil
}

// udpInodes returns the inode column of a /proc/net/udp table (the tenth
// field of each line after the header).
func udpInodes(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) > 9 && f[9] != "0" {
			out = append(out, f[9])
		}
	}
	return out
}

// memStat returns the runtime.MemStats field name from a heap profile with
// debug=1 (its "# Name = N" trailer), in bytes; -1 if absent.
func memStat(b []byte, name string) int64 {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("# "+name+" = ")); ok {
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil && n >= 0 {
				return n
			}
		}
	}
	return -1
}

// fetch GETs url and returns its body (at most 4 MiB).
func fetch(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, res.Status)
	}
	return io.ReadAll(io.LimitReader(res.Body, 4<<20))
}

// parseGoroutines finds the goroutine count in a /metrics page or a pprof
// goroutine profile (debug=1).
func parseGoroutines(b []byte) (int, error) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		s := string(bytes.TrimSpace(line))
		var v string
		if r, ok := strings.CutPrefix(s, "go_goroutines "); ok {
			v = r
		} else if r, ok := strings.CutPrefix(s, "goroutine profile: total "); ok {
			v = r
		} else {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1e9 {
			return 0, fmt.Errorf("goroutine count %q: not a count", v)
		}
		return int(f), nil
	}
	return 0, errors.New("no go_goroutines or goroutine profile total in the page")
}

// guessMain makes failed logins: every -every it connects from -from and
// sends DESCRIBE with Basic credentials that are wrong, counting the answers
// (401 wrong password, 403 banned, 503 hashing busy), until interrupted.
func guessMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("guess", stderr, "-url rtsps://HOST:PORT/ROUTE [-from IP] [flags]\n\n"+
		"Makes a failed login (DESCRIBE with wrong Basic credentials) every -every until interrupted,\n"+
		"then prints how the gateway answered: 401, 403 (banned), 503 (hashing busy), closed, error.")
	rawURL := fs.String("url", "", "route with authentication (rtsps:// for Basic without allow_basic_plain)")
	from := fs.String("from", "", "local IP address to connect from (e.g. 127.0.0.2, so a ban hits only it)")
	user := fs.String("user", "soak", "user name to send")
	pass := fs.String("password", "wrong", "password to send")
	every := fs.Duration("every", 2*time.Second, "time between guesses")
	ca := fs.String("tls-ca", "", "PEM certificate the rtsps:// server is verified against")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := base.ParseURL(*rawURL)
	if err != nil {
		return fmt.Errorf("guess: -url: %w", err)
	}
	if *every <= 0 {
		return errors.New("guess: -every must be positive")
	}
	var laddr *net.TCPAddr
	if *from != "" {
		ip := net.ParseIP(*from)
		if ip == nil {
			return fmt.Errorf("guess: -from %q: not an IP address", *from)
		}
		laddr = &net.TCPAddr{IP: ip}
	}
	cfg := Config{TLSCA: *ca}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return fmt.Errorf("guess: %w", err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(*user+":"+*pass))
	counts := map[string]int{}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		counts[guessOnce(ctx, u, tc, laddr, auth)]++
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "guesses: %s\n", fmtCounts(counts))
			return nil
		case <-t.C:
		}
	}
}

// guessOnce makes one failed login and names its outcome: the status code,
// "closed" when the connection ended without an answer, "error" otherwise.
func guessOnce(ctx context.Context, u *base.URL, tc *tls.Config, laddr *net.TCPAddr, auth string) string {
	rc, err := dialRTSPFrom(ctx, u, tc, 5*time.Second, rtspSmallBuf, laddr)
	if err != nil {
		return "dial-error"
	}
	defer rc.close()
	res, err := rc.request(base.Describe, u, base.Header{"Authorization": base.HeaderValue{auth}}, nil)
	switch {
	case res != nil:
		return strconv.Itoa(int(res.StatusCode))
	case errors.Is(err, io.EOF):
		return "closed"
	}
	return "error"
}

// fmtCounts prints outcome counts in a stable order.
func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
