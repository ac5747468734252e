//go:build !linux

package rtp

import "net"

// gsoAvailable: UDP generic segmentation offload is a Linux feature.
const gsoAvailable = false

// gsoCmsgSpace is never used without GSO.
func gsoCmsgSpace() int { return 0 }

func putGSOSize(oob []byte, size int) {}

// forceBuffers is Linux only (SO_RCVBUFFORCE); elsewhere the capped sizes
// of setupSockets stand.
func forceBuffers(c *net.UDPConn, size int) {}
