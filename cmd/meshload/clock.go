//go:build linux

package main

import "time"

// clock is the run's monotonic clock in nanoseconds since the run began.
// Publishers stamp packets with it and readers subtract it, which works
// because both live in this process; time.Since reads the vDSO clock, cheap
// enough to call per batch of packets.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

func (c clock) now() int64 { return int64(time.Since(c.base)) }
