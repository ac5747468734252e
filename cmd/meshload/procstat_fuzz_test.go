package main

import "testing"

// FuzzProcParsers: /proc text from a process we do not control (its comm
// may hold spaces, parentheses, anything) never panics a parser, and a CPU
// figure only comes out of a line that has the closing parenthesis.
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("1234 (meshgw) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 1000 200"))
	f.Add([]byte("7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 11 12"))
	f.Add([]byte("Name:\tmeshgw\nVmRSS:\t   13312 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseStatCPU(b); err == nil {
			found := false
			for _, c := range b {
				if c == ')' {
					found = true
				}
			}
			if !found {
				t.Fatalf("CPU parsed from %q without a comm field", b)
			}
		}
		_, _ = parseStatusRSS(b)
	})
}
