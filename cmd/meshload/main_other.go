//go:build !linux

package main

import (
	"fmt"
	"os"
)

// main explains itself on systems meshload cannot run on: it receives with
// epoll and recvmmsg, relays with sendmmsg, and measures with /proc and
// RUSAGE_THREAD, all of which are Linux's.
func main() {
	fmt.Fprintln(os.Stderr, "meshload: runs on Linux only (epoll, recvmmsg, sendmmsg, /proc, RUSAGE_THREAD)")
	os.Exit(1)
}
