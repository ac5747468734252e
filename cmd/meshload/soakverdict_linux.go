//go:build linux

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sampleRow is one line of a sample CSV.
type sampleRow struct {
	elapsed float64 // seconds since the sampler started
	phase   string
	pid     int
	vals    [nSeries]float64 // rss_kib, goroutines, fds, udp_sockets, live_heap_kib, heap_inuse_kib
}

// nSeries is how many series a sample row has.
const nSeries = 6

// The series of a sample row, in CSV order.
var seriesNames = [nSeries]string{"rss_kib", "goroutines", "fds", "udp_sockets", "live_heap_kib", "heap_inuse_kib"}

// leakLimits is the flatness criterion (see docs/TESTING.md, "Churn soak").
type leakLimits struct {
	warmup    time.Duration // churn time left out of the slopes
	rssSlope  float64       // KiB per minute
	heapSlope float64       // KiB per minute of the live heap
	slack     [4]float64    // allowed excess of a quiet end over the quiet start (goroutines, fds, UDP sockets); index 0 unused
}

// procVerdict is what the samples of one process show.
type procVerdict struct {
	name      string
	pids      int // distinct PIDs during the churn: >1 means the script restarted it
	fitted    int // samples in the fit
	slope     [nSeries]float64
	start     *sampleRow // last sample of the quiet start
	end       *sampleRow // last sample of the quiet end
	problems  []string
	notJudged string
}

func verdictMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("verdict", stderr, "[flags] CSV...\n\n"+
		"Judges sample CSVs (meshload sample) of a soak: least-squares slopes over the churn phase after\n"+
		"-warmup, and the quiet end against the quiet start. Processes the script restarted (several\n"+
		"PIDs) are listed but not judged. With -reader, also judges a reader that stayed connected.\n"+
		"Exits non-zero (an error) on a leak or a gap.")
	var lim leakLimits
	fs.DurationVar(&lim.warmup, "warmup", 3*time.Minute, "churn time before the slopes are fitted")
	fs.Float64Var(&lim.rssSlope, "rss-slope", 1024, "largest RSS slope after the warm-up, KiB per minute")
	fs.Float64Var(&lim.heapSlope, "heap-slope", 64, "largest slope of the live heap (HeapAlloc after a collection) after the warm-up, KiB per minute")
	fs.Float64Var(&lim.slack[1], "goroutine-slack", 10, "goroutines the quiet end may have above the quiet start")
	fs.Float64Var(&lim.slack[2], "fd-slack", 4, "open fds the quiet end may have above the quiet start")
	fs.Float64Var(&lim.slack[3], "udp-slack", 2, "UDP sockets the quiet end may have above the quiet start")
	sum := fs.String("sum", "", "comma-separated CSV names (without .csv) judged as one process, the sum of their series: the processes of a cluster, between which work moves")
	readerJSON := fs.String("reader", "", "meshload -json report of the reader that stayed connected")
	events := fs.String("events", "", "file of 'UNIX_MS WHAT' lines: kills, whose silences are excused")
	excuse := fs.Duration("excuse", 15*time.Second, "silence allowed to start within this long after an event")
	maxSilence := fs.Duration("max-silence", time.Second, "longest silence the staying reader may see outside events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("verdict: no CSV given")
	}
	failed := false
	var vs []*procVerdict
	inSum := map[string]bool{}
	if *sum != "" {
		for _, n := range strings.Split(*sum, ",") {
			inSum[n] = true
		}
	}
	var summed [][]sampleRow
	for _, path := range fs.Args() {
		rows, err := readSamples(path)
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		name := strings.TrimSuffix(filepath.Base(path), ".csv")
		v := judge(name, rows, &lim)
		if inSum[name] {
			summed = append(summed, rows)
			delete(inSum, name)
			v.problems, v.notJudged = nil, "judged in the sum"
		}
		vs = append(vs, v)
		failed = failed || len(v.problems) > 0
	}
	if *sum != "" {
		if len(inSum) > 0 {
			return fmt.Errorf("verdict: -sum names processes without a CSV: %v", inSum)
		}
		v := judge("sum", sumSamples(summed), &lim)
		vs = append(vs, v)
		failed = failed || len(v.problems) > 0
	}
	writeVerdicts(stdout, vs, &lim)
	if *readerJSON != "" {
		ok, err := judgeReader(stdout, *readerJSON, *events, *excuse, *maxSilence)
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		failed = failed || !ok
	}
	if failed {
		return errors.New("verdict: LEAK or gap (see above)")
	}
	fmt.Fprintln(stdout, "verdict: flat")
	return nil
}

