//go:build !linux

package st2110out

import "time"

// sleep is time.Sleep where nanosleep is not at hand.
func sleep(d time.Duration) { time.Sleep(d) }
