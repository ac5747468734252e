package memif

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestHostilePeersAreRefused drives the master with a slave that lies, and checks that each
// is refused with a reason (on the slave's side and in the master's log), and that the master
// still serves an honest peer afterwards.
func TestHostilePeersAreRefused(t *testing.T) {
	var logBuf peertest.LogBuffer
	m, err := Listen(Config{Socket: filepath.Join(t.TempDir(), "m.sock"), Log: logBuf.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(3, "good")
	cases := []struct {
		name   string
		cfg    DialConfig
		reason string
	}{
		{"wrong secret", DialConfig{ID: 3, Secret: "bad"}, "wrong secret"},
		{"unknown id", DialConfig{ID: 4, Secret: "good"}, "unknown interface id 4"},
		{"ring outside region", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, _ *int) {
			if m.Type == TypeAddRing {
				m.Offset = 1 << 30
			}
		}}, "beyond its region"},
		{"ring too large", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, _ *int) {
			if m.Type == TypeAddRing {
				m.Log2Size = 15
			}
		}}, "at most 2^14"},
		{"region not shared memory", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, fd *int) {
			if m.Type == TypeAddRegion {
				f, err := os.CreateTemp(t.TempDir(), "notshm")
				if err != nil {
					t.Fatal(err)
				}
				f.Truncate(int64(m.Size))
				*fd, _ = unix.Dup(int(f.Fd()))
				f.Close()
			}
		}}, "not shared memory"},
		{"region larger than its memfd", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, _ *int) {
			if m.Type == TypeAddRegion {
				m.Size *= 2
			}
		}}, "announced"},
		{"ring interrupt not an eventfd", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, fd *int) {
			if m.Type == TypeAddRing {
				p := make([]int, 2)
				unix.Pipe(p)
				unix.Close(p[1])
				*fd = p[0]
			}
		}}, "not an eventfd"},
		{"bad cookie", DialConfig{ID: 3, Secret: "good", tamper: func(m *Message, _ *int) {
			if m.Type == TypeAddRing && m.Flags&RingS2M == 0 {
				m.Offset += 64 // inside the region, but no ring there
			}
		}}, "cookie"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Socket = m.Addr()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := Dial(ctx, tc.cfg)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(re.Reason, tc.reason) {
				t.Fatalf("refusal %v, want a DISCONNECT saying %q", err, tc.reason)
			}
			waitFor(t, func() bool { return strings.Contains(logBuf.String(), tc.reason) })
		})
	}
	// still serving
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := Dial(ctx, DialConfig{Socket: m.Addr(), ID: 3, Secret: "good"})
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	mc, err := ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	// a second peer for a connected id is refused
	if c, err := Dial(ctx, DialConfig{Socket: m.Addr(), ID: 3, Secret: "good"}); err == nil {
		c.Close()
		t.Fatal("second peer connected")
	}
}

// TestHostileDescriptorsDropThePeer: once connected, a slave that points descriptors outside
// its region or claims lengths beyond its buffers is disconnected with the reason, and the
// master's data path returns an error instead of touching the memory.
func TestHostileDescriptorsDropThePeer(t *testing.T) {
	t.Run("posted buffer beyond region", func(t *testing.T) {
		_, _, mc, sl := pair(t, DialConfig{Log2Ring: 4})
		r := sl.m2s[0]
		r.store(r.head()-1+0, descriptor{offset: uint32(len(sl.regions[0].mem)) - 10, length: 2048})
		var err error
		for range 20 {
			if err = mc.Tx(0).WritePacket(make([]byte, 1000), nil); err != nil {
				break
			}
		}
		expectDropped(t, err, mc, sl, "ends beyond region")
	})
	t.Run("length beyond region", func(t *testing.T) {
		_, _, mc, sl := pair(t, DialConfig{Log2Ring: 4})
		r := sl.s2m[0]
		r.store(0, descriptor{offset: r.base, length: 1 << 31})
		r.setHead(1)
		_, err := mc.Rx(0).ReadPacket(make([]byte, 4096))
		expectDropped(t, err, mc, sl, "ends beyond region")
	})
	t.Run("unknown region", func(t *testing.T) {
		_, _, mc, sl := pair(t, DialConfig{Log2Ring: 4})
		r := sl.s2m[0]
		r.store(0, descriptor{region: 5, offset: r.base, length: 10})
		r.setHead(1)
		_, err := mc.Rx(0).ReadPacket(make([]byte, 4096))
		expectDropped(t, err, mc, sl, "region 5")
	})
	t.Run("head beyond ring", func(t *testing.T) {
		_, _, mc, sl := pair(t, DialConfig{Log2Ring: 4})
		sl.s2m[0].setHead(100)
		_, err := mc.Rx(0).ReadPacket(make([]byte, 4096))
		expectDropped(t, err, mc, sl, "slots filled")
	})
}

func expectDropped(t *testing.T, err error, mc, sl *Conn, reason string) {
	t.Helper()
	if !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("error %v, want ErrPeer with %q", err, reason)
	}
	select {
	case <-sl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("peer not disconnected")
	}
	if !strings.Contains(sl.Err().Error(), reason) {
		t.Fatalf("peer told %v, want %q", sl.Err(), reason)
	}
	if err := mc.Tx(0).WritePacket([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("dropped connection still writes: %v", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
