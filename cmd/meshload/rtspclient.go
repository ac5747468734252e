//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
)

// Read buffer sizes of an RTSP connection: a UDP reader's connection only
// carries responses; an interleaved one must hold a whole frame (up to
// 65535 bytes plus its 4-byte header) for the zero-copy Peek in demuxLoop.
const (
	rtspSmallBuf      = 4096
	rtspInterleaveBuf = 1 << 17
)

// statusError is a non-2xx answer to a request.
type statusError struct {
	method base.Method
	code   base.StatusCode
	msg    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.method, e.code, e.msg)
}

// rtspConn is a minimal RTSP 1.0 client connection: one request at a time,
// and, once media is interleaved on it, a goroutine (demuxLoop) that splits
// the byte stream into frames and responses.
type rtspConn struct {
	nc      net.Conn
	br      *bufio.Reader
	timeout time.Duration

	reqMu   sync.Mutex // one request in flight: we wait for each answer before the next
	wmu     sync.Mutex // a request must not be written into the middle of an interleaved frame
	cseq    int
	session string // Session id once the server gave one

	demux   bool
	resps   chan *base.Response
	dead    chan struct{} // closed when demuxLoop ends
	deadErr error
	closeMu sync.Once
}

// dialRTSP opens a connection to the host:port of u: TCP for rtsp://, TLS
// with tc for rtsps:// (tc nil: the system roots verify the server).
func dialRTSP(ctx context.Context, u *base.URL, tc *tls.Config, timeout time.Duration, bufSize int) (*rtspConn, error) {
	return dialRTSPFrom(ctx, u, tc, timeout, bufSize, nil)
}

// dialRTSPFrom is dialRTSP from the local address from (nil: the kernel's
// choice), so that one process can appear as several clients (127.0.0.x).
func dialRTSPFrom(ctx context.Context, u *base.URL, tc *tls.Config, timeout time.Duration, bufSize int, from *net.TCPAddr) (*rtspConn, error) {
	secure := u.Scheme == "rtsps"
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if secure {
			port = "322" // RFC 2326 §19.2's default port of rtsps
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: timeout}
	if from != nil {
		d.LocalAddr = from
	}
	var nc net.Conn
	var err error
	if secure {
		td := tls.Dialer{NetDialer: &d, Config: tlsFor(tc, u.Hostname())}
		nc, err = td.DialContext(ctx, "tcp", host)
	} else {
		nc, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	return &rtspConn{nc: nc, br: bufio.NewReaderSize(nc, bufSize), timeout: timeout}, nil
}

// tlsFor is tc (or a default configuration) naming the server we dial, so
// that its certificate is checked against that name or IP address.
func tlsFor(tc *tls.Config, host string) *tls.Config {
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tc.ServerName != "" || tc.InsecureSkipVerify {
		return tc
	}
	tc = tc.Clone()
	tc.ServerName = host
	return tc
}

// localAddr is the address of our end: UDP sockets bind to it so that they
// are in the family and on the interface the server sends to. Over TLS too:
// tls.Conn reports the addresses of the TCP connection under it.
func (c *rtspConn) localAddr() *net.TCPAddr { return c.nc.LocalAddr().(*net.TCPAddr) }

// request sends one request and waits for its answer; a non-2xx answer is a
// *statusError. It remembers the Session the server assigns and sends it
// with every later request.
func (c *rtspConn) request(method base.Method, u *base.URL, h base.Header, body []byte) (*base.Response, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	c.cseq++
	if h == nil {
		h = base.Header{}
	}
	cseq := strconv.Itoa(c.cseq)
	h["CSeq"] = base.HeaderValue{cseq}
	h["User-Agent"] = base.HeaderValue{"meshload"}
	if c.session != "" {
		h["Session"] = base.HeaderValue{c.session}
	}
	b, err := base.Request{Method: method, URL: u, Header: h, Body: body}.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if err := c.write(b); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	res, err := c.readResponse(cseq)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res, &statusError{method: method, code: res.StatusCode, msg: res.StatusMessage}
	}
	if v, ok := res.Header["Session"]; ok {
		var sh headers.Session
		if err := sh.Unmarshal(v); err == nil {
			c.session = sh.Session
		}
	}
	return res, nil
}

