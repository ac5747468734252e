// Package ring carries the bounded FIFO that sits between a hub's fan-out and
// a sink's sending goroutine (a UDP sink's egress worker, an interleaved
// writer): a ring that grows by doubling up to its bound while a reader's
// backlog reaches a new high-water mark, and then allocates nothing while the
// backlog keeps reaching about that depth, so queueing a packet costs a few
// stores in steady state. A ring whose backlog has fallen far below its size
// for a window of its consumer's batches (after a stall) is halved back, so
// one stall does not hold a reader's memory for the rest of its session. It is
// generic over the queued item because each sink keeps different data beside
// the packet.
package ring
