package memif

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// ctl is one end of a control socket: 128-byte messages, each with at most one fd.
type ctl struct {
	c   *net.UnixConn
	buf [MsgSize + 1]byte // one more: a longer message is an error, not a truncation
	oob []byte
	out [MsgSize]byte
}

func newCtl(c *net.UnixConn) *ctl {
	return &ctl{c: c, oob: make([]byte, unix.CmsgSpace(4*4))}
}

// send writes m, with fd as SCM_RIGHTS when fd >= 0.
func (c *ctl) send(m Message, fd int) error {
	if err := m.Encode(&c.out); err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	_, _, err := c.c.WriteMsgUnix(c.out[:], oob, nil)
	if err != nil {
		return fmt.Errorf("memif: sending %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one message and the fd it carried (-1 for none). Extra fds are closed.
func (c *ctl) recv(deadline time.Time) (Message, int, error) {
	_ = c.c.SetReadDeadline(deadline)
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.buf[:], c.oob)
	if err != nil {
		return Message{}, -1, err
	}
	fd := -1
	if oobn > 0 {
		fds := parseRights(c.oob[:oobn])
		for i, f := range fds {
			if i == 0 {
				fd = f
			} else {
				_ = unix.Close(f)
			}
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeFD(fd)
		return Message{}, -1, fmt.Errorf("%w: control data truncated", ErrMessage)
	}
	if n == 0 {
		closeFD(fd)
		return Message{}, -1, errEOF
	}
	m, err := Decode(c.buf[:n])
	if err != nil {
		closeFD(fd)
		return Message{}, -1, err
	}
	return m, fd, nil
}

var errEOF = errors.New("memif: peer closed the control socket")

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func closeFD(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// isEventfd tells an eventfd from any other fd a peer might send as a ring's interrupt.
func isEventfd(fd int) bool {
	var buf [64]byte
	n, err := unix.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd), buf[:])
	return err == nil && string(buf[:n]) == "anon_inode:[eventfd]"
}

// socketAddr is a net.UnixAddr for a path or an "@abstract" name (Go maps the leading @ to
// Linux's abstract namespace).
func socketAddr(s string) *net.UnixAddr { return &net.UnixAddr{Name: s, Net: "unixpacket"} }
