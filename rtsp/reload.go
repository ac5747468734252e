package rtsp

import "github.com/meshgw/meshgw/rtsp/access"

// SetAuth replaces who may read and publish what, for a config reload: every request from now
// on is checked against p, while sessions already set up keep going (as a removed user's
// session does in nginx or MediaMTX until it ends). nil lets everyone do everything.
func (s *Server) SetAuth(p *access.Policy) { s.auth.Store(p) }

// authPolicy is the policy in force (ServerConfig.Auth, or the last SetAuth).
func (s *Server) authPolicy() *access.Policy { return s.auth.Load() }

// SetLimits replaces the caps on sessions and unauthenticated connections, for a config reload.
// What is already held is kept: a lowered cap refuses only new sessions and connections.
// MaxHeaders is not replaced; the server keeps the one it started with.
func (s *Server) SetLimits(l Limits) { s.lim.set(l) }

// set replaces the caps, keeping MaxHeaders (read per request without the lock).
func (l *limiter) set(c Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.MaxHeaders = l.cfg.MaxHeaders
	l.cfg = c
}

// SetFiles points the reloader at another certificate and key (a config reload that names new
// files) and loads them at once. A pair that does not load is an error, and the reloader keeps
// serving the previous pair from the previous files.
func (r *CertReloader) SetFiles(certFile, keyFile string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if certFile == r.certFile && keyFile == r.keyFile {
		return nil
	}
	oldCert, oldKey := r.certFile, r.keyFile
	r.certFile, r.keyFile = certFile, keyFile
	if err := r.load(); err != nil {
		r.certFile, r.keyFile = oldCert, oldKey
		return err
	}
	r.log.Info("rtsps certificate reloaded", "cert", r.certFile)
	return nil
}
