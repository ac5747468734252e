package peertest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UDPDrops is what the kernel dropped at the IPv4 UDP sockets bound to port (the drops column of
// /proc/net/udp): datagrams a receiver lost because a loaded host did not let it read in time.
// It is 0 where /proc/net/udp cannot be read.
func UDPDrops(port int) uint64 {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	var n uint64
	suffix := fmt.Sprintf(":%04X", port)
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		d, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
		n += d
	}
	return n
}
