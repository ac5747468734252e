package rtsp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtsp/access"
)

// ServerConfig configures the front door.
type ServerConfig struct {
	// Listen is the TCP address to accept RTSP on, e.g. ":8554". Ignored when Listener is set.
	Listen string
	// Listener, when set, is used instead of opening Listen (tests, socket activation).
	// Listen "" and no Listener turn plain RTSP off.
	Listener net.Listener
	// TLSListen is the TCP address of the RTSPS listener (e.g. ":8322"); "" with no
	// TLSListener means no RTSPS. TLSConfig is required with either.
	TLSListen   string
	TLSListener net.Listener
	TLSConfig   *tls.Config
	// ReadTimeout bounds reading one request once its first byte arrived, and how long a connection
	// without a session may stay idle.
	ReadTimeout time.Duration
	// WriteTimeout bounds one blocked write to a client.
	WriteTimeout time.Duration
	// SessionTimeout ends a session that shows no life (RTSP keepalive, RTCP, media) for this long.
	SessionTimeout time.Duration
	// MaxRequestBytes bounds a request's head and its body.
	MaxRequestBytes int
	// TCPQueue is the per-connection queue of interleaved frames.
	TCPQueue int
	// SlowReaderTimeout disconnects a TCP client whose frame queue stays
	// full for this long (rtp.InterleavedConfig.EvictAfter).
	SlowReaderTimeout time.Duration
	// Transports a reader or publisher may ask for.
	AllowUDP, AllowMulticast, AllowTCP bool
	// HandlerTimeout bounds one call into the Handler (an on-demand start waits inside it).
	HandlerTimeout time.Duration
	Handler        Handler
	Logger         *slog.Logger

	// Auth is who may read and publish what (auth.go); nil lets everyone do everything.
	Auth *access.Policy
	// Bans counts failed logins per address and bans guessers; nil never bans.
	Bans *access.Bans
	// BanTime is how long a ban lasts (for log lines; Bans enforces it).
	BanTime time.Duration
	// NonceLifetime is how long a Digest nonce is accepted after it was issued.
	NonceLifetime time.Duration
	// Hashing bounds password checks (Basic against argon2id or bcrypt): how many run at once and
	// how long a login waits for one before it is refused with 503. Zero: one per CPU, 2 s.
	Hashing access.VerifierConfig
	// Limits caps sessions, unauthenticated connections and header lines (limits.go).
	Limits Limits
}

func (c *ServerConfig) setDefaults() {
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 60 * time.Second
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 64 * 1024
	}
	if c.TCPQueue <= 0 {
		c.TCPQueue = 1024
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NonceLifetime <= 0 {
		c.NonceLifetime = 5 * time.Minute
	}
}

// Server accepts RTSP connections and runs their sessions.
type Server struct {
	cfg   ServerConfig
	ln    net.Listener // plain RTSP, nil when off
	tlsLn net.Listener // RTSPS, nil when off
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[*conn]struct{}
	sessions map[string]*session
	closed   bool

	lim      *limiter
	verifier *access.Verifier
	nonceKey [32]byte

	// readers holds the requestReadBuffer readers of connections waiting for their next request
	// (conn.nextByte): thousands of idle sessions share a few.
	readers sync.Pool

	// watch ends sessions whose stream ended (session.watch).
	watch watcher

	// auth is the policy requests are checked against: cfg.Auth, replaced by SetAuth.
	auth atomic.Pointer[access.Policy]

	// stopped is set by StopAccepting: the accept loops end on their listener's close.
	stopped atomic.Bool
}

// Verifier is the server's password-check bound, for another front door (HLS) to share, so
// both together stay within auth.max_concurrent_hashes.
func (s *Server) Verifier() *access.Verifier { return s.verifier }

// NewServer opens the listener; Start begins accepting.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	if cfg.Handler == nil {
		return nil, errors.New("rtsp: server needs a handler")
	}
	ln, tlsLn, err := openListeners(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, ln: ln, tlsLn: tlsLn, log: cfg.Logger, ctx: ctx, cancel: cancel,
		conns: map[*conn]struct{}{}, sessions: map[string]*session{}, lim: newLimiter(cfg.Limits),
		verifier: access.NewVerifier(cfg.Hashing),
	}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, requestReadBuffer) }
	s.auth.Store(cfg.Auth)
	s.watch = watcher{s: s, groups: map[<-chan struct{}]*watchGroup{}}
	if _, err := rand.Read(s.nonceKey[:]); err != nil {
		ln.Close()
		cancel()
		return nil, fmt.Errorf("rtsp: nonce key: %w", err)
	}
	return s, nil
}

// Addr is the address the plain RTSP listener listens on (the RTSPS one's when plain RTSP is off).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return s.tlsLn.Addr()
	}
	return s.ln.Addr()
}

