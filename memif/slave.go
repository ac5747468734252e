package memif

import (
	"context"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// DialConfig configures a slave (Dial): meshgw's own client, used by `meshgw memif` and tests.
type DialConfig struct {
	// Socket is the master's socket: a path or "@name".
	Socket string
	// ID and Secret select the master's interface.
	ID     uint32
	Secret string
	// Name is the slave's name in INIT; empty means "meshgw-client".
	Name string
	// Queues is the number of queue pairs; 0 means 1 (fewer if the master allows fewer).
	Queues int
	// Log2Ring is log2 of the ring size; 0 means 10 (1024 buffers per ring).
	Log2Ring uint8
	// BufferSize is the size of each buffer; 0 means 2048. Larger packets are chained.
	BufferSize uint32
	// Timeout bounds the handshake; 0 means 5 s.
	Timeout time.Duration

	// tamper, in tests, changes a message (or the fd sent with it) before it goes out: the
	// hostile peer cases.
	tamper func(m *Message, fd *int)
}

// Dial connects to a master as its slave: it allocates the shared memory (one memfd sealed
// against shrinking, rings first, then one buffer per ring slot), announces it, and returns
// the connected interface.
func Dial(ctx context.Context, cfg DialConfig) (*Conn, error) {
	if cfg.Name == "" {
		cfg.Name = "meshgw-client"
	}
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	if cfg.Log2Ring == 0 {
		cfg.Log2Ring = 10
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 2048
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log2Ring > MaxLog2Ring {
		return nil, fmt.Errorf("memif: ring of 2^%d, at most 2^%d", cfg.Log2Ring, MaxLog2Ring)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("memif: %w", err)
	}
	c := &Conn{ctl: newCtl(nc.(*net.UnixConn)), done: make(chan struct{}), id: cfg.ID, bufSize: cfg.BufferSize}
	deadline := time.Now().Add(cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := dialShake(c, cfg, deadline); err != nil {
		c.ctl.c.Close()
		c.release()
		return nil, fmt.Errorf("memif: %s: %w", cfg.Socket, err)
	}
	c.wg.Add(1)
	go c.watch()
	return c, nil
}

func dialShake(c *Conn, cfg DialConfig, deadline time.Time) error {
	hello, err := expect(c, TypeHello, deadline)
	if err != nil {
		return err
	}
	c.peerName = hello.Name
	if hello.MinVersion > Version || hello.MaxVersion < Version {
		return fmt.Errorf("master speaks versions %#x..%#x, not %#x", hello.MinVersion, hello.MaxVersion, Version)
	}
	q := min(cfg.Queues, int(hello.MaxS2M)+1, int(hello.MaxM2S)+1)
	log2 := min(cfg.Log2Ring, hello.MaxLog2Ring)
	if err := c.alloc(q, log2, cfg.BufferSize); err != nil {
		return err
	}
	send := func(m Message, fd int) error {
		if cfg.tamper != nil {
			cfg.tamper(&m, &fd)
		}
		if err := c.ctl.send(m, fd); err != nil {
			return err
		}
		if m.Type == TypeConnect {
			_, err := expect(c, TypeConnected, deadline)
			return err
		}
		_, err := expect(c, TypeAck, deadline)
		return err
	}
	if err := send(Message{Type: TypeInit, Version: Version, ID: cfg.ID, Mode: ModeEthernet, Secret: cfg.Secret, Name: cfg.Name}, -1); err != nil {
		return err
	}
	if err := send(Message{Type: TypeAddRegion, Index: 0, Size: uint64(len(c.regions[0].mem))}, c.regions[0].fd); err != nil {
		return err
	}
	for _, dir := range []struct {
		rings []*ring
		flags uint16
	}{{c.s2m, RingS2M}, {c.m2s, 0}} {
		for i, r := range dir.rings {
			m := Message{Type: TypeAddRing, Flags: dir.flags, Index: uint16(i), Region: 0, Offset: c.ringAt[ringIndex(dir.flags, i, q)].offset, Log2Size: log2}
			if err := send(m, r.efd); err != nil {
				return err
			}
		}
	}
	if err := send(Message{Type: TypeConnect, Name: cfg.Name}, -1); err != nil {
		return err
	}
	c.setup()
	return nil
}

// ringIndex is the position of a ring in the slave's layout: S2M rings first, then M2S.
func ringIndex(flags uint16, i, q int) int {
	if flags&RingS2M != 0 {
		return i
	}
	return q + i
}

// expect reads the next message, which must be of type t; DISCONNECT is the master's refusal.
func expect(c *Conn, t Type, deadline time.Time) (Message, error) {
	m, fd, err := c.ctl.recv(deadline)
	closeFD(fd)
	if err != nil {
		return m, err
	}
	if m.Type == TypeDisconnect {
		return m, &RefusedError{Code: m.Code, Reason: m.Reason}
	}
	if m.Type != t {
		return m, fmt.Errorf("expected %s, got %s", t, m.Type)
	}
	return m, nil
}

// RefusedError is a master's DISCONNECT during the handshake.
type RefusedError struct {
	Code   uint32
	Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("refused by the master: %s", e.Reason) }

// alloc makes the slave's memfd and eventfds and initialises its rings.
func (c *Conn) alloc(q int, log2 uint8, bufSize uint32) error {
	n := 1 << log2
	ringBytes := (ringHeader + descSize*n + 63) &^ 63
	nRings := 2 * q
	bufStart := nRings * ringBytes
	size := uint64(bufStart) + uint64(nRings*n)*uint64(bufSize)
	if size > maxRegionSize {
		return fmt.Errorf("%d queues of 2^%d buffers of %d bytes exceed a region", q, log2, bufSize)
	}
	fd, err := unix.MemfdCreate("meshgw-memif", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return fmt.Errorf("sizing the region: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK); err != nil {
		unix.Close(fd)
		return fmt.Errorf("sealing the region: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("mapping the region: %w", err)
	}
	c.regions = []region{{mem: mem, fd: fd}}
	for i := range nRings {
		efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
		off := uint32(i * ringBytes)
		le.PutUint32(mem[off:], Cookie)
		r := newRing(mem, off, log2, efd)
		r.base = uint32(bufStart) + uint32(i*n)*bufSize
		for s := range n {
			r.store(uint16(s), descriptor{offset: r.base + uint32(s)*bufSize})
		}
		c.ringAt = append(c.ringAt, ringAt{offset: off})
		if i < q {
			c.s2m = append(c.s2m, r)
		} else {
			c.m2s = append(c.m2s, r)
		}
	}
	return nil
}