// readSamples reads a sample CSV.
func readSamples(path string) ([]sampleRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != sampleHeader {
		return nil, fmt.Errorf("%s: not a sample CSV (header %q)", path, sampleHeader)
	}
	var rows []sampleRow
	for i, r := range recs[1:] {
		row, err := parseSampleRow(r)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+2, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func parseSampleRow(r []string) (sampleRow, error) {
	var row sampleRow
	if len(r) != 4+nSeries {
		return row, fmt.Errorf("%d fields, want %d", len(r), 4+nSeries)
	}
	var err error
	if row.elapsed, err = finite(r[1]); err != nil {
		return row, fmt.Errorf("elapsed_s: %w", err)
	}
	row.phase = r[2]
	if row.pid, err = strconv.Atoi(r[3]); err != nil {
		return row, fmt.Errorf("pid: %w", err)
	}
	for k := range row.vals {
		if row.vals[k], err = finite(r[4+k]); err != nil {
			return row, fmt.Errorf("%s: %w", seriesNames[k], err)
		}
	}
	return row, nil
}

// sumSamples adds up the series of several processes sampled at the same
// ticks (rows whose elapsed times are within a second of the first
// process's), keeping only ticks every process has a sample of (a process
// being restarted has none). A process restarted during the churn (several
// PIDs) then makes the sum's PIDs differ too, which judge does not count:
// the sum carries the first process's PID.
func sumSamples(procs [][]sampleRow) []sampleRow {
	if len(procs) == 0 {
		return nil
	}
	next := make([]int, len(procs))
	var out []sampleRow
ticks:
	for _, ref := range procs[0] {
		row := ref
		for p := 1; p < len(procs); p++ {
			rows := procs[p]
			for next[p] < len(rows) && rows[next[p]].elapsed < ref.elapsed-1 {
				next[p]++
			}
			if next[p] == len(rows) || rows[next[p]].elapsed > ref.elapsed+1 {
				continue ticks
			}
			r := rows[next[p]]
			for k := range row.vals {
				if row.vals[k] < 0 || r.vals[k] < 0 {
					row.vals[k] = -1 // not measured in one of them
				} else {
					row.vals[k] += r.vals[k]
				}
			}
		}
		out = append(out, row)
	}
	return out
}

// finite parses a number that is neither NaN nor infinite (ParseFloat
// accepts both, and one of them would make every slope NaN).
func finite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("%q is not a finite number", s)
	}
	return f, err
}

// judge applies the criterion to one process's samples.
func judge(name string, rows []sampleRow, lim *leakLimits) *procVerdict {
	v := &procVerdict{name: name}
	pids := map[int]bool{}
	churnStart := math.NaN()
	for i := range rows {
		r := &rows[i]
		switch r.phase {
		case "start":
			v.start = r
		case "quiet":
			v.end = r
		case "churn":
			pids[r.pid] = true
			if math.IsNaN(churnStart) {
				churnStart = r.elapsed
			}
		}
	}
	v.pids = len(pids)
	if v.pids > 1 {
		v.notJudged = fmt.Sprintf("restarted by the soak (%d PIDs)", v.pids)
		return v
	}
	var fit []sampleRow
	for _, r := range rows {
		if r.phase == "churn" && r.elapsed >= churnStart+lim.warmup.Seconds() {
			fit = append(fit, r)
		}
	}
	v.fitted = len(fit)
	if v.fitted < 3 {
		v.problems = append(v.problems, fmt.Sprintf("%d churn samples after the warm-up: too few to fit", v.fitted))
	} else {
		first := fit[0].vals
		for k := range v.slope {
			v.slope[k] = minSlope(fit, k)
		}
		if v.slope[0] > lim.rssSlope {
			v.problems = append(v.problems, fmt.Sprintf("RSS grows %.0f KiB/min (limit %.0f)", v.slope[0], lim.rssSlope))
		}
		if first[4] >= 0 && v.slope[4] > lim.heapSlope {
			v.problems = append(v.problems, fmt.Sprintf("live heap grows %.0f KiB/min (limit %.0f)", v.slope[4], lim.heapSlope))
		}
	}
	if v.start == nil || v.end == nil {
		v.problems = append(v.problems, "no quiet start or quiet end sample")
		return v
	}
	if v.start.pid != v.end.pid {
		v.problems = append(v.problems, fmt.Sprintf("PID changed from %d to %d", v.start.pid, v.end.pid))
	}
	for k := 1; k < len(lim.slack); k++ {
		a, b := v.start.vals[k], v.end.vals[k]
		if a < 0 || b < 0 {
			continue // not measured (no goroutine endpoint)
		}
		if b > a+lim.slack[k] {
			v.problems = append(v.problems, fmt.Sprintf("%s %.0f at the quiet end, %.0f at the start (slack %.0f)", seriesNames[k], b, a, lim.slack[k]))
		}
	}
	return v
}

// minWindow is how many consecutive samples minSlope reduces to their
// least: a minute at the default 10 s interval.
const minWindow = 6

