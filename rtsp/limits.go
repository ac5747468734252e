package rtsp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/meshgw/meshgw/rtsp/access"
)

// Limits bound what clients may hold, so one client (or one address) cannot exhaust the server
// for the others. Zero means unlimited for every field.
type Limits struct {
	// MaxSessions caps RTSP sessions (readers and publishers) on the server.
	MaxSessions int
	// MaxSessionsPerRoute caps sessions on one route.
	MaxSessionsPerRoute int
	// MaxSessionsPerAddress caps sessions from one client IP address.
	MaxSessionsPerAddress int
	// MaxUnauthConns caps connections that have not yet had a request authorized (a DESCRIBE,
	// SETUP or ANNOUNCE that passed authentication); MaxUnauthConnsPerAddress caps them per IP.
	MaxUnauthConns           int
	MaxUnauthConnsPerAddress int
	// MaxHeaders caps the header lines of one request.
	MaxHeaders int
}

// Status codes of the limits (documented in docs/SECURITY.md):
//   - a session cap answers 453 Not Enough Bandwidth: RFC 2326 §7.1.1/RFC 7826 §17.4.29 name it
//     for a request refused for lack of resources, and it is what route max_readers answers;
//   - the unauthenticated-connection cap answers 503 Service Unavailable with Retry-After
//     (a temporary overload, RFC 7826 §17.5.4) to the connection's first request, then closes;
//   - too many header lines answer 400 Bad Request (RTSP has no 431) and close.
const (
	statusSessionLimit = base.StatusNotEnoughBandwidth
	statusConnLimit    = base.StatusServiceUnavailable
)

// limiter is the server's accounting of sessions and unauthenticated connections.
type limiter struct {
	cfg Limits

	mu            sync.Mutex
	sessions      int
	perRoute      map[string]int
	perAddr       map[netip.Addr]int
	unauth        int
	unauthPerAddr map[netip.Addr]int
	rejecting     int
	// refusal log lines are limited to one a second, so a flood cannot flood the log too
	lastLog    time.Time
	suppressed int
}

func newLimiter(cfg Limits) *limiter {
	return &limiter{cfg: cfg, perRoute: map[string]int{}, perAddr: map[netip.Addr]int{}, unauthPerAddr: map[netip.Addr]int{}}
}

// admit counts a new connection as unauthenticated. When a cap is reached it returns why, and
// the connection is refused; refuse=false means it must be closed at once without an answer,
// because too many refusals are already being answered.
func (l *limiter) admit(addr netip.Addr) (why string, answer bool) {
	addr = access.ClientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cfg.MaxUnauthConnsPerAddress > 0 && l.unauthPerAddr[addr] >= l.cfg.MaxUnauthConnsPerAddress:
		why = fmt.Sprintf("address already has %d unauthenticated connections (rtsp.max_unauthenticated_per_address)", l.unauthPerAddr[addr])
	case l.cfg.MaxUnauthConns > 0 && l.unauth >= l.cfg.MaxUnauthConns:
		why = fmt.Sprintf("server already has %d unauthenticated connections (rtsp.max_unauthenticated)", l.unauth)
	default:
		l.unauth++
		l.unauthPerAddr[addr]++
		return "", false
	}
	// Answering costs a goroutine for up to read_timeout; keep that bounded too.
	budget := max(l.cfg.MaxUnauthConns, l.cfg.MaxUnauthConnsPerAddress, 16)
	if l.rejecting >= budget {
		return why, false
	}
	l.rejecting++
	return why, true
}

// logRefusal reports whether a refused connection may be logged now, and how many refusals
// went unlogged since the last line.
func (l *limiter) logRefusal(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastLog) < time.Second {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.lastLog, l.suppressed = now, 0
	return true, n
}

func (l *limiter) rejectDone() {
	l.mu.Lock()
	l.rejecting--
	l.mu.Unlock()
}

