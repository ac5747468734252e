package rtsp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/access"
	meshsdp "github.com/meshgw/meshgw/rtsp/sdp"
)

const publicMethods = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"

// conn is one RTSP connection. Its goroutine reads requests and interleaved frames in order and,
// until the connection plays media over TCP, writes the responses itself; from then on its
// InterleavedWriter owns the write side so responses never split a media frame. A UDP-only
// connection so holds one goroutine, and a read buffer only while a request arrives: with
// thousands of sessions, what each idle one holds is what the gateway's memory is.
type conn struct {
	s  *Server
	nc net.Conn
	// br starts small (requests are small; longer lines and bodies are read through it in pieces)
	// and is replaced by a large one when frames arrive that need it (growReader). A connection
	// without interleaved channels gives it back to the server's pool while it waits with
	// nothing buffered (nil then; see nextByte), so an idle session holds no read buffer.
	br *bufio.Reader
	// pre is what a pooled br reads: the byte that ended the wait, then the socket.
	pre prefixReader
	// w is nil until a session plays over TCP (writer); only the connection's goroutine uses it.
	w *rtp.InterleavedWriter
	// werr is the error of a failed direct response write: like a failed writer, the connection
	// then sends nothing more.
	werr   error
	log    *slog.Logger
	remote netip.AddrPort
	local  netip.AddrPort
	// secure is true on a TLS (RTSPS) connection.
	secure bool
	// user is the authenticated user, "" while anonymous; authed is set once a request was
	// authorized (the connection then leaves the unauthenticated count). Both belong to the
	// connection's goroutine.
	user   string
	authed bool
	// uncounted is set once the connection has left the unauthenticated count.
	uncounted bool
	// hangup is set by a refusal after which the connection is closed (auth.go's denial.hangup).
	hangup bool

	mu       sync.Mutex
	sessions map[*session]struct{}
	// described holds the SRTP keys the last secure DESCRIBE of each route gave this client.
	described map[string][]mediaKey
	// routes maps an interleaved channel to its session and hub, read lock-free for every frame a
	// TCP client sends; the first interleaved SETUP creates it (channelRoutes), SETUP fills it and
	// the session's close clears it. nil: no channel was ever set up.
	routes atomic.Pointer[[256]atomic.Pointer[frameRoute]]
}

const (
	// requestReadBuffer is the read buffer of a connection that has not received media frames:
	// RTSP requests are a few hundred bytes, and a longer line or body is still read whole
	// (readRequest), only in more pieces.
	requestReadBuffer = 1024
	// frameReadBuffer holds any interleaved frame (4-byte header, at most 65535 bytes), so a
	// frame is handed on from the read buffer without a copy; a TCP publisher's connection and
	// one that receives a frame too large for requestReadBuffer get it.
	frameReadBuffer = 4 + 0xffff
)

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s: s, nc: nc,
		remote:   addrPortOf(nc.RemoteAddr()),
		local:    addrPortOf(nc.LocalAddr()),
		sessions: map[*session]struct{}{},
	}
	c.pre.r = nc
	_, c.secure = nc.(*tls.Conn)
	c.log = s.log.With("remote", c.remote.String())
	return c
}

// writer returns the connection's InterleavedWriter, starting it on first use: only a session
// playing over TCP needs one. Called by the connection's goroutine only; every response it writes
// afterwards goes through the writer.
func (c *conn) writer() *rtp.InterleavedWriter {
	if c.w == nil {
		c.w = rtp.NewInterleavedWriter(c.nc, rtp.InterleavedConfig{
			QueueLen: c.s.cfg.TCPQueue, WriteTimeout: c.s.cfg.WriteTimeout, EvictAfter: c.s.cfg.SlowReaderTimeout, Logger: c.log,
		})
	}
	return c.w
}

