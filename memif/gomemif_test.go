package memif

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// gomemifPeer builds tests/gomemif, a memif slave on gomemif (go.fd.io/govpp/extras v0.1.0, an
// independent pure-Go implementation), in its own module so its requirements stay out of
// meshgw's. A build failure (no module download) is a missing peer.
func gomemifPeer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gomemif-peer")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "tests", "gomemif")
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := "cannot build tests/gomemif (gomemif v0.1.0 from the module proxy): " + err.Error() + "\n" + string(out)
		if peertest.StrictPeers() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// gomemifPattern and gomemifSize mirror tests/gomemif's packets: sizes 60..65535 (gomemif is
// trusted only with packets that fit its 65535-byte buffers), bytes from the sequence number.
func gomemifPattern(b []byte, seq uint32) {
	binary.BigEndian.PutUint32(b, seq)
	for i := 4; i < len(b); i++ {
		b[i] = byte(uint32(i)*7 + seq)
	}
}

func gomemifSize(seq uint32) int { return 60 + int(seq*4099)%(65535-60) }

func gomemifMaster(t *testing.T) (*Master, *Endpoint) {
	t.Helper()
	dir, err := os.MkdirTemp("", "gm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := Listen(Config{Socket: filepath.Join(dir, "m.sock"), Log: slog.New(slog.NewTextHandler(tlog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	// gomemif v0.1.0 never sends its secret (its INIT leaves the field empty)
	ep, _ := m.Add(4, "")
	return m, ep
}

// TestGomemifReceives: meshgw's master writes 3000 packets of up to 64 KiB into a gomemif
// slave's buffers; gomemif checks every byte.
func TestGomemifReceives(t *testing.T) {
	bin := gomemifPeer(t)
	m, ep := gomemifMaster(t)
	const n = 3000
	p := peertest.Run(context.Background(), t, bin, "-socket", m.Addr(), "-id", "4", "-mode", "rx", "-count", "3000")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	if err != nil {
		t.Fatalf("gomemif did not connect: %v\n%s", err, p.Output())
	}
	defer c.Close()
	tx := c.Tx(0)
	buf := make([]byte, 65535)
	for seq := uint32(0); seq < n; {
		b := buf[:gomemifSize(seq)]
		gomemifPattern(b, seq)
		if err := tx.WritePacket(b, nil); errors.Is(err, ErrFull) {
			tx.Flush()
			if ctx.Err() != nil {
				t.Fatalf("ring stayed full at packet %d\n%s", seq, p.Output())
			}
			time.Sleep(100 * time.Microsecond)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		seq++
	}
	tx.Flush()
	if err := p.Wait(20 * time.Second); err != nil || !strings.Contains(p.Output(), "ok 3000") {
		t.Fatalf("gomemif: %v\n%s", err, p.Output())
	}
}

// TestGomemifSends: a gomemif slave writes 3000 packets of up to 64 KiB; meshgw's master reads
// and checks every byte.
func TestGomemifSends(t *testing.T) {
	bin := gomemifPeer(t)
	m, ep := gomemifMaster(t)
	const n = 3000
	p := peertest.Run(context.Background(), t, bin, "-socket", m.Addr(), "-id", "4", "-mode", "tx", "-count", "3000")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	if err != nil {
		t.Fatalf("gomemif did not connect: %v\n%s", err, p.Output())
	}
	defer c.Close()
	rx := c.Rx(0)
	rx.SetPolling(true)
	buf := make([]byte, 1<<17)
	want := make([]byte, 65535)
	for seq := uint32(0); seq < n; {
		k, err := rx.ReadPacket(buf)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			rx.Flush()
			if ctx.Err() != nil {
				t.Fatalf("received %d of %d\n%s", seq, n, p.Output())
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		w := want[:gomemifSize(seq)]
		gomemifPattern(w, seq)
		if string(buf[:k]) != string(w) {
			t.Fatalf("packet %d: %d bytes, want %d, or different bytes", seq, k, len(w))
		}
		seq++
	}
	rx.Flush()
	if err := p.Wait(20 * time.Second); err != nil {
		t.Fatalf("gomemif: %v\n%s", err, p.Output())
	}
}

// tlog writes a master's log lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
