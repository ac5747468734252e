package memif

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair starts a master with interface 7 (secret "s3cret") and connects a slave with cfg.
func pair(t *testing.T, cfg DialConfig) (*Master, *Endpoint, *Conn, *Conn) {
	t.Helper()
	m, err := Listen(Config{Socket: filepath.Join(t.TempDir(), "memif.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ep, err := m.Add(7, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Socket, cfg.ID, cfg.Secret = m.Addr(), 7, "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sl.Close() })
	mc, err := ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Close() })
	return m, ep, mc, sl
}

// pattern is n bytes that differ per packet and position, so a re-copied or torn chain shows.
func pattern(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*131 + i*7 + i>>8)
	}
	return b
}

// transfer sends sizes from tx to rx, interleaving reads so the ring never stays full, and
// checks every packet's bytes.
func transfer(t *testing.T, tx *Tx, rx *Rx, sizes []int) {
	t.Helper()
	dst := make([]byte, 8<<20)
	got := 0
	read := func() {
		for {
			n, err := rx.ReadPacket(dst)
			if err != nil {
				t.Fatalf("read %d: %v", got, err)
			}
			if n == 0 {
				rx.Flush()
				return
			}
			if want := pattern(got, sizes[got]); !bytes.Equal(dst[:n], want) {
				t.Fatalf("packet %d: %d bytes, want %d, contents differ", got, n, len(want))
			}
			got++
		}
	}
	for i, n := range sizes {
		p := pattern(i, n)
		for tries := 0; ; tries++ {
			err := tx.WritePacket(p[:n/3], p[n/3:])
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) || tries > 1000 {
				t.Fatalf("write %d (%d bytes): %v", i, n, err)
			}
			tx.Flush()
			read()
		}
	}
	tx.Flush()
	read()
	if got != len(sizes) {
		t.Fatalf("read %d packets, sent %d", got, len(sizes))
	}
}

func TestBothDirectionsWithChains(t *testing.T) {
	_, _, mc, sl := pair(t, DialConfig{Log2Ring: 6, BufferSize: 2048})
	// up to 1 MiB: 32-bit lengths over chains of 2 KiB buffers, past gomemif's 64 KiB limit
	sizes := []int{1, 60, 1400, 2047, 2048, 2049, 4096, 65535, 65536, 70000, 1400, 1 << 17}
	t.Run("M2S", func(t *testing.T) { transfer(t, mc.Tx(0), sl.Rx(0), sizes) })
	t.Run("S2M", func(t *testing.T) { transfer(t, sl.Tx(0), mc.Rx(0), sizes) })
	// a packet needing more buffers than the ring has is refused whole
	big := make([]byte, 64*2048+1)
	if err := mc.Tx(0).WritePacket(big, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized packet: %v, want ErrFull", err)
	}
}

func TestManyPacketsWrapTheRing(t *testing.T) {
	_, _, mc, sl := pair(t, DialConfig{Log2Ring: 4, BufferSize: 1500})
	sizes := make([]int, 70000) // u16 indices wrap
	for i := range sizes {
		sizes[i] = 1 + i%3000
	}
	transfer(t, mc.Tx(0), sl.Rx(0), sizes)
	transfer(t, sl.Tx(0), mc.Rx(0), sizes)
}

func TestInterruptsKickAndDrain(t *testing.T) {
	_, _, mc, sl := pair(t, DialConfig{})
	rx := sl.Rx(0)
	start := time.Now()
	if err := rx.Wait(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("Wait returned without a kick")
	}
	if err := mc.Tx(0).WritePacket([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	mc.Tx(0).Flush() // the slave does not poll: kicked
	start = time.Now()
	if err := rx.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("kick not seen")
	}
	// drained: the next Wait times out again
	start = time.Now()
	_ = rx.Wait(50 * time.Millisecond)
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("eventfd not drained")
	}
	// polling: the master does not kick
	rx.SetPolling(true)
	_ = mc.Tx(0).WritePacket([]byte("y"), nil)
	mc.Tx(0).Flush()
	var b [8]byte
	if _, err := unix.Read(sl.m2s[0].efd, b[:]); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("kicked a polling ring: %v", err)
	}
}

func TestPeerGoneAndReconnect(t *testing.T) {
	m, ep, mc, sl := pair(t, DialConfig{})
	sl.Close()
	select {
	case <-mc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("master did not see the slave go")
	}
	if !strings.Contains(mc.Err().Error(), "closed") {
		t.Fatalf("reason %v", mc.Err())
	}
	if err := mc.Tx(0).WritePacket([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after peer left: %v", err)
	}
	mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl2, err := Dial(ctx, DialConfig{Socket: m.Addr(), ID: 7, Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer sl2.Close()
	mc2, err := ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mc2.Close()
	transfer(t, mc2.Tx(0), sl2.Rx(0), []int{100, 5000})
	// the master closing is seen by the slave with its reason
	mc2.Close()
	select {
	case <-sl2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("slave did not see the master go")
	}
	if !strings.Contains(sl2.Err().Error(), "closed") {
		t.Fatalf("reason %v", sl2.Err())
	}
}

func TestStaleSocketRemovedLiveOneKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	m, err := Listen(Config{Socket: path, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st, err)
	}
	if _, err := Listen(Config{Socket: path}); err == nil {
		t.Fatal("second master on a live socket")
	}
	m.Close()
	// a stale file: a socket nobody listens on
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	m, err = Listen(Config{Socket: path})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	m.Close()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{Socket: path}); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@meshgw-test-%d", os.Getpid())
	m, err := Listen(Config{Socket: name})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(1, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := Dial(ctx, DialConfig{Socket: name, ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	mc, err := ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc.Close()
}
