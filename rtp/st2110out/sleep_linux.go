//go:build linux

package st2110out

import (
	"time"

	"golang.org/x/sys/unix"
)

// sleep blocks the calling thread in nanosleep: high-resolution timers wake it tens of
// microseconds late, where the Go runtime's timers can be a millisecond late.
func sleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