// channelRoutes returns the connection's interleaved channel table, creating it on the first
// interleaved SETUP (on the connection's goroutine, the only one that creates it).
func (c *conn) channelRoutes() *[256]atomic.Pointer[frameRoute] {
	if r := c.routes.Load(); r != nil {
		return r
	}
	r := new([256]atomic.Pointer[frameRoute])
	c.routes.Store(r)
	return r
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (c *conn) run() {
	// An ending connection leaves the unauthenticated count, even if a panic ends it.
	defer c.uncount()
	c.log.Debug("rtsp connection opened")
	c.finish(c.readLoop())
}

// finish ends the connection and its sessions. It is not part of run so that run's frame, which
// stays on the stack while the connection waits for its next message, is small: an idle
// connection's stack then shrinks at garbage collection to the smallest size that holds the
// waiting read (with thousands of idle sessions, stacks are most of the memory).
func (c *conn) finish(err error) {
	c.mu.Lock()
	owned := make([]*session, 0, len(c.sessions))
	for ss := range c.sessions {
		owned = append(owned, ss)
	}
	c.mu.Unlock()
	// Players keep their RTSP connection for the session's life; when it goes, so does the session.
	for _, ss := range owned {
		ss.close("connection closed")
	}
	c.uncount() // before the client can see the close and reconnect into its slot
	if c.w != nil {
		c.w.Close()
	}
	c.nc.Close()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("rtsp connection closed", "err", err)
	} else {
		c.log.Debug("rtsp connection closed")
	}
}

func (c *conn) hasSessions() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions) > 0
}

// idleDeadline is how long the connection may wait for its next message: short without a session
// (a client that opened a socket and went quiet holds resources for nothing), the session timeout
// with one (players send keepalives at about half of it).
func (c *conn) idleDeadline() time.Duration {
	if c.hasSessions() {
		return c.s.cfg.SessionTimeout
	}
	return c.s.cfg.ReadTimeout
}

func (c *conn) readLoop() error {
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.idleDeadline())); err != nil {
			return err
		}
		first, err := c.nextByte()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && c.sessionsAlive() {
				continue
			}
			return err
		}
		// The rest of a message must arrive promptly: this is what stops slow-loris clients.
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.ReadTimeout)); err != nil {
			return err
		}
		if first[0] == base.InterleavedFrameMagicByte {
			if err := c.readFrame(); err != nil {
				return err
			}
			continue
		}
		if !tokenChar(first[0]) {
			return c.refuseNotRTSP(first[0])
		}
		if err := c.nextRequest(); err != nil {
			if errors.Is(err, errHangup) {
				return nil
			}
			return err
		}
	}
}

// nextByte waits for the next message and returns its first byte, unread. A connection that could
// hold no frame (it has no interleaved channel) waits without a read buffer: the wait is a 1-byte
// read, and the buffer comes from the server's pool when a message begins. What stays on the
// stack during the wait is kept small (see finish).
func (c *conn) nextByte() ([]byte, error) {
	if c.br != nil && c.br.Buffered() == 0 && c.routes.Load() == nil && c.br.Size() == requestReadBuffer {
		c.putReader()
	}
	if c.br == nil {
		if err := c.waitByte(); err != nil {
			return nil, err
		}
		c.takeReader()
	}
	return c.br.Peek(1)
}

// waitByte reads the first byte of the next message into pre.
func (c *conn) waitByte() error {
	for {
		n, err := c.nc.Read(c.pre.b[:])
		if n == 1 {
			c.pre.has = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) putReader() {
	c.br.Reset(nil)
	c.s.readers.Put(c.br)
	c.br = nil
}

func (c *conn) takeReader() {
	c.br = c.s.readers.Get().(*bufio.Reader)
	c.br.Reset(&c.pre)
}

// prefixReader reads b (when has is set), then r.
type prefixReader struct {
	b   [1]byte
	has bool
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0] = p.b[0]
		p.has = false
		return 1, nil
	}
	return p.r.Read(b)
}

// errHangup ends a connection after a request that was answered normally (nextRequest).
var errHangup = errors.New("hang up")

