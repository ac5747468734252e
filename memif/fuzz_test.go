package memif

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzDecode: any 128 bytes decode to a message or an error, and a decoded message encodes back
// to a message that decodes the same.
func FuzzDecode(f *testing.F) {
	var b [MsgSize]byte
	for _, m := range []Message{
		{Type: TypeHello, Name: "meshgw", MinVersion: Version, MaxVersion: Version, MaxRegion: 15, MaxM2S: 7, MaxS2M: 7, MaxLog2Ring: 14},
		{Type: TypeInit, Version: Version, ID: 9, Mode: ModeIP, Secret: "secret", Name: "dpdk"},
		{Type: TypeAddRegion, Index: 1, Size: 1 << 20},
		{Type: TypeAddRing, Flags: RingS2M, Index: 2, Region: 1, Offset: 4096, Log2Size: 10, PrivHdr: 0},
		{Type: TypeConnect, Name: "if0"},
		{Type: TypeConnected, Name: "meshgw"},
		{Type: TypeDisconnect, Code: 3, Reason: "wrong secret"},
		{Type: TypeAck},
	} {
		if err := m.Encode(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b[:])
	}
	f.Add([]byte{9, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			return
		}
		var out [MsgSize]byte
		if err := m.Encode(&out); err != nil {
			// a field filled to its end (no NUL) with a NUL later is not re-encodable: fine
			return
		}
		m2, err := Decode(out[:])
		if err != nil || m2 != m {
			t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}

// FuzzDescriptors puts fuzzed rings (head, tail, descriptors) in a region and runs the master's
// data path over them: every outcome is a packet, nothing, or ErrPeer, never a fault.
func FuzzDescriptors(f *testing.F) {
	f.Add(uint16(2), uint16(0), uint16(0), []byte{0, 0, 0, 0, 16, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(9), uint16(3), uint16(1), []byte{1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(65535), uint16(1), uint16(0), []byte{1, 0, 1, 0, 8, 0, 0, 0, 240, 15, 0, 0})
	f.Fuzz(func(t *testing.T, head, tail, reg1 uint16, descs []byte) {
		const log2, regionLen = 3, 4096
		mem := make([]byte, regionLen)
		copy(mem[ringHeader:ringHeader+descSize<<log2], descs)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
		if err != nil {
			t.Fatal(err)
		}
		fl := os.NewFile(uintptr(fds[0]), "ctl")
		nc, err := net.FileConn(fl)
		fl.Close()
		unix.Close(fds[1])
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{master: true, ctl: newCtl(nc.(*net.UnixConn)), done: make(chan struct{}),
			regions: []region{{mem: mem, fd: -1}, {mem: make([]byte, int(reg1)), fd: -1}}}
		defer nc.Close()
		r := newRing(mem, 0, log2, -1)
		r.setHead(head)
		r.setTail(tail)
		c.s2m, c.m2s = []*ring{r}, []*ring{r}
		c.setup()
		dst := make([]byte, 512)
		for range 20 {
			n, err := c.Rx(0).ReadPacket(dst)
			if err != nil {
				if !errors.Is(err, ErrPeer) && !errors.Is(err, ErrTooBig) {
					t.Fatalf("read: %v", err)
				}
				break
			}
			if n == 0 {
				break
			}
		}
		c.Rx(0).Flush()
		for range 20 {
			err := c.Tx(0).WritePacket(make([]byte, 700), nil)
			if err != nil {
				if !errors.Is(err, ErrPeer) && !errors.Is(err, ErrFull) && !errors.Is(err, ErrClosed) {
					t.Fatalf("write: %v", err)
				}
				break
			}
		}
	})
}

// FuzzHandshake feeds a master's handshake arbitrary control messages (128-byte chunks of the
// input, without file descriptors): it must refuse or time out, never panic or hang.
func FuzzHandshake(f *testing.F) {
	var b [MsgSize]byte
	var seed []byte
	for _, m := range []Message{
		{Type: TypeInit, Version: Version, ID: 1, Secret: "s"},
		{Type: TypeAddRegion, Size: 4096},
		{Type: TypeAddRing, Flags: RingS2M, Log2Size: 4},
		{Type: TypeConnect},
	} {
		_ = m.Encode(&b)
		seed = append(seed, b[:]...)
	}
	f.Add(seed)
	f.Add(seed[:MsgSize])
	f.Add([]byte{3, 0})
	m := &Master{cfg: Config{Name: "fuzz", MaxQueues: 2, MaxRegions: 2, Handshake: 200 * time.Millisecond},
		log: slog.New(slog.DiscardHandler), eps: map[uint32]*Endpoint{}, shakes: map[*net.UnixConn]struct{}{}}
	ep, err := m.Add(1, "s")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
		if err != nil {
			t.Fatal(err)
		}
		fl := os.NewFile(uintptr(fds[0]), "master")
		nc, err := net.FileConn(fl)
		fl.Close()
		if err != nil {
			t.Fatal(err)
		}
		peer := os.NewFile(uintptr(fds[1]), "peer")
		m.wg.Add(1)
		done := make(chan struct{})
		go func() {
			m.handshake(nc.(*net.UnixConn))
			close(done)
		}()
		for len(in) > 0 {
			n := min(len(in), MsgSize)
			if _, err := peer.Write(in[:n]); err != nil {
				break
			}
			in = in[n:]
		}
		peer.Close() // the peer goes: the handshake ends on EOF, not on its deadline
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("handshake hangs")
		}
		select {
		case c := <-ep.ch:
			t.Fatalf("connected without regions: %+v", c)
		default:
		}
	})
}
