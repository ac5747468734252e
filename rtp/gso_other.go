//go:build !linux

package rtp

// gsoAvailable: UDP generic segmentation offload is a Linux feature.
const gsoAvailable = false

// gsoCmsgSpace is never used without GSO.
func gsoCmsgSpace() int { return 0 }

func putGSOSize(oob []byte, size int) {}