// nextRequest reads and answers one request; errHangup means the connection must end. Kept out of
// readLoop so that readLoop's frame, on the stack while the connection waits, stays small.
func (c *conn) nextRequest() error {
	req, err := readRequest(c.br, c.s.cfg.MaxRequestBytes, c.s.cfg.Limits.MaxHeaders)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// begun but not finished within read_timeout: a slow or slow-loris client
			c.log.Info("rtsp request not complete within read_timeout; closing", "read_timeout", c.s.cfg.ReadTimeout)
			return err
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return err
		}
		// The byte stream cannot be resynchronised after a bad message: answer and hang up.
		status := base.StatusBadRequest
		if errors.Is(err, errTooLarge) && strings.Contains(err.Error(), "body") {
			status = base.StatusRequestEntityTooLarge
		}
		c.log.Info("rtsp bad request", "err", err, "status", int(status))
		c.writeFinal(&base.Response{StatusCode: status, Header: base.Header{}})
		return err
	}
	if !c.handle(req) {
		return errHangup
	}
	return nil
}

// tlsHandshakeByte starts every TLS record that carries a handshake, a ClientHello among them.
const tlsHandshakeByte = 0x16

// errNotRTSP ends a connection whose bytes cannot begin an RTSP message.
var errNotRTSP = errors.New("not RTSP")

// tokenChar reports whether b may begin an RTSP request: its method is a token (RFC 7826 §20.1,
// RFC 7230 tchar). Anything else is not RTSP, and waiting for the rest of a "request" that
// never ends in a line break (a TLS ClientHello) would hold the connection for read_timeout.
func tokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// refuseNotRTSP ends a connection whose next byte cannot begin an RTSP message, at once: a TLS
// ClientHello (a client that wanted RTSPS on the plain port) is closed without an answer it could
// not read; other bytes get 400 first, in case a person is reading.
func (c *conn) refuseNotRTSP(first byte) error {
	if first == tlsHandshakeByte && !c.secure {
		c.log.Info("rtsp connection closed: TLS handshake on the plain RTSP port (use rtsps:// and the RTSPS port)")
		return errNotRTSP
	}
	c.log.Info("rtsp bad request", "err", fmt.Sprintf("byte 0x%02x cannot begin an RTSP message", first), "status", int(base.StatusBadRequest))
	c.writeFinal(&base.Response{StatusCode: base.StatusBadRequest, StatusMessage: "Bad Request: not an RTSP message", Header: base.Header{}})
	return errNotRTSP
}

// sessionsAlive reports whether a quiet connection's sessions still show life elsewhere (RTCP on
// UDP), in which case the connection is kept.
func (c *conn) sessionsAlive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ss := range c.sessions {
		if time.Since(ss.lastLife()) < c.s.cfg.SessionTimeout {
			return true
		}
	}
	return false
}

func (c *conn) readFrame() error {
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return err
	}
	n := int(hdr[2])<<8 | int(hdr[3])
	var r *frameRoute
	if routes := c.routes.Load(); routes != nil {
		r = routes[hdr[1]].Load()
	}
	if r == nil {
		_, err := c.br.Discard(n)
		return err
	}
	// A publisher's media, or a frame that does not fit, needs the large buffer; a TCP reader's
	// receiver reports are small and rare.
	if (r.hub != nil || n > c.br.Size()) && c.br.Size() < frameReadBuffer {
		c.growReader()
	}
	// The frame is used in place; hubs copy what they keep.
	buf, err := c.br.Peek(n)
	if err != nil {
		return err
	}
	r.ss.onFrame(r, buf)
	_, err = c.br.Discard(n)
	return err
}

// growReader gives the connection the read buffer that holds any frame. The small buffer is
// wrapped, so what it still holds is read first; once it is empty, reads of the large buffer
// bypass it.
func (c *conn) growReader() {
	c.br = bufio.NewReaderSize(c.br, frameReadBuffer)
}

// handle answers one request; it returns false when the connection must end.
func (c *conn) handle(req *base.Request) bool {
	cseq, ok := req.Header["CSeq"]
	if !ok || len(cseq) != 1 {
		c.log.Info("rtsp request without CSeq", "method", req.Method)
		c.writeResponse(&base.Response{StatusCode: base.StatusBadRequest, StatusMessage: "Bad Request: CSeq missing", Header: base.Header{}}, "", "")
		return true
	}
	// A banned address gets nothing more on a connection that has not logged in; one that logged
	// in before the ban keeps its sessions (decide still refuses it any new login).
	if d := c.checkBanNew(); d != nil {
		c.log.Warn("rtsp access denied", "reason", d.reason, "method", string(req.Method), "status", int(d.res.StatusCode))
		d.res.Header["CSeq"] = cseq
		c.writeFinal(d.res)
		return false
	}
	res := c.dispatch(req)
	if res.Header == nil {
		res.Header = base.Header{}
	}
	res.Header["CSeq"] = cseq
	if c.hangup {
		c.writeFinal(res)
		return false
	}
	url := "*"
	if req.URL != nil {
		url = req.URL.String()
	}
	c.writeResponse(res, string(req.Method), url)
	return true
}

