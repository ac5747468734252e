package memifrtp

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
)

// recorder is an rtp.SourceHandler that keeps what it gets.
type recorder struct {
	mu      sync.Mutex
	ready   int
	gone    []error
	packets [][]byte
	tracks  []int
}

func (r *recorder) OnReady([]byte, []rtp.Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready++
	return nil
}
func (r *recorder) WriteRTP(track int, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packets = append(r.packets, bytes.Clone(pkt))
	r.tracks = append(r.tracks, track)
}
func (r *recorder) WriteRTCP(int, []byte) {}
func (r *recorder) OnDisconnect(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, err)
}
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.packets)
}

// produce dials m as a producer and writes n packets of tracks 0 and 1 (and one bad buffer).
func produce(t *testing.T, m *memif.Master, n int) *memif.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: 2, Secret: "p"})
	for try := 0; err != nil && try < 50 && strings.Contains(err.Error(), "already has a connected peer"); try++ {
		// the master has not yet seen the previous producer go
		time.Sleep(20 * time.Millisecond)
		c, err = memif.Dial(ctx, memif.DialConfig{Socket: m.Addr(), ID: 2, Secret: "p"})
	}
	if err != nil {
		t.Fatal(err)
	}
	tx := c.Tx(0)
	var hdr [HeaderLen]byte
	for i := range n {
		pkt := peertest.RTPPacket(9, uint16(i), 0, 100+i)
		Header{Track: uint8(i % 2), Length: uint32(len(pkt))}.Put(hdr[:])
		for {
			err := tx.WritePacket(hdr[:], pkt)
			if err == nil {
				break
			}
			if !errors.Is(err, memif.ErrFull) {
				t.Fatal(err)
			}
			tx.Flush()
			time.Sleep(time.Millisecond)
		}
		if i == 10 {
			_ = tx.WritePacket([]byte("not a header"), nil)
		}
	}
	tx.Flush()
	return c
}

func TestInFeedsTheHandler(t *testing.T) {
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(t.TempDir(), "m.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(2, "p")
	rec := &recorder{}
	in := NewIn(ep, []byte("v=0\r\n"), []rtp.Track{{}, {}}, rec, nil)
	defer in.Close()
	c := produce(t, m, 3000)
	for deadline := time.Now().Add(10 * time.Second); rec.count() < 3000; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of 3000", rec.count())
		}
	}
	for i, p := range rec.packets[:3000] {
		if want := peertest.RTPPacket(9, uint16(i), 0, 100+i); !bytes.Equal(p, want) || rec.tracks[i] != i%2 {
			t.Fatalf("packet %d differs", i)
		}
	}
	if st := in.Stats(); st.Packets != 3000 || st.Invalid != 1 || st.Producers != 1 {
		t.Fatalf("stats %+v", st)
	}
	// the producer restarts: OnDisconnect, then OnReady again
	c.Close()
	c2 := produce(t, m, 10)
	defer c2.Close()
	for deadline := time.Now().Add(10 * time.Second); rec.count() < 3010; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart got %d", rec.count()-3000)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.ready != 2 || len(rec.gone) != 1 {
		t.Fatalf("ready %d, disconnects %v", rec.ready, rec.gone)
	}
}
