//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// floorSpin is the shortest wait the floor sleeps for. Packets due sooner
// are sent at once: a sleep and wakeup cost more than they would pace, and
// the gateway, too, sends a frame's packets back to back.
const floorSpin = 50 * time.Microsecond

// floorPlan is what the raw relay replays: the schedule recorded from the
// best reader, sent to every reader line of each track.
type floorPlan struct {
	targets [][]floorDst  // per track: every reader line set up for it
	sched   []schedEntry  // arrivals of one recorded window, in time order
	span    time.Duration // length of one replay of sched (the recorded window)
	dur     time.Duration // how long to replay
	ssrc    uint32        // SSRC of the floor's own RTP line
	local   net.IP        // address to send from
}

// floorDst is one reader line's RTP socket.
type floorDst struct {
	ip   net.IP
	port int
}

// floorResult is what the floor did.
type floorResult struct {
	sent    []uint64 // packets sent to each target, per track
	failed  uint64   // messages sendmmsg refused
	cpu     time.Duration
	elapsed time.Duration
}

// rawAddr holds a sockaddr_in or sockaddr_in6 for a prebuilt msghdr.
type rawAddr struct{ sa unix.RawSockaddrInet6 }

func (a *rawAddr) set(ip net.IP, port int) uint32 {
	if ip4 := ip.To4(); ip4 != nil {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.sa))
		sa.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		copy(sa.Addr[:], ip4)
		return unix.SizeofSockaddrInet4
	}
	a.sa.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&a.sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	copy(a.sa.Addr[:], ip.To16())
	return unix.SizeofSockaddrInet6
}

// runFloor replays plan on a goroutine locked to its own OS thread, so that
// RUSAGE_THREAD measures exactly the relay's CPU: building each packet once,
// then sendmmsg to all readers in batches of 64, as the gateway's fan-out does,
// without its queues, pools or scheduling.
func runFloor(ctx context.Context, plan floorPlan, c clock) (floorResult, error) {
	if len(plan.sched) == 0 {
		return floorResult{}, errors.New("floor: no schedule recorded (no packets in the window?)")
	}
	type out struct {
		r   floorResult
		err error
	}
	ch := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r, err := plan.run(ctx, c)
		ch <- out{r, err}
	}()
	o := <-ch
	return o.r, o.err
}

func (plan *floorPlan) run(ctx context.Context, c clock) (floorResult, error) {
	fd, _, err := udpSocket(plan.local, 0, false)
	if err != nil {
		return floorResult{}, fmt.Errorf("floor: %w", err)
	}
	defer unix.Close(fd)
	// the same send buffer the gateway asks for on its RTP socket
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)

	buf := make([]byte, 65536)
	var iov unix.Iovec
	iov.Base = &buf[0]
	hs := make([][]mmsghdr, len(plan.targets))
	names := make([][]rawAddr, len(plan.targets))
	for k, ts := range plan.targets {
		hs[k] = make([]mmsghdr, len(ts))
		names[k] = make([]rawAddr, len(ts))
		for i, t := range ts {
			h := &hs[k][i].hdr
			h.Name = (*byte)(unsafe.Pointer(&names[k][i]))
			h.Namelen = names[k][i].set(t.ip, t.port)
			h.Iov = &iov // one payload shared by every destination
			h.SetIovlen(1)
		}
	}
	res := floorResult{sent: make([]uint64, len(plan.targets))}
	seq := make([]uint16, len(plan.targets))
	span, dur := int64(plan.span), int64(plan.dur)
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	done := ctx.Done()

	var ru0, ru1 unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru0); err != nil {
		return res, fmt.Errorf("floor: getrusage: %w", err)
	}
	start := c.now()
	n := uint32(0)
replay:
	for cycle := int64(0); ; cycle++ {
		for _, e := range plan.sched {
			due := cycle*span + int64(e.at)*1000
			if due >= dur {
				break replay
			}
			if wait := start + due - c.now(); wait > int64(floorSpin) {
				t.Reset(time.Duration(wait))
				select {
				case <-t.C:
				case <-done:
					break replay
				}
			} else {
				select {
				case <-done:
					break replay
				default:
				}
			}
			k := int(e.track)
			if k >= len(hs) || len(hs[k]) == 0 {
				continue
			}
			putRTPHeader(buf, seq[k], uint32(due*9/100000), plan.ssrc, false)
			// stamped with the scheduled time, as the publisher stamps a frame's packets with the
			// frame's: latency then includes the relay's own lateness and burst fan-out time
			putLoadHeader(buf[rtpHdrLen:], start+due, n)
			iov.SetLen(max(int(e.size), minPacket))
			res.failed += uint64(sendmmsg(fd, hs[k]))
			seq[k]++
			res.sent[k]++
			n++
		}
		if span <= 0 {
			break
		}
	}
	res.elapsed = time.Duration(c.now() - start)
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru1); err != nil {
		return res, fmt.Errorf("floor: getrusage: %w", err)
	}
	res.cpu = rusageCPU(&ru1) - rusageCPU(&ru0)
	runtime.KeepAlive(names)
	return res, nil
}

func rusageCPU(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Sec+r.Stime.Sec)*time.Second + time.Duration(r.Utime.Usec+r.Stime.Usec)*time.Microsecond
}
