//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// clockTicks is sysconf(_SC_CLK_TCK), the unit of utime and stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports (the
// kernel's USER_HZ), and Go has no sysconf, so it is a constant.
const clockTicks = 100

// parseStatCPU returns utime+stime in clock ticks from the contents of
// /proc/PID/stat. The second field (comm) is the executable name in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStatCPU(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' closing the command name")
	}
	// after ')' come fields 3 (state) onwards; utime and stime are fields 14 and 15
	f := bytes.Fields(b[i+1:])
	const utime = 14 - 3
	if len(f) <= utime+1 {
		return 0, fmt.Errorf("stat: %d fields after the command name, need %d", len(f), utime+2)
	}
	u, err := strconv.ParseUint(string(f[utime]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime: %w", err)
	}
	s, err := strconv.ParseUint(string(f[utime+1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime: %w", err)
	}
	return u + s, nil
}

// parseStatusRSS returns VmRSS in bytes from the contents of /proc/PID/status.
func parseStatusRSS(b []byte) (uint64, error) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		v, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("status: VmRSS line %q is not \"N kB\"", line)
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("status: no VmRSS line (kernel thread or zombie?)")
}

// procName is "self" or a PID, as in /proc/<name>.
func procName(pid int) string {
	if pid == 0 {
		return "self"
	}
	return strconv.Itoa(pid)
}

// procCPU reads a process's CPU time in clock ticks; pid 0 is this process.
func procCPU(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + procName(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %s: %w", procName(pid), err)
	}
	t, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %s: %w", procName(pid), err)
	}
	return t, nil
}

// procRSS reads a process's resident set size in bytes; pid 0 is this process.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + procName(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("rss of pid %s: %w", procName(pid), err)
	}
	r, err := parseStatusRSS(b)
	if err != nil {
		return 0, fmt.Errorf("rss of pid %s: %w", procName(pid), err)
	}
	return r, nil
}