// TLSAddr is the address of the RTSPS listener, nil when RTSPS is off.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Start runs the accept loops and the session reaper in the background; Close ends them.
func (s *Server) Start() {
	for _, ln := range []net.Listener{s.ln, s.tlsLn} {
		if ln != nil {
			s.wg.Add(1)
			go s.acceptLoop(ln, ln == s.tlsLn)
		}
	}
	s.wg.Add(1)
	go s.reapLoop()
}

func (s *Server) acceptLoop(ln net.Listener, secure bool) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || s.stopped.Load() {
				return
			}
			// Temporary failures (EMFILE) must not spin or end the server.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			s.log.Warn("rtsp accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		backoff = 0
		if why, answer := s.lim.admit(addrPortOf(nc.RemoteAddr()).Addr()); why != "" {
			if ok, n := s.lim.logRefusal(time.Now()); ok {
				s.log.Warn("rtsp connection refused by a limit", "remote", nc.RemoteAddr().String(), "reason", why,
					"status", int(statusConnLimit), "answered", answer, "refusals_not_logged", n)
			}
			if !answer {
				nc.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveRefused(nc)
			}()
			continue
		}
		c := newConn(s, nc)
		// newConn already knows a *tls.Conn (a TLS listener handed in as ServerConfig.Listener)
		c.secure = c.secure || secure
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			// A bug reached by one client's input must cost that client its connection, not
			// every other client its stream: contain it here, as net/http does.
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("rtsp connection panicked; closing it", "remote", nc.RemoteAddr().String(), "panic", r, "stack", string(debug.Stack()))
					nc.Close()
				}
			}()
			c.run()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// reapLoop ends sessions that stopped showing life: a reader whose player vanished without TEARDOWN
// must not keep a node sending into the void.
func (s *Server) reapLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			var dead []*session
			s.mu.Lock()
			for _, ss := range s.sessions {
				if now.Sub(ss.lastLife()) > s.cfg.SessionTimeout {
					dead = append(dead, ss)
				}
			}
			s.mu.Unlock()
			for _, ss := range dead {
				s.log.Info("rtsp session timed out", "session", ss.id, "path", ss.path, "remote", ss.remote)
				ss.close("timeout")
			}
		}
	}
}

func (s *Server) addSession(ss *session) {
	s.mu.Lock()
	s.sessions[ss.id] = ss
	s.mu.Unlock()
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.mu.Unlock()
}

func (s *Server) session(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// EndSession ends the session whose stream handle is h (the ReadStream or PublishStream the
// Handler returned for it) and closes the connection that created it, so that the client sees
// the end at once rather than silence: an operator's kick. It reports whether such a session
// existed.
func (s *Server) EndSession(h any, reason string) bool {
	if h == nil {
		return false
	}
	var found *session
	s.mu.Lock()
	for _, ss := range s.sessions {
		if (ss.read != nil && sameHandle(ss.read, h)) || (ss.pub != nil && sameHandle(ss.pub, h)) {
			found = ss
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.c.log.Info("rtsp session ended", "session", found.id, "path", found.path, "remote", found.remote, "reason", reason)
	found.close(reason)
	found.c.nc.Close()
	return true
}

// sameHandle compares two stream handles without the panic == has for equal non-comparable
// dynamic types.
func sameHandle(a, b any) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// SessionCount is the number of live sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// StopAccepting closes the listeners and takes no new connection, while the connections and
// sessions already here go on (a successor process took the listeners over: gateway/upgrade).
func (s *Server) StopAccepting() {
	s.stopped.Store(true)
	for _, ln := range []net.Listener{s.ln, s.tlsLn} {
		if ln != nil {
			_ = ln.Close() // a listener handed over stays open in the successor
		}
	}
}

// ConnCount is the number of open RTSP and RTSPS connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops accepting, ends every connection and session, and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	var err error
	for _, ln := range []net.Listener{s.ln, s.tlsLn} {
		if ln != nil {
			if e := ln.Close(); e != nil && err == nil {
				err = e
			}
		}
	}
	for _, c := range conns {
		c.nc.Close()
	}
	s.wg.Wait()
	// sessions whose connection already ended (UDP sessions live on their own)
	s.mu.Lock()
	var rest []*session
	for _, ss := range s.sessions {
		rest = append(rest, ss)
	}
	s.mu.Unlock()
	for _, ss := range rest {
		ss.close("server closed")
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("rtsp: close listener: %w", err)
	}
	return nil
}

func newSessionID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("rtsp: crypto/rand failed: %v", err)) // the platform is broken; no safe ID exists
	}
	return hex.EncodeToString(b[:])
}
