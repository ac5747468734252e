//go:build linux

package main

import (
	"encoding/csv"
	"math"
	"strings"
	"testing"
)

// FuzzSoakParsers: what the soak reads from a gateway's pprof pages, from
// /proc/PID/net/udp and from its own CSVs never panics a parser; a goroutine
// count or a heap figure that comes out is never negative, and a sample row
// that parses holds only finite numbers (a NaN would make every slope NaN).
func FuzzSoakParsers(f *testing.F) {
	f.Add([]byte("goroutine profile: total 17\n3 @ 0x1\n"))
	f.Add([]byte("# TYPE go_goroutines gauge\ngo_goroutines 4.2e+01\n"))
	f.Add([]byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# HeapAlloc = 2370760\n"))
	f.Add([]byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  713: 0100007F:4A5C 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 123456 2 0000000000000000 0\n"))
	f.Add([]byte("1796693641,40.1,churn,23887,33008,34,17,6,7986,9680\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseGoroutines(b); err == nil && n < 0 {
			t.Fatalf("%d goroutines from %q", n, b)
		}
		if n := memStat(b, "HeapAlloc"); n < -1 {
			t.Fatalf("HeapAlloc %d from %q", n, b)
		}
		for _, ino := range udpInodes(b) {
			if ino == "" || ino == "0" {
				t.Fatalf("inode %q from %q", ino, b)
			}
		}
		recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			return
		}
		for _, r := range recs {
			row, err := parseSampleRow(r)
			if err != nil {
				continue
			}
			for _, v := range append(row.vals[:], row.elapsed) {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("row %+v from %q", row, r)
				}
			}
		}
	})
}
