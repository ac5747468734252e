//go:build unix

package rtp

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the test process has used: on a shared machine a
// benchmark's CPU per operation is steadier than its wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
