package upgrade

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Listener is one listening socket a process hands over, under the name its successor asks for.
type Listener struct {
	Name string
	L    *net.TCPListener
}

// OfferConfig configures the running process's side.
type OfferConfig struct {
	// Path is the Unix socket successors connect to. A stale socket file is replaced.
	Path string
	// Listeners are handed to every successor that asks.
	Listeners []Listener
	// Stop is called once a successor serves on the listeners: the process stops accepting on its
	// own copies (closing them closes only this process's descriptors).
	Stop func()
	// ReadyTimeout bounds how long a successor may take between receiving the listeners and
	// serving on them (default 60 s); one that takes longer is given up and this process goes on.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Offer waits on a Unix socket for a successor and hands it the listeners.
type Offer struct {
	cfg    OfferConfig
	ln     *net.UnixListener
	handed chan struct{}
	mu     sync.Mutex
	conn   *net.UnixConn // the successor being served, closed by Close
	closed bool
	wg     sync.WaitGroup
}

// NewOffer listens on cfg.Path and serves successors in the background until one takes over or
// Close is called.
func NewOffer(cfg OfferConfig) (*Offer, error) {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("upgrade: no listeners to offer")
	}
	// A file left by a process that died is stale; a live predecessor was already taken over
	// (Take) before this process got here, and released the path.
	if err := os.Remove(cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("upgrade: remove stale socket %s: %w", cfg.Path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade: listen on %s: %w", cfg.Path, err)
	}
	if err := os.Chmod(cfg.Path, 0o600); err != nil { // the listeners are this user's to take
		ln.Close()
		return nil, fmt.Errorf("upgrade: chmod %s: %w", cfg.Path, err)
	}
	o := &Offer{cfg: cfg, ln: ln, handed: make(chan struct{})}
	o.wg.Add(1)
	go o.serve()
	return o, nil
}

// HandedOver is closed once a successor serves on the listeners and this process stopped accepting.
func (o *Offer) HandedOver() <-chan struct{} { return o.handed }

// Close stops waiting for successors (a handover under way is abandoned).
func (o *Offer) Close() error {
	o.mu.Lock()
	o.closed = true
	if o.conn != nil {
		o.conn.Close()
	}
	o.mu.Unlock()
	err := o.ln.Close()
	o.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("upgrade: close %s: %w", o.cfg.Path, err)
	}
	return nil
}

func (o *Offer) serve() {
	defer o.wg.Done()
	for {
		c, err := o.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				o.cfg.Logger.Error("upgrade socket stopped", "path", o.cfg.Path, "err", err)
			}
			return
		}
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			c.Close()
			return
		}
		o.conn = c
		o.mu.Unlock()
		done, err := o.handOver(c)
		o.mu.Lock()
		o.conn = nil
		o.mu.Unlock()
		c.Close()
		if done {
			close(o.handed)
			return
		}
		o.cfg.Logger.Warn("upgrade: successor gave up before serving; this process serves on", "err", err)
	}
}

// handOver sends the listeners to one successor and waits for it to serve on them. It reports
// whether the successor took over.
func (o *Offer) handOver(c *net.UnixConn) (bool, error) {
	names := make([]string, 0, len(o.cfg.Listeners))
	files := make([]*os.File, 0, len(o.cfg.Listeners))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, l := range o.cfg.Listeners {
		f, err := l.L.File() // a duplicate: this process's listener stays as it is
		if err != nil {
			return false, fmt.Errorf("upgrade: descriptor of %s: %w", l.Name, err)
		}
		names = append(names, l.Name)
		files = append(files, f)
	}
	msg, err := encodeOffer(names)
	if err != nil {
		return false, err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := c.SetDeadline(time.Now().Add(o.cfg.ReadyTimeout)); err != nil {
		return false, fmt.Errorf("upgrade: %w", err)
	}
	if _, _, err := c.WriteMsgUnix(msg, syscall.UnixRights(fds...), nil); err != nil {
		return false, fmt.Errorf("upgrade: send listeners: %w", err)
	}
	o.cfg.Logger.Info("upgrade: listeners sent to a successor; waiting for it to serve", "listeners", names)
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return false, fmt.Errorf("upgrade: waiting for the successor: %w", err)
	}
	if b[0] != replyReady {
		return false, fmt.Errorf("upgrade: successor answered %q, want ready", b[0])
	}
	if o.cfg.Stop != nil {
		o.cfg.Stop()
	}
	// The successor binds the path next for its own successor: release it before saying so.
	if err := o.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		o.cfg.Logger.Warn("upgrade: closing the socket", "err", err)
	}
	if _, err := c.Write([]byte{replyReleased}); err != nil {
		// It serves already; it will find the path free a moment later (NewOffer replaces it).
		o.cfg.Logger.Warn("upgrade: telling the successor the socket is free", "err", err)
	}
	return true, nil
}
