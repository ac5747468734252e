package upgrade

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNoPredecessor is returned by Take when no process offers listeners on the path (no socket
// file, or one nobody listens on): the caller starts fresh.
var ErrNoPredecessor = errors.New("upgrade: no running meshgw on the socket")

// Inherited is what a successor received: the listeners, and the connection on which it tells
// its predecessor that it serves.
type Inherited struct {
	conn      *net.UnixConn
	listeners map[string]net.Listener
	names     []string
}

// Take connects to the process offering listeners on path and receives them. timeout bounds the
// exchange.
func Take(path string, timeout time.Duration) (*Inherited, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w %s: %w", ErrNoPredecessor, path, err)
		}
		return nil, fmt.Errorf("upgrade: connect to %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	if err := uc.SetDeadline(time.Now().Add(timeout)); err != nil {
		uc.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	buf := make([]byte, maxMessage)
	oob := make([]byte, syscall.CmsgSpace(maxFiles*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("upgrade: receive listeners from %s: %w", path, err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		uc.Close()
		return nil, err
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("inherited-%d", i))
	}
	// Every received descriptor is closed here: net.FileListener keeps its own duplicate.
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	names, err := decodeOffer(buf[:n], len(files))
	if err != nil {
		uc.Close()
		return nil, err
	}
	in := &Inherited{conn: uc, listeners: map[string]net.Listener{}, names: names}
	for i, f := range files {
		l, err := net.FileListener(f)
		if err != nil {
			in.Close()
			return nil, fmt.Errorf("upgrade: %s is not a listener: %w", names[i], err)
		}
		in.listeners[names[i]] = l
	}
	if err := uc.SetDeadline(time.Time{}); err != nil {
		in.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	return in, nil
}

// parseRights returns the descriptors of the SCM_RIGHTS messages in oob, closing everything else
// it finds so nothing leaks on an error.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %w", errMessage, err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS
		}
		fds = append(fds, got...)
	}
	if len(fds) > maxFiles {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, fmt.Errorf("%w: %d descriptors", errMessage, len(fds))
	}
	return fds, nil
}

// Names lists the listeners received, in the order they came.
func (in *Inherited) Names() []string { return in.names }

// Listener hands over the listener called name to the caller, who then owns it; nil when the
// predecessor had none by that name.
func (in *Inherited) Listener(name string) net.Listener {
	l := in.listeners[name]
	delete(in.listeners, name)
	return l
}

// Ready tells the predecessor that this process serves on the listeners, so it stops accepting,
// and waits (up to timeout) until it released the socket path. Listeners not claimed with
// Listener are closed.
func (in *Inherited) Ready(timeout time.Duration) error {
	defer in.Close()
	if err := in.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	if _, err := in.conn.Write([]byte{replyReady}); err != nil {
		return fmt.Errorf("upgrade: tell the predecessor: %w", err)
	}
	var b [1]byte
	if _, err := in.conn.Read(b[:]); err != nil {
		return fmt.Errorf("upgrade: waiting for the predecessor to release the socket: %w", err)
	}
	if b[0] != replyReleased {
		return fmt.Errorf("upgrade: predecessor answered %q, want released", b[0])
	}
	return nil
}

// Close abandons the handover: the predecessor serves on, and unclaimed listeners are closed.
func (in *Inherited) Close() {
	in.conn.Close()
	for n, l := range in.listeners {
		l.Close()
		delete(in.listeners, n)
	}
}
