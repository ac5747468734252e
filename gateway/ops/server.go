package ops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp/access"
)

// Config builds a Server.
type Config struct {
	// API is the api: section: listen address, TLS files, client CA, pprof, metrics_auth.
	API config.API
	// Users are the auth.users entries; those with an API role may log in.
	Users []*access.User
	// Realm is sent in Basic challenges.
	Realm string
	// Hashing bounds the password hashes computed at once (auth.max_concurrent_hashes).
	Hashing access.VerifierConfig
	// Source is the gateway read; required.
	Source Source
	// Reload re-reads the config; nil answers the reload endpoint with 501.
	Reload func(context.Context) error
	// Logger gets the listener's lines and every mutating request; nil discards.
	Logger *slog.Logger
}

// Server is the running ops listener. New starts it; Close stops it.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	ln     net.Listener
	srv    *http.Server
	auth   *authenticator
	wg     sync.WaitGroup
	closed sync.Once
}

// New binds the listener of cfg.API and serves on it until Close.
func New(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("ops: Config.Source is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "api")
	tlsCfg, err := serverTLS(cfg.API)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux(),
		auth: newAuthenticator(cfg, tlsCfg != nil && cfg.API.ClientCA != "", log)}
	s.routes()
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", cfg.API.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api listener stopped", "err", err)
		}
	}()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("api listening", "addr", ln.Addr().String(), "scheme", scheme, "pprof", cfg.API.Pprof, "auth", s.auth.required())
	return s, nil
}

// routes lists every mount of the listener. Other files of the package add their own mount
// function here, one line each.
func (s *Server) routes() {
	s.mountProbes()
	s.mountMetrics()
	s.handle("POST /v1/reload", adminRole, http.HandlerFunc(s.serveReload))
	if s.cfg.API.Pprof {
		s.mountPprof()
	}
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the listener's base URL, "http://host:port" or "https://host:port".
func (s *Server) URL() string {
	if s.cfg.API.TLS() {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops the listener, ends open requests within a second, and waits for the server's
// goroutine.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	return err
}

// handle mounts h at pattern (a net/http ServeMux pattern, e.g. "GET /v1/routes"), with the
// access rule it needs.
func (s *Server) handle(pattern string, need role, h http.Handler) {
	s.mux.Handle(pattern, s.auth.require(need, h))
}

func (s *Server) mountProbes() {
	s.handle("GET /healthz", public, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	}))
	s.handle("GET /readyz", public, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.cfg.Source.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
}

// serveReload runs Config.Reload: 204 when done, 501 without a hook, 422 with the hook's error
// (an invalid new file: the running config is kept).
func (s *Server) serveReload(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Reload == nil {
		http.Error(w, "reload not configured", http.StatusNotImplemented)
		return
	}
	if err := s.cfg.Reload(r.Context()); err != nil {
		s.log.Warn("reload refused", "err", err)
		http.Error(w, "reload refused: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) mountPprof() {
	s.handle("GET /debug/pprof/", readRole, http.HandlerFunc(pprof.Index))
	s.handle("GET /debug/pprof/cmdline", readRole, http.HandlerFunc(pprof.Cmdline))
	s.handle("GET /debug/pprof/profile", readRole, http.HandlerFunc(pprof.Profile))
	s.handle("GET /debug/pprof/symbol", readRole, http.HandlerFunc(pprof.Symbol))
	s.handle("GET /debug/pprof/trace", readRole, http.HandlerFunc(pprof.Trace))
}

// serverTLS loads api.cert/api.key and api.client_ca; nil without cert.
func serverTLS(a config.API) (*tls.Config, error) {
	if !a.TLS() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(a.Cert, a.Key)
	if err != nil {
		return nil, fmt.Errorf("api.cert/api.key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if a.ClientCA != "" {
		pem, err := os.ReadFile(a.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("api.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api.client_ca: %s holds no PEM certificate", a.ClientCA)
		}
		c.ClientCAs = pool
		// If given: probes and password users connect without a certificate.
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}