// minSlope is the least-squares slope, per minute, of series k through the
// least value of each run of minWindow samples (fewer when that would leave
// under six points). A leak raises the least values as much as the rest,
// while what comes and goes does not bias them: an argon2id check in flight
// adds 19 MiB to the live heap of the one sample that catches it, and RSS
// stands high for a while after each burst of them.
func minSlope(rows []sampleRow, k int) float64 {
	w := max(1, min(minWindow, len(rows)/6))
	var xs, ys []float64
	for i := 0; i+w <= len(rows); i += w {
		best := rows[i]
		for _, r := range rows[i+1 : i+w] {
			if r.vals[k] < best.vals[k] {
				best = r
			}
		}
		xs = append(xs, best.elapsed/60)
		ys = append(ys, best.vals[k])
	}
	return slope(xs, ys)
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (y[i] - my)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func writeVerdicts(w io.Writer, vs []*procVerdict, lim *leakLimits) {
	fmt.Fprintf(w, "soak verdict: least-squares slopes per minute, through the least of each 6 samples of churn after a %s warm-up; start→end are the quiet samples before and after the churn\n", lim.warmup)
	fmt.Fprintf(w, "%-8s %-6s %-26s %-18s %-18s %-14s %-26s %s\n", "process", "fitted", "rss KiB start→end slope", "goroutines", "fds", "udp sockets", "live heap KiB", "verdict")
	for _, v := range vs {
		cells := [5]string{}
		for k := range cells {
			a, b := "?", "?"
			if v.start != nil {
				a = strconv.FormatFloat(v.start.vals[k], 'f', 0, 64)
			}
			if v.end != nil {
				b = strconv.FormatFloat(v.end.vals[k], 'f', 0, 64)
			}
			cells[k] = fmt.Sprintf("%s→%s %+.1f/m", a, b, v.slope[k])
		}
		verdict := "flat"
		switch {
		case v.notJudged != "":
			verdict = "not judged: " + v.notJudged
		case len(v.problems) > 0:
			verdict = "LEAK: " + strings.Join(v.problems, "; ")
		}
		fmt.Fprintf(w, "%-8s %-6d %-26s %-18s %-18s %-14s %-26s %s\n", v.name, v.fitted, cells[0], cells[1], cells[2], cells[3], cells[4], verdict)
	}
}

// judgeReader checks the report of the reader that stayed connected: it
// played, kept its connection, and every silence of more than maxSilence
// began within excuse after an event (a node kill).
func judgeReader(w io.Writer, reportPath, eventsPath string, excuse, maxSilence time.Duration) (bool, error) {
	b, err := os.ReadFile(reportPath)
	if err != nil {
		return false, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return false, fmt.Errorf("%s: %w", reportPath, err)
	}
	var evs []int64
	if eventsPath != "" {
		if evs, err = readEvents(eventsPath); err != nil {
			return false, err
		}
	}
	ok := true
	fail := func(format string, args ...any) {
		ok = false
		fmt.Fprintf(w, "staying reader: FAIL: "+format+"\n", args...)
	}
	if rep.ReadersOK == 0 {
		fail("did not play (%s)", rep.FirstError)
	}
	if rep.Disconnected > 0 {
		fail("lost its connection")
	}
	excused, longest := 0, 0.0
	for _, s := range rep.Silences {
		if s.MS <= float64(maxSilence.Milliseconds()) {
			continue
		}
		began := s.EndUnixMS - int64(s.MS)
		if eventBefore(evs, began, excuse) {
			excused++
			continue
		}
		longest = max(longest, s.MS)
		fail("%.0f ms without packets ending %s, after no kill", s.MS, time.UnixMilli(s.EndUnixMS).UTC().Format(time.TimeOnly))
	}
	if rep.SilencesDropped > 0 && rep.MaxSilenceMS > float64(maxSilence.Milliseconds()) {
		fail("%d silences not listed, the longest %.0f ms", rep.SilencesDropped, rep.MaxSilenceMS)
	}
	fmt.Fprintf(w, "staying reader: %.0f s, %d packets, %d lost, %d silences of 250 ms or more (longest %.0f ms), %d beyond %s excused by %d kills\n",
		rep.WindowSeconds, rep.Delivered.Packets, rep.Loss.Lost, len(rep.Silences), rep.MaxSilenceMS, excused, maxSilence, len(evs))
	return ok, nil
}

// readEvents reads the times (unix ms, the first field) of an events file.
func readEvents(path string) ([]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []int64
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		t, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// eventBefore says whether an event happened at most excuse before (or
// just, 1 s, after) the unix-ms time t.
func eventBefore(evs []int64, t int64, excuse time.Duration) bool {
	for _, e := range evs {
		if t >= e-1000 && t <= e+excuse.Milliseconds() {
			return true
		}
	}
	return false
}