func (c *conn) writeResponse(res *base.Response, method, url string) {
	if res.Header == nil {
		res.Header = base.Header{}
	}
	res.Header["Server"] = base.HeaderValue{"meshgw"}
	if res.StatusMessage == "" {
		if m, ok := statusText[res.StatusCode]; ok {
			res.StatusMessage = m
		}
	}
	b, err := res.Marshal()
	if err != nil {
		c.log.Error("rtsp marshal response", "err", err)
		return
	}
	if err := c.write(b); err != nil {
		c.log.Debug("rtsp write response", "err", err)
	}
	if res.StatusCode >= 400 {
		c.log.Info("rtsp request refused", "method", method, "url", url, "status", int(res.StatusCode), "reason", res.StatusMessage)
	}
}

// write sends one RTSP message: through the writer once there is one, else straight to the
// socket (only the connection's goroutine writes then).
func (c *conn) write(b []byte) error {
	if c.w != nil {
		return c.w.WriteMessage(b)
	}
	if c.werr != nil {
		return c.werr
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		c.werr = fmt.Errorf("set write deadline: %w", err)
		return c.werr
	}
	if _, err := c.nc.Write(b); err != nil {
		c.werr = fmt.Errorf("write: %w", err)
		return c.werr
	}
	return nil
}

// writeFinal sends a last response before the connection is dropped. The writer, if any, is
// stopped first, so it no longer touches the socket and the response cannot be lost in its queue.
func (c *conn) writeFinal(res *base.Response) {
	if c.w != nil {
		c.w.Close()
	}
	res.Header["Server"] = base.HeaderValue{"meshgw"}
	if res.StatusMessage == "" {
		res.StatusMessage = base.StatusMessages[res.StatusCode]
	}
	b, err := res.Marshal()
	if err != nil {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.log.Debug("rtsp final response not sent", "err", err)
	}
}

// statusText covers the codes gortsplib's table lacks.
var statusText = map[base.StatusCode]string{
	409: "Conflict",
}

func (c *conn) info(req *base.Request) ConnInfo {
	ci := ConnInfo{Remote: c.remote, Local: c.local, Secure: c.secure, User: c.user}
	if req.URL != nil {
		ci.Query = req.URL.RawQuery
	}
	return ci
}

func (c *conn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.s.ctx, c.s.cfg.HandlerTimeout)
}

func errResponse(err error) *base.Response {
	st := StatusOf(err)
	msg := ""
	if m, ok := base.StatusMessages[st]; ok {
		msg = m
	} else if m, ok := statusText[st]; ok {
		msg = m
	}
	h := base.Header{}
	var e *Error
	if errors.As(err, &e) {
		if e.Msg != "" {
			msg += ": " + sanitizeLine(e.Msg)
		}
		if e.RetryAfter > 0 {
			h["Retry-After"] = base.HeaderValue{strconv.Itoa(int(max(1, (e.RetryAfter+time.Second-1)/time.Second)))}
		}
	}
	return &base.Response{StatusCode: st, StatusMessage: msg, Header: h}
}

func statusf(status base.StatusCode, format string, args ...any) *base.Response {
	return errResponse(Errorf(status, format, args...))
}

