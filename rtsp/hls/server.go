package hls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/access"
)

// Variants accepted in Config.Variant (the hls.variant spellings).
const (
	VariantLowLatency = "lowLatency"
	VariantFMP4       = "fmp4"
	VariantMPEGTS     = "mpegts"
)

// Opener opens a reader of a route: the control (rtsp.Handler's OpenRead), which starts an
// on-demand source and waits for it.
type Opener interface {
	OpenRead(ctx context.Context, c rtsp.ConnInfo, path string) (rtsp.ReadStream, error)
}

// Muxing is how routes are muxed: the variant, gohlslib's segment and part sizes, when an
// unwatched route's muxer stops, and the CORS origin answered. The config's hls: section holds one.
type Muxing struct {
	// Variant is VariantLowLatency (default), VariantFMP4 or VariantMPEGTS.
	Variant string
	// SegmentCount is the segments a playlist lists (Low-Latency HLS needs 7). Zero: 7.
	SegmentCount int
	// SegmentDuration is the least duration of a segment, which ends at the first keyframe after
	// it. Zero: 1 s.
	SegmentDuration time.Duration
	// PartDuration is the least duration of a Low-Latency HLS part. Zero: 200 ms.
	PartDuration time.Duration
	// IdleStop stops a route's muxer, and its reader of the route, after this long without a
	// request for the route. Zero: 60 s.
	IdleStop time.Duration
	// AllowOrigin is sent as Access-Control-Allow-Origin, so pages of other origins can play with
	// hls.js; "" sends no CORS headers.
	AllowOrigin string
}

// Config configures a Server.
type Config struct {
	// Listen is the TCP address to serve on, e.g. ":8888". Ignored when Listener is set.
	Listen   string
	Listener net.Listener
	// TLSConfig, when set, makes the server HTTPS.
	TLSConfig *tls.Config
	Muxing
	// QueueLen bounds the packets waiting for a muxer. Zero: 4096.
	QueueLen int
	// Handler opens the readers muxers take routes from.
	Handler Opener
	// Auth is who may read what (the RTSP front door's policy); nil lets everyone read.
	Auth *access.Policy
	// Bans counts failed logins per address (shared with the RTSP front door); nil never bans.
	Bans *access.Bans
	// Verifier runs password checks (shared with the RTSP front door, so both together stay
	// within auth.max_concurrent_hashes); nil makes one of its own.
	Verifier *access.Verifier
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Variant == "" {
		c.Variant = VariantLowLatency
	}
	if c.SegmentCount == 0 {
		c.SegmentCount = 7
	}
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = time.Second
	}
	if c.PartDuration <= 0 {
		c.PartDuration = 200 * time.Millisecond
	}
	if c.IdleStop <= 0 {
		c.IdleStop = time.Minute
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 4096
	}
	if c.Verifier == nil {
		c.Verifier = access.NewVerifier(access.VerifierConfig{})
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the HLS front door: an HTTP server with one muxer per route being watched.
type Server struct {
	cfg  Config
	ln   net.Listener
	http *http.Server
	log  *slog.Logger
	auth *authorizer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	muxers   map[string]*muxer
	stopping map[*muxer]struct{}
	done     totals
	closed   bool

	requests, refused, bytes, started, startErrors atomic.Uint64
}

// New opens the listener; Start begins serving.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Handler == nil {
		return nil, errors.New("hls: server needs a handler")
	}
	switch cfg.Variant {
	case VariantLowLatency, VariantFMP4, VariantMPEGTS:
	default:
		return nil, fmt.Errorf("hls: unknown variant %q", cfg.Variant)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("hls listen %s: %w", cfg.Listen, err)
		}
	}
	if cfg.TLSConfig != nil {
		ln = tls.NewListener(ln, cfg.TLSConfig)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, log: cfg.Logger, ctx: ctx, cancel: cancel,
		muxers: map[string]*muxer{}, stopping: map[*muxer]struct{}{}}
	s.auth = newAuthorizer(ctx, cfg, s.log)
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start serves requests until Close.
func (s *Server) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("hls server stopped", "err", err)
		}
	}()
	tlsOn := s.cfg.TLSConfig != nil
	s.log.Info("hls listening", "addr", s.ln.Addr().String(), "tls", tlsOn, "variant", s.cfg.Variant)
}

// Close stops serving, stops every muxer (ending their readers) and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel() // muxers stop; gohlslib answers the requests it holds
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	s.wg.Wait()
	return err
}

// ServeHTTP answers one HLS request: CORS, the access rules, then the route's muxer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if o := s.cfg.AllowOrigin; o != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", o)
		if o != "*" {
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		if s.cfg.AllowOrigin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Range")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	route, _, kind, ok := splitPath(r.URL.Path)
	if !ok {
		http.Error(w, "not an HLS path: use /ROUTE/index.m3u8", http.StatusNotFound)
		return
	}
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "bad remote address", http.StatusBadRequest)
		return
	}
	user, d := s.auth.decide(r, remote.Addr(), route, s.cfg.TLSConfig != nil)
	if d != nil {
		s.refused.Add(1)
		d.write(w)
		level := slog.LevelWarn
		if d.reason == reasonNoCredentials {
			level = slog.LevelInfo
		}
		s.log.Log(r.Context(), level, "hls access denied", "reason", d.reason, "user", d.user, "path", route,
			"remote", r.RemoteAddr, "status", d.status)
		return
	}
	ci := rtsp.ConnInfo{Remote: remote, Secure: s.cfg.TLSConfig != nil, User: user, Query: r.URL.RawQuery}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			ci.Local = ap
		}
	}
	m, err := s.muxerFor(r.Context(), route, ci)
	if err != nil {
		code, msg := httpStatus(err)
		http.Error(w, msg, code)
		return
	}
	m.serve(w, r, kind)
}

// muxerFor returns the route's running muxer, starting one (and waiting for it) when there is
// none.
func (s *Server) muxerFor(ctx context.Context, route string, ci rtsp.ConnInfo) (*muxer, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, rtsp.Errorf(rtsp.StatusServiceUnavailable, "shutting down")
	}
	m := s.muxers[route]
	if m == nil {
		m = newMuxer(s, route)
		s.muxers[route] = m
		s.wg.Add(1)
		go m.run(ci)
	}
	s.mu.Unlock()
	select {
	case <-m.ready:
	case <-ctx.Done():
		return nil, &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "gave up waiting for the route", Err: ctx.Err()}
	}
	if m.err != nil {
		return nil, m.err
	}
	return m, nil
}

// remove takes m out of the route table (a later request starts a new muxer); a started muxer
// is held among the stopping ones until retire.
func (s *Server) remove(m *muxer) {
	s.mu.Lock()
	if s.muxers[m.path] == m {
		delete(s.muxers, m.path)
	}
	if m.err == nil {
		s.stopping[m] = struct{}{}
	}
	s.mu.Unlock()
}

// httpStatus maps a control error (RTSP statuses, which share HTTP's numbers for these) to the
// HTTP answer.
func httpStatus(err error) (int, string) {
	code := int(rtsp.StatusOf(err))
	switch {
	case code == int(rtsp.StatusNotEnoughBandwidth): // 453: the route's max_readers
		code = http.StatusServiceUnavailable
	case http.StatusText(code) == "" || code < 400:
		code = http.StatusInternalServerError
	}
	return code, err.Error()
}