func (c *rtspConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// readResponse returns the response with CSeq cseq, dropping older ones (the
// answers to requests that timed out).
func (c *rtspConn) readResponse(cseq string) (*base.Response, error) {
	if c.demux {
		t := time.NewTimer(c.timeout)
		defer t.Stop()
		for {
			select {
			case res := <-c.resps:
				if v := res.Header["CSeq"]; len(v) == 1 && v[0] == cseq {
					return res, nil
				}
			case <-c.dead:
				return nil, fmt.Errorf("connection lost: %w", c.deadErr)
			case <-t.C:
				return nil, errors.New("no answer in time")
			}
		}
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	for {
		first, err := c.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if first[0] == base.InterleavedFrameMagicByte {
			// media that raced ahead of the PLAY answer on a connection not yet demultiplexed
			h, err := c.br.Peek(4)
			if err != nil {
				return nil, err
			}
			if _, err := c.br.Discard(4 + (int(h[2])<<8 | int(h[3]))); err != nil {
				return nil, err
			}
			continue
		}
		var res base.Response
		if err := res.Unmarshal(c.br); err != nil {
			return nil, err
		}
		if v := res.Header["CSeq"]; len(v) == 1 && v[0] == cseq {
			return &res, nil
		}
	}
}

// startDemux hands the connection's read side to a goroutine that passes
// interleaved frames to onFrame (the payload is valid only during the call)
// and responses to request. It ends when the connection is closed.
func (c *rtspConn) startDemux(onFrame func(ch uint8, payload []byte)) error {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("demux: %w", err)
	}
	c.demux = true
	c.resps = make(chan *base.Response, 8)
	c.dead = make(chan struct{})
	go c.demuxLoop(onFrame)
	return nil
}

func (c *rtspConn) demuxLoop(onFrame func(ch uint8, payload []byte)) {
	defer close(c.dead)
	for {
		first, err := c.br.Peek(1)
		if err != nil {
			c.deadErr = err
			return
		}
		if first[0] == base.InterleavedFrameMagicByte {
			h, err := c.br.Peek(4)
			if err != nil {
				c.deadErr = err
				return
			}
			n := 4 + (int(h[2])<<8 | int(h[3]))
			f, err := c.br.Peek(n)
			if err != nil {
				c.deadErr = err
				return
			}
			onFrame(f[1], f[4:])
			_, _ = c.br.Discard(n) // cannot fail: the bytes were peeked
			continue
		}
		res := &base.Response{}
		if err := res.Unmarshal(c.br); err != nil {
			c.deadErr = err
			return
		}
		select {
		case c.resps <- res:
		default: // nobody waits for it: the answer to a request that timed out
		}
	}
}

// lost reports whether a demultiplexed connection has ended, and why.
func (c *rtspConn) lost() (bool, error) {
	if !c.demux {
		return false, nil
	}
	select {
	case <-c.dead:
		return true, c.deadErr
	default:
		return false, nil
	}
}

// close closes the connection and waits for its demux goroutine.
func (c *rtspConn) close() {
	c.closeMu.Do(func() {
		c.nc.Close()
		if c.demux {
			<-c.dead
		}
	})
}

// keepalive sends GET_PARAMETER on the session's URL, which refreshes the
// server's session timer.
func (c *rtspConn) keepalive(u *base.URL) error {
	_, err := c.request(base.GetParameter, u, nil, nil)
	return err
}

// contentBase is the URL relative control attributes resolve against: the
// Content-Base header, else Content-Location, else the request URL.
func contentBase(res *base.Response, req *base.URL) string {
	for _, k := range []string{"Content-Base", "Content-Location"} {
		if v := res.Header[k]; len(v) == 1 && v[0] != "" {
			return v[0]
		}
	}
	return req.String()
}

// sdpMedia is what a reader needs of one media section of a description.
type sdpMedia struct {
	control string // SETUP URL, resolved
	// keyed: the section (or the session) carries an SRTP key (a=crypto SDES or
	// a=key-mgmt MIKEY), so the server sends this track's RTP as SRTP even to a
	// plain RTP/AVP SETUP, as it does for FFmpeg.
	keyed bool
}

// sdpMedias returns the media sections of a session description with their
// control URLs resolved against baseURL.
func sdpMedias(sdp []byte, baseURL string) ([]sdpMedia, error) {
	var out []sdpMedia
	sessionKeyed := false
	for line := range strings.SplitSeq(string(sdp), "\n") {
		line = strings.TrimRight(line, "\r")
		keyAttr := strings.HasPrefix(line, "a=crypto:") || strings.HasPrefix(line, "a=key-mgmt:")
		switch {
		case strings.HasPrefix(line, "m="):
			out = append(out, sdpMedia{control: baseURL, keyed: sessionKeyed})
		case len(out) == 0:
			sessionKeyed = sessionKeyed || keyAttr
		case keyAttr:
			out[len(out)-1].keyed = true
		case strings.HasPrefix(line, "a=control:"):
			out[len(out)-1].control = resolveControl(baseURL, strings.TrimPrefix(line, "a=control:"))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("SDP has no media section")
	}
	return out, nil
}

func resolveControl(baseURL, ctl string) string {
	switch {
	case ctl == "" || ctl == "*":
		return baseURL
	case strings.Contains(ctl, "://"):
		return ctl
	case strings.HasSuffix(baseURL, "/"):
		return baseURL + ctl
	default:
		return baseURL + "/" + ctl
	}
}