func (c *conn) dispatch(req *base.Request) *base.Response {
	if req.URL == nil && req.Method != base.Options {
		return statusf(base.StatusBadRequest, "request URL is missing")
	}
	switch req.Method {
	case base.Options:
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Public": base.HeaderValue{publicMethods}}}
	case base.Describe:
		return c.onDescribe(req)
	case base.Announce:
		return c.onAnnounce(req)
	case base.Setup:
		return c.onSetup(req)
	case base.Play:
		return c.withSession(req, (*session).onPlay)
	case base.Record:
		return c.withSession(req, (*session).onRecord)
	case base.Pause:
		return c.withSession(req, (*session).onPause)
	case base.Teardown:
		return c.withSession(req, (*session).onTeardown)
	case base.GetParameter, base.SetParameter:
		// keepalive; a session, if named, must exist
		if h, ok := req.Header["Session"]; ok {
			ss, res := c.lookupSession(h)
			if res != nil {
				return res
			}
			ss.touch()
			return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
		}
		return &base.Response{StatusCode: base.StatusOK}
	case base.Method("REDIRECT"):
		return statusf(base.StatusMethodNotValidInThisState, "REDIRECT is sent by servers, not clients")
	default:
		return &base.Response{StatusCode: base.StatusNotImplemented, StatusMessage: "Not Implemented: method " + sanitizeLine(string(req.Method)) + " is not supported", Header: base.Header{"Public": base.HeaderValue{publicMethods}}}
	}
}

// routePath turns a request URL into the route path: no leading or trailing slash.
func routePath(u *base.URL) string {
	return strings.Trim(u.Path, "/")
}

func (c *conn) onDescribe(req *base.Request) *base.Response {
	path := routePath(req.URL)
	if res := c.authorize(req, access.Read, path); res != nil {
		return res
	}
	rs, res := c.openRead(req, path)
	if res != nil {
		return res
	}
	defer rs.Close()
	keys, err := c.describeKeys(rs, path)
	if err != nil {
		return errResponse(err)
	}
	sdp, err := readerSDP(rs.SDP(), path, c.local.Addr(), uint64(time.Now().Unix()), keys)
	if err != nil {
		return errResponse(&Error{Status: base.StatusInternalServerError, Msg: "stream description unusable", Err: err})
	}
	return &base.Response{
		StatusCode: base.StatusOK,
		Header: base.Header{
			"Content-Base": base.HeaderValue{contentBase(req.URL)},
			"Content-Type": base.HeaderValue{"application/sdp"},
		},
		Body: sdp,
	}
}

// openRead asks the control for a route's stream on behalf of a reader.
func (c *conn) openRead(req *base.Request, path string) (ReadStream, *base.Response) {
	if path == "" {
		return nil, statusf(base.StatusNotFound, "no route named in the URL")
	}
	ctx, cancel := c.ctx()
	defer cancel()
	rs, err := c.s.cfg.Handler.OpenRead(ctx, c.info(req), path)
	if err != nil {
		return nil, errResponse(err)
	}
	return rs, nil
}

