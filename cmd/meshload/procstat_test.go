//go:build linux

package main

import (
	"os"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	cases := []struct {
		name string
		stat string
		want uint64
	}{
		{"plain", "1234 (meshgw) S 1 1234 1234 0 -1 4194560 3000 0 0 0 150 70 0 0 20 0 9 0 5000 1000000 3000 18446744073709551615\n", 220},
		{"spaces and parens in comm", "42 (a (weird) ) name)) R 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 1 1 1 1\n", 15},
		{"large", "7 (x) S 1 7 7 0 -1 0 0 0 0 0 123456789012 1 0 0 20 0 1 0 1 1 1 1", 123456789013},
	}
	for _, c := range cases {
		got, err := parseStatCPU([]byte(c.stat))
		if err != nil || got != c.want {
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 1 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	got, err := parseStatusRSS([]byte("Name:\tmeshgw\nVmPeak:\t  900 kB\nVmRSS:\t   14120 kB\nThreads:\t9\n"))
	if err != nil || got != 14120*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procCPU(0); err != nil {
		t.Fatal(err)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss == 0 {
		t.Fatalf("rss %d, %v", rss, err)
	}
}
