// Command gomemif-peer is a memif slave built on gomemif (go.fd.io/govpp/extras v0.1.0), the
// independent pure-Go memif implementation, used by meshgw's tests as a real peer of its master
// (memif/gomemif_test.go). It lives in a module of its own so gomemif's module requirements stay
// out of meshgw's go.mod.
//
// gomemif is only trusted with packets that fit one buffer (it mishandles longer lengths and
// chains), so buffers are 65535 bytes and packets at most that.
//
// -mode rx reads -count packets and checks each against the pattern the test wrote; -mode tx
// writes -count packets of the pattern. It prints "ok N" when done.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"go.fd.io/govpp/extras/gomemif/memif"
)

// pattern fills b as packet seq: its sequence number, then bytes that depend on both.
func pattern(b []byte, seq uint32) {
	binary.BigEndian.PutUint32(b, seq)
	for i := 4; i < len(b); i++ {
		b[i] = byte(uint32(i)*7 + seq)
	}
}

// Size is the size of packet seq, 60..65535 bytes.
func size(seq uint32) int { return 60 + int(seq*4099)%(65535-60) }

func main() {
	socketName := flag.String("socket", "", "master socket")
	id := flag.Uint("id", 0, "interface id")
	secret := flag.String("secret", "", "secret")
	mode := flag.String("mode", "rx", "rx or tx")
	count := flag.Int("count", 1000, "packets")
	timeout := flag.Duration("timeout", 20*time.Second, "give up after")
	flag.Parse()
	if err := run(*socketName, uint32(*id), *secret, *mode, *count, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "gomemif-peer:", err)
		os.Exit(1)
	}
}

func run(socketName string, id uint32, secret, mode string, count int, timeout time.Duration) error {
	socket, err := memif.NewSocket("gomemif-peer", socketName)
	if err != nil {
		return err
	}
	connected := make(chan *memif.Interface, 1)
	args := &memif.Arguments{
		Id:           id,
		Name:         "gomemif-peer",
		MemoryConfig: memif.MemoryConfig{NumQueuePairs: 1, Log2RingSize: 6, PacketBufferSize: 65535},
		ConnectedFunc: func(i *memif.Interface) error {
			connected <- i
			return nil
		},
	}
	copy(args.Secret[:], secret)
	i, err := socket.NewInterface(args)
	if err != nil {
		return err
	}
	if err := i.RequestConnection(); err != nil {
		return err
	}
	errs := make(chan error, 1)
	socket.StartPolling(errs)
	deadline := time.After(timeout)
	select {
	case <-connected:
	case err := <-errs:
		return err
	case <-deadline:
		return fmt.Errorf("not connected after %v", timeout)
	}
	buf := make([]byte, 65536)
	want := make([]byte, 65536)
	switch mode {
	case "rx":
		q, err := i.GetRxQueue(0)
		if err != nil {
			return err
		}
		for seq := uint32(0); seq < uint32(count); {
			n, err := q.ReadPacket(buf)
			if err != nil {
				return err
			}
			if n == 0 {
				select {
				case <-deadline:
					return fmt.Errorf("received %d of %d", seq, count)
				default:
				}
				time.Sleep(50 * time.Microsecond)
				continue
			}
			w := want[:size(seq)]
			pattern(w, seq)
			if n != len(w) || string(buf[:n]) != string(w) {
				return fmt.Errorf("packet %d: %d bytes, want %d, or different bytes", seq, n, len(w))
			}
			seq++
		}
	case "tx":
		q, err := i.GetTxQueue(0)
		if err != nil {
			return err
		}
		for seq := uint32(0); seq < uint32(count); {
			w := want[:size(seq)]
			pattern(w, seq)
			if q.WritePacket(w) == 0 {
				select {
				case <-deadline:
					return fmt.Errorf("sent %d of %d", seq, count)
				default:
				}
				time.Sleep(50 * time.Microsecond)
				continue
			}
			seq++
		}
	default:
		return fmt.Errorf("mode %q", mode)
	}
	fmt.Printf("ok %d\n", count)
	_ = socket.StopPolling()
	return nil
}
