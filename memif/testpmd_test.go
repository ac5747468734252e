package memif

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// testpmd starts DPDK's testpmd as a memif client (slave) of the master on sock, in mode
// (rxonly or txonly), and returns it with the master's end of the connection. DPDK meets on an
// abstract socket by default since 20.11; socket-abstract=no makes it use the file.
func testpmd(t *testing.T, mode string, extra ...string) (*peertest.Proc, *Conn) {
	t.Helper()
	peertest.Require(t, "dpdk-testpmd")
	dir, err := os.MkdirTemp("", "mgw") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "m.sock")
	m, err := Listen(Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ep, err := m.Add(0, "dpdk-secret")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-l", "0,1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix=" + filepath.Base(dir),
		"--vdev=net_memif0,role=client,id=0,secret=dpdk-secret,socket-abstract=no,socket=" + sock,
		"--", "--forward-mode=" + mode, "--stats-period=1", "--nb-cores=1", "--total-num-mbufs=8192"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	p := peertest.Start(t, exec.CommandContext(ctx, "dpdk-testpmd", append(args, extra...)...))
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	c, err := ep.Accept(actx)
	if err != nil {
		t.Fatalf("testpmd did not connect: %v\n%s", err, p.Tail(3000))
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// lastCount is the last "NAME: N" testpmd printed (its periodic port statistics).
func lastCount(out, name string) uint64 {
	ms := regexp.MustCompile(name+`:\s+(\d+)`).FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(ms[len(ms)-1][1], 10, 64)
	return n
}

// TestTestpmdRxonly: meshgw (master) sends packets into DPDK testpmd (client, rxonly) at a
// stated rate; testpmd's own RX counter must equal what meshgw sent.
func TestTestpmdRxonly(t *testing.T) {
	p, c := testpmd(t, "rxonly")
	// the stated rate; MESHGW_TESTPMD_RATE measures another (the README's table)
	total, size, rate := 200000, 1400, 100000 // packets, bytes, packets per second
	if r, err := strconv.Atoi(os.Getenv("MESHGW_TESTPMD_RATE")); err == nil && r > 0 {
		rate, total = r, 2*r
	}
	pkt := make([]byte, size)
	tx := c.Tx(0)
	start := time.Now()
	full := 0
	for i := 0; i < total; i++ {
		// paced in 1 ms slices at the stated rate
		if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > time.Millisecond {
			tx.Flush()
			time.Sleep(time.Until(due))
		}
		copy(pkt, fmt.Sprintf("%08d", i))
		for {
			err := tx.WritePacket(pkt, nil)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("packet %d: %v", i, err)
			}
			full++
			tx.Flush()
			time.Sleep(20 * time.Microsecond)
		}
	}
	tx.Flush()
	elapsed := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	var got uint64
	for got < uint64(total) && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		got = lastCount(p.Output(), "RX-packets")
	}
	t.Logf("meshgw sent %d packets of %d B in %v (%.0f pkt/s, waited for buffers %d times); testpmd RX-packets %d, RX-missed %d",
		total, size, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), full, got, lastCount(p.Output(), "RX-missed"))
	if got != uint64(total) {
		t.Fatalf("testpmd received %d packets, meshgw sent %d\n%s", got, total, p.Tail(2000))
	}
}

// TestTestpmdTxonly: DPDK testpmd (client, txonly) sends 1400-byte UDP frames as fast as it
// can for a few seconds; every frame it counts as sent must reach meshgw (master) whole.
func TestTestpmdTxonly(t *testing.T) {
	p, c := testpmd(t, "txonly", "--txpkts=1400")
	rx := c.Rx(0)
	rx.SetPolling(true)
	buf := make([]byte, 65536)
	var got, bad uint64
	stop := time.Now().Add(4 * time.Second)
	for time.Now().Before(stop) {
		n, err := rx.ReadPacket(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			rx.Flush()
			time.Sleep(20 * time.Microsecond)
			continue
		}
		if n != 1400 {
			bad++
		}
		got++
	}
	rx.Flush()
	// stop testpmd: it prints its final counters; then read what is left in the ring
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	for {
		n, err := rx.ReadPacket(buf)
		if err != nil || n == 0 {
			break
		}
		got++
	}
	sent := lastCount(p.Output(), "TX-packets")
	t.Logf("testpmd TX-packets %d (TX-dropped, ring full: %d); meshgw received %d, %d of a wrong size",
		sent, lastCount(p.Output(), "TX-dropped"), got, bad)
	if sent == 0 || got != sent || bad != 0 {
		t.Fatalf("testpmd sent %d, meshgw received %d (%d wrong size)\n%s", sent, got, bad, p.Tail(3000))
	}
}