// authenticated moves a connection out of the unauthenticated count.
func (l *limiter) authenticated(addr netip.Addr) {
	addr = access.ClientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unauth--
	if l.unauthPerAddr[addr]--; l.unauthPerAddr[addr] <= 0 {
		delete(l.unauthPerAddr, addr)
	}
}

// reserveSession takes a session slot for route and addr, or says which cap is full.
func (l *limiter) reserveSession(route string, addr netip.Addr) (release func(), why string) {
	addr = access.ClientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cfg.MaxSessions > 0 && l.sessions >= l.cfg.MaxSessions:
		return nil, fmt.Sprintf("server has its %d sessions (rtsp.max_sessions)", l.cfg.MaxSessions)
	case l.cfg.MaxSessionsPerRoute > 0 && l.perRoute[route] >= l.cfg.MaxSessionsPerRoute:
		return nil, fmt.Sprintf("route has its %d sessions (rtsp.max_sessions_per_route)", l.cfg.MaxSessionsPerRoute)
	case l.cfg.MaxSessionsPerAddress > 0 && l.perAddr[addr] >= l.cfg.MaxSessionsPerAddress:
		return nil, fmt.Sprintf("address has its %d sessions (rtsp.max_sessions_per_address)", l.cfg.MaxSessionsPerAddress)
	}
	l.sessions++
	l.perRoute[route]++
	l.perAddr[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.sessions--
			if l.perRoute[route]--; l.perRoute[route] <= 0 {
				delete(l.perRoute, route)
			}
			if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
				delete(l.perAddr, addr)
			}
		})
	}, ""
}

// markAuthenticated records that one of the connection's requests was authorized.
func (c *conn) markAuthenticated() {
	c.authed = true
	c.uncount()
}

// uncount takes the connection out of the unauthenticated count, once.
func (c *conn) uncount() {
	if c.uncounted {
		return
	}
	c.uncounted = true
	c.s.lim.authenticated(c.remote.Addr())
}

// reserveSession takes a session slot for a new session on route, or returns the 453 to send.
func (c *conn) reserveSession(route string) (func(), *base.Response) {
	release, why := c.s.lim.reserveSession(route, c.remote.Addr())
	if why != "" {
		c.log.Warn("rtsp session refused by a limit", "reason", why, "path", route, "status", int(statusSessionLimit))
		return nil, statusf(statusSessionLimit, "%s", why)
	}
	return release, nil
}

// refusedFirstByteWait bounds how long a refused connection may stay silent before it is closed
// without an answer: a client sends its first request (after a TLS handshake on RTSPS) within a
// few round trips, and an idle connection over the cap must not hold a goroutine for read_timeout.
const refusedFirstByteWait = 2 * time.Second

// serveRefused answers the first request of a connection over the unauthenticated-connection cap
// with 503 and closes it. The request must begin within refusedFirstByteWait and end within
// read_timeout; bytes that cannot begin an RTSP request close it at once. It needs no conn
// (whose frame buffer alone is 64 KiB) so that a flood costs little.
func (s *Server) serveRefused(nc net.Conn) {
	defer s.lim.rejectDone()
	defer nc.Close()
	stop := context.AfterFunc(s.ctx, func() { nc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(min(s.cfg.ReadTimeout, refusedFirstByteWait)))
	br := bufio.NewReaderSize(nc, 4096)
	if first, err := br.Peek(1); err != nil || !tokenChar(first[0]) {
		return
	}
	_ = nc.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
	req, err := readRequest(br, s.cfg.MaxRequestBytes, s.cfg.Limits.MaxHeaders)
	if err != nil {
		return
	}
	res := statusf(statusConnLimit, "too many unauthenticated connections")
	res.Header["Retry-After"] = base.HeaderValue{"5"}
	res.Header["Server"] = base.HeaderValue{"meshgw"}
	if cseq, ok := req.Header["CSeq"]; ok {
		res.Header["CSeq"] = cseq
	}
	if b, err := res.Marshal(); err == nil {
		_, _ = nc.Write(b)
	}
}
