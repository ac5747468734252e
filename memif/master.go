package memif

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Config configures a master (Listen).
type Config struct {
	// Socket is a file path, or "@name" for a Linux abstract socket.
	Socket string
	// Mode is a path socket's file mode; 0 means 0660. Abstract sockets have no permissions.
	Mode fs.FileMode
	// Name is the master's name in HELLO (at most 32 bytes); empty means "meshgw".
	Name string
	// MaxQueues is the most queue pairs a peer may open; 0 means 8.
	MaxQueues int
	// MaxRegions is the most regions a peer may send; 0 means 16.
	MaxRegions int
	// Handshake bounds the time from accept to CONNECTED; 0 means 5 s.
	Handshake time.Duration
	// Log gets a line per peer connected, refused and gone; nil discards.
	Log *slog.Logger
}

// Master listens for memif peers (slaves) and hands each one that connects to a registered
// interface id with the right secret to that id's Endpoint.
type Master struct {
	cfg Config
	ln  *net.UnixListener
	log *slog.Logger

	mu     sync.Mutex
	eps    map[uint32]*Endpoint
	shakes map[*net.UnixConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ErrExists: the interface id is already registered.
var ErrExists = errors.New("memif: interface id already registered")

// Listen opens the master's socket. A stale socket file (nobody listening) is removed first;
// a live one is an error.
func Listen(cfg Config) (*Master, error) {
	if cfg.Socket == "" {
		return nil, errors.New("memif: no socket")
	}
	if cfg.Mode == 0 {
		cfg.Mode = 0o660
	}
	if cfg.Name == "" {
		cfg.Name = "meshgw"
	}
	if len(cfg.Name) > NameLen {
		return nil, fmt.Errorf("memif: name %q longer than %d bytes", cfg.Name, NameLen)
	}
	if cfg.MaxQueues <= 0 {
		cfg.MaxQueues = 8
	}
	if cfg.MaxRegions <= 0 {
		cfg.MaxRegions = 16
	}
	if cfg.Handshake <= 0 {
		cfg.Handshake = 5 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abstract := strings.HasPrefix(cfg.Socket, "@")
	if !abstract {
		if err := removeStale(cfg.Socket); err != nil {
			return nil, err
		}
	}
	ln, err := net.ListenUnix("unixpacket", socketAddr(cfg.Socket))
	if err != nil {
		return nil, fmt.Errorf("memif: listening on %s: %w", cfg.Socket, err)
	}
	if !abstract {
		if err := os.Chmod(cfg.Socket, cfg.Mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("memif: %w", err)
		}
	}
	m := &Master{cfg: cfg, ln: ln, log: log, eps: map[uint32]*Endpoint{}, shakes: map[*net.UnixConn]struct{}{}}
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

// removeStale removes a socket file nobody listens on (left by a process that died).
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("memif: %w", err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("memif: %s exists and is not a socket", path)
	}
	if c, err := net.DialUnix("unixpacket", nil, socketAddr(path)); err == nil {
		c.Close()
		return fmt.Errorf("memif: %s is in use by a live listener", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("memif: removing stale socket: %w", err)
	}
	return nil
}

// Addr is the socket the master listens on.
func (m *Master) Addr() string { return m.cfg.Socket }

// Close stops listening and ends handshakes in flight and connections not yet accepted.
// Connections already accepted belong to their owners, who close them.
func (m *Master) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for c := range m.shakes {
		c.Close()
	}
	eps := make([]*Endpoint, 0, len(m.eps))
	for _, e := range m.eps {
		eps = append(eps, e)
	}
	m.mu.Unlock()
	err := m.ln.Close()
	m.wg.Wait()
	for _, e := range eps {
		e.Close()
	}
	return err
}

func (m *Master) accept() {
	defer m.wg.Done()
	for {
		uc, err := m.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("memif accept", "socket", m.cfg.Socket, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			uc.Close()
			return
		}
		m.shakes[uc] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handshake(uc)
	}
}

// Endpoint is one registered interface id: its connected peers come out of Accept, one at a
// time (a second peer for the id is refused while the first is connected).
type Endpoint struct {
	m      *Master
	id     uint32
	secret string
	ch     chan *Conn
	stop   chan struct{}
	once   sync.Once
	cur    *Conn // under m.mu: the connected peer
}

// Add registers interface id with its secret (empty: none; at most 24 bytes).
func (m *Master) Add(id uint32, secret string) (*Endpoint, error) {
	if len(secret) > SecretLen {
		return nil, fmt.Errorf("memif: secret longer than %d bytes", SecretLen)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.eps[id]; ok {
		return nil, fmt.Errorf("%w: %d", ErrExists, id)
	}
	e := &Endpoint{m: m, id: id, secret: secret, ch: make(chan *Conn, 1), stop: make(chan struct{})}
	m.eps[id] = e
	return e, nil
}

// ID is the endpoint's interface id.
func (e *Endpoint) ID() uint32 { return e.id }

// Accept waits for the next peer to connect to the id.
func (e *Endpoint) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-e.ch:
		return c, nil
	case <-e.stop:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close unregisters the id; a peer connected but not yet accepted is disconnected.
func (e *Endpoint) Close() {
	e.once.Do(func() {
		e.m.mu.Lock()
		if e.m.eps[e.id] == e {
			delete(e.m.eps, e.id)
		}
		e.m.mu.Unlock()
		close(e.stop)
		select {
		case c := <-e.ch:
			c.Close()
		default:
		}
	})
}

// handshake runs the master's side of a connection up to CONNECTED and hands the connection
// to its endpoint; anything wrong is answered with DISCONNECT and a reason, and logged.
func (m *Master) handshake(uc *net.UnixConn) {
	defer m.wg.Done()
	c := &Conn{master: true, ctl: newCtl(uc), done: make(chan struct{})}
	e, err := m.shake(c, time.Now().Add(m.cfg.Handshake))
	m.mu.Lock()
	delete(m.shakes, uc)
	if err == nil && m.closed {
		err = errors.New("master closing")
	}
	if err != nil && e != nil && e.cur == c {
		e.cur = nil
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("memif peer refused", "socket", m.cfg.Socket, "id", c.id, "peer", c.peerName, "reason", err)
		c.disconnect(err.Error())
		uc.Close()
		c.release()
		return
	}
	m.log.Info("memif peer connected", "socket", m.cfg.Socket, "id", c.id, "peer", c.peerName,
		"queues", c.Queues(), "regions", len(c.regions), "ring_size", c.s2m[0].size)
	c.log = m.log.With("socket", m.cfg.Socket, "id", c.id, "peer", c.peerName)
	c.wg.Add(1)
	go c.watch()
	select {
	case e.ch <- c:
	case <-e.stop:
		c.Close()
	}
}

// shake reads the slave's INIT, regions, rings and CONNECT into c, checking each, and answers
// CONNECTED.
func (m *Master) shake(c *Conn, deadline time.Time) (*Endpoint, error) {
	hello := Message{Type: TypeHello, Name: m.cfg.Name, MinVersion: Version, MaxVersion: Version,
		MaxRegion: uint16(m.cfg.MaxRegions - 1), MaxM2S: uint16(m.cfg.MaxQueues - 1), MaxS2M: uint16(m.cfg.MaxQueues - 1),
		MaxLog2Ring: MaxLog2Ring}
	if err := c.ctl.send(hello, -1); err != nil {
		return nil, err
	}
	var e *Endpoint
	for {
		msg, fd, err := c.ctl.recv(deadline)
		if err != nil {
			return nil, err
		}
		if e == nil && msg.Type != TypeInit {
			closeFD(fd)
			return nil, fmt.Errorf("expected INIT, got %s", msg.Type)
		}
		switch msg.Type {
		case TypeInit:
			closeFD(fd)
			if e != nil {
				return nil, errors.New("second INIT")
			}
			c.id, c.peerName = msg.ID, msg.Name
			if msg.Version != Version {
				return nil, fmt.Errorf("version %#x, this master speaks %#x", msg.Version, Version)
			}
			m.mu.Lock()
			e = m.eps[msg.ID]
			m.mu.Unlock()
			if e == nil {
				return nil, fmt.Errorf("unknown interface id %d", msg.ID)
			}
			if subtle.ConstantTimeCompare([]byte(msg.Secret), []byte(e.secret)) != 1 {
				return nil, fmt.Errorf("wrong secret for interface id %d", msg.ID)
			}
		case TypeAddRegion:
			if err := m.addRegion(c, msg, fd); err != nil {
				return nil, err
			}
		case TypeAddRing:
			if err := m.addRing(c, msg, fd); err != nil {
				return nil, err
			}
		case TypeConnect:
			closeFD(fd)
			if err := m.connect(c); err != nil {
				return nil, err
			}
			// one peer per id: reserve it before saying CONNECTED
			m.mu.Lock()
			busy := e.cur != nil
			if !busy {
				e.cur = c
				c.onGone = func() {
					m.mu.Lock()
					if e.cur == c {
						e.cur = nil
					}
					m.mu.Unlock()
				}
			}
			m.mu.Unlock()
			if busy {
				return nil, fmt.Errorf("interface %d already has a connected peer", e.id)
			}
			return e, c.ctl.send(Message{Type: TypeConnected, Name: m.cfg.Name}, -1)
		case TypeDisconnect:
			closeFD(fd)
			return nil, fmt.Errorf("peer disconnected during the handshake: %s", msg.Reason)
		default:
			closeFD(fd)
			return nil, fmt.Errorf("unexpected %s during the handshake", msg.Type)
		}
		if err := c.ctl.send(Message{Type: TypeAck}, -1); err != nil {
			return nil, err
		}
	}
}

func (m *Master) addRegion(c *Conn, msg Message, fd int) error {
	if fd < 0 {
		return fmt.Errorf("ADD_REGION %d without a file descriptor", msg.Index)
	}
	if int(msg.Index) != len(c.regions) || len(c.regions) >= m.cfg.MaxRegions {
		closeFD(fd)
		return fmt.Errorf("ADD_REGION index %d, expected %d (at most %d regions)", msg.Index, len(c.regions), m.cfg.MaxRegions)
	}
	r, err := mapRegion(fd, msg.Size)
	if err != nil {
		closeFD(fd)
		return fmt.Errorf("region %d: %w", msg.Index, err)
	}
	c.regions = append(c.regions, r)
	return nil
}

func (m *Master) addRing(c *Conn, msg Message, fd int) error {
	if fd < 0 {
		return fmt.Errorf("ADD_RING %d without an eventfd", msg.Index)
	}
	if !isEventfd(fd) {
		closeFD(fd)
		return fmt.Errorf("ADD_RING %d: its interrupt fd is not an eventfd", msg.Index)
	}
	rings, dir := &c.m2s, "M2S"
	if msg.Flags&RingS2M != 0 {
		rings, dir = &c.s2m, "S2M"
	}
	if int(msg.Index) != len(*rings) || len(*rings) >= m.cfg.MaxQueues {
		closeFD(fd)
		return fmt.Errorf("ADD_RING %s index %d, expected %d (at most %d queues)", dir, msg.Index, len(*rings), m.cfg.MaxQueues)
	}
	if int(msg.Region) >= len(c.regions) {
		closeFD(fd)
		return fmt.Errorf("ADD_RING %s %d in region %d, which was not added", dir, msg.Index, msg.Region)
	}
	mem := c.regions[msg.Region].mem
	if err := checkRing(len(mem), msg.Offset, msg.Log2Size); err != nil {
		closeFD(fd)
		return fmt.Errorf("ADD_RING %s %d: %w", dir, msg.Index, err)
	}
	*rings = append(*rings, newRing(mem, msg.Offset, msg.Log2Size, fd))
	c.ringAt = append(c.ringAt, ringAt{region: msg.Region, offset: msg.Offset})
	return nil
}

// connect checks what the slave announced before CONNECTED: rings both ways, with cookies.
func (m *Master) connect(c *Conn) error {
	if len(c.s2m) == 0 || len(c.m2s) == 0 {
		return fmt.Errorf("CONNECT with %d S2M and %d M2S rings; one of each is needed", len(c.s2m), len(c.m2s))
	}
	for _, at := range c.ringAt {
		if got := cookieOf(c.regions[at.region].mem, at.offset); got != Cookie {
			return fmt.Errorf("ring at region %d offset %d has cookie %#x, not %#x", at.region, at.offset, got, Cookie)
		}
	}
	c.setup()
	return nil
}