func contentBase(u *base.URL) string {
	cu := *u
	cu.RawQuery = ""
	s := cu.String()
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

func (c *conn) onAnnounce(req *base.Request) *base.Response {
	path := routePath(req.URL)
	if path == "" {
		return statusf(base.StatusNotFound, "no route named in the URL")
	}
	if ct, ok := req.Header["Content-Type"]; !ok || len(ct) != 1 || !strings.EqualFold(strings.TrimSpace(strings.Split(ct[0], ";")[0]), "application/sdp") {
		return statusf(base.StatusUnsupportedMediaType, "ANNOUNCE needs Content-Type: application/sdp")
	}
	if res := c.authorize(req, access.Publish, path); res != nil {
		return res
	}
	ssd, tracks, err := meshsdp.Parse(req.Body)
	if err != nil {
		return statusf(base.StatusBadRequest, "%v", err)
	}
	pubKeys, err := publisherKeys(ssd, time.Now())
	if err != nil {
		return statusf(base.StatusBadRequest, "%v", err)
	}
	release, res := c.reserveSession(path)
	if res != nil {
		return res
	}
	ctx, cancel := c.ctx()
	defer cancel()
	ps, err := c.s.cfg.Handler.OpenPublish(ctx, c.info(req), path, req.Body, tracks)
	if err != nil {
		release()
		return errResponse(err)
	}
	ss := newSession(c, path, "/"+path)
	ss.release = release
	ss.pub = ps
	ss.tracks = tracks
	ss.controls = controlOf(ssd)
	ss.pubKeys = pubKeys
	ss.announceURL = req.URL.String()
	c.adopt(ss)
	return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
}

func (c *conn) adopt(ss *session) {
	c.mu.Lock()
	c.sessions[ss] = struct{}{}
	c.mu.Unlock()
	c.s.addSession(ss)
	ss.watch()
}

func (c *conn) forget(ss *session) {
	c.mu.Lock()
	delete(c.sessions, ss)
	c.mu.Unlock()
}

func (c *conn) lookupSession(h base.HeaderValue) (*session, *base.Response) {
	var sh headers.Session
	if err := sh.Unmarshal(h); err != nil {
		return nil, statusf(base.StatusBadRequest, "invalid Session header: %v", err)
	}
	ss := c.s.session(sh.Session)
	if ss == nil {
		return nil, statusf(base.StatusSessionNotFound, "session %q does not exist", sh.Session)
	}
	return ss, nil
}

func (c *conn) withSession(req *base.Request, fn func(*session, *conn, *base.Request) *base.Response) *base.Response {
	h, ok := req.Header["Session"]
	if !ok {
		return statusf(base.StatusSessionNotFound, "%s needs a Session header", req.Method)
	}
	ss, res := c.lookupSession(h)
	if res != nil {
		return res
	}
	ss.touch()
	return fn(ss, c, req)
}

func (c *conn) onSetup(req *base.Request) *base.Response {
	th, ok := req.Header["Transport"]
	if !ok {
		return statusf(base.StatusUnsupportedTransport, "SETUP needs a Transport header")
	}
	var ss *session
	if h, ok := req.Header["Session"]; ok {
		var res *base.Response
		ss, res = c.lookupSession(h)
		if res != nil {
			return res
		}
		ss.touch()
	}
	transports, err := parseTransports(th)
	if err != nil {
		return statusf(base.StatusUnsupportedTransport, "%v", err)
	}
	reqPath := "/" + strings.Trim(req.URL.Path, "/")

	if ss != nil && ss.pub != nil {
		return ss.setupRecord(c, req, reqPath, transports)
	}
	// reader: the route is the URL minus its trackID segment
	base0, track, hasTrack := splitTrackPath(reqPath)
	path := strings.Trim(base0, "/")
	if ss == nil {
		if res := c.authorize(req, access.Read, path); res != nil {
			return res
		}
		release, res := c.reserveSession(path)
		if res != nil {
			return res
		}
		rs, res := c.openRead(req, path)
		if res != nil {
			release()
			return res
		}
		ss = newSession(c, path, "/"+path)
		ss.release = release
		ss.read = rs
		ss.tracks = rs.Tracks()
		c.adopt(ss)
		res = ss.setupFirst(c, req, track, hasTrack, transports)
		if res.StatusCode != base.StatusOK {
			// the client was never told about this session: it must not linger
			ss.close("setup refused")
		}
		return res
	} else if ss.path != path {
		return statusf(base.StatusAggregateOperationNotAllowed, "session %s reads %q, not %q", ss.id, ss.path, path)
	}
	return ss.setupFirst(c, req, track, hasTrack, transports)
}

// setupFirst sets up one reader track; a URL without trackID names the only track of a
// single-track stream.
func (ss *session) setupFirst(c *conn, req *base.Request, track int, hasTrack bool, transports []headers.Transport) *base.Response {
	if !hasTrack {
		if len(ss.tracks) != 1 {
			return statusf(base.StatusNotFound, "SETUP URL must name a track (trackID=N)")
		}
		track = 0
	}
	return ss.setupPlay(c, req, track, transports)
}

// parseTransports decodes the client's acceptable transports, most preferred first. source= is
// dropped before decoding: a client has no business naming it, and resolving it would make a
// request trigger a DNS lookup.
func parseTransports(v base.HeaderValue) ([]headers.Transport, error) {
	if len(v) != 1 {
		return nil, fmt.Errorf("transport header given %d times", len(v))
	}
	var out []headers.Transport
	for _, alt := range strings.Split(v[0], ",") {
		var kept []string
		for _, p := range strings.Split(alt, ";") {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), "source=") {
				continue
			}
			kept = append(kept, strings.TrimSpace(p))
		}
		var t headers.Transport
		if err := t.Unmarshal(base.HeaderValue{strings.Join(kept, ";")}); err != nil {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no transport in %q could be understood", v[0])
	}
	return out, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
