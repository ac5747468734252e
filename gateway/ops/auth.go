package ops

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp/access"
)

// role is what a request must hold to reach a handler, and what a principal holds.
type role int

const (
	// public needs no credentials: the probes.
	public role = iota
	// metricsRole is readRole, or public with api.metrics_auth: false.
	metricsRole
	// readRole reads: config.APIRead or more.
	readRole
	// adminRole changes things: config.APIAdmin, or a verified client certificate.
	adminRole
)

// Principal is who made a request, as handlers see it (PrincipalFrom).
type Principal struct {
	// User is the auth.users name, the client certificate's subject for mTLS, or "" when the
	// listener asks for no credentials (loopback without API users).
	User string
	// Admin: the principal may change things.
	Admin bool
}

type principalKey struct{}

// PrincipalFrom is the request's principal; ok is false on public endpoints.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// authenticator checks the credentials of every non-public request.
type authenticator struct {
	users       map[string]*access.User
	tokens      map[[sha256.Size]byte]*access.User
	clientCerts bool
	metricsAuth bool
	realm       string
	verifier    *access.Verifier
	log         *slog.Logger

	// ok caches recent successful Basic logins (user, SHA-256 of the password) so a page that
	// polls every second does not cost an argon2id hash per request.
	mu sync.Mutex
	ok map[[sha256.Size]byte]time.Time
}

// basicCacheTTL is how long a checked Basic password is trusted without hashing it again.
const basicCacheTTL = time.Minute

func newAuthenticator(cfg Config, clientCerts bool, log *slog.Logger) *authenticator {
	a := &authenticator{users: map[string]*access.User{}, tokens: map[[sha256.Size]byte]*access.User{},
		clientCerts: clientCerts, metricsAuth: cfg.API.MetricsAuth, realm: cfg.Realm, log: log,
		verifier: access.NewVerifier(cfg.Hashing), ok: map[[sha256.Size]byte]time.Time{}}
	if a.realm == "" {
		a.realm = "meshgw"
	}
	for _, u := range cfg.Users {
		if u.API == "" {
			continue
		}
		a.users[u.Name] = u
		if b, err := hex.DecodeString(u.APITokenSHA256); err == nil && len(b) == sha256.Size {
			a.tokens[[sha256.Size]byte(b)] = u
		}
	}
	return a
}

// required reports whether requests must carry credentials.
func (a *authenticator) required() bool { return len(a.users) > 0 || a.clientCerts }

// require wraps h with the check for need; it logs refusals and every mutating request.
func (a *authenticator) require(need role, h http.Handler) http.Handler {
	if need == metricsRole {
		need = readRole
		if !a.metricsAuth {
			need = public
		}
	}
	if need == public {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, reason := a.identify(r)
		if reason != "" {
			a.log.Warn("api request refused", "status", http.StatusUnauthorized, "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "reason", reason)
			w.Header().Add("WWW-Authenticate", `Basic realm="`+a.realm+`", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="`+a.realm+`"`)
			http.Error(w, "401 unauthorized: "+reason, http.StatusUnauthorized)
			return
		}
		if need == adminRole && !p.Admin {
			a.log.Warn("api request refused", "status", http.StatusForbidden, "method", r.Method, "path", r.URL.Path,
				"user", p.User, "remote", r.RemoteAddr, "reason", "needs the admin role")
			http.Error(w, "403 forbidden: this needs the api: admin role", http.StatusForbidden)
			return
		}
		if mutating(r.Method) {
			a.log.Info("api request", "method", r.Method, "path", r.URL.Path, "user", p.User, "remote", r.RemoteAddr)
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func mutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// identify finds the request's principal, or says why it has none.
func (a *authenticator) identify(r *http.Request) (Principal, string) {
	if !a.required() {
		return Principal{Admin: true}, ""
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && a.clientCerts {
		return Principal{User: certName(r), Admin: true}, ""
	}
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return Principal{}, "no credentials"
	case len(h) > 7 && strings.EqualFold(h[:7], "bearer "):
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
		// The map lookup is on a hash of the token, which leaks nothing useful by timing;
		// the compare below is for form's sake.
		if u, ok := a.tokens[sum]; ok && subtle.ConstantTimeCompare([]byte(u.APITokenSHA256), []byte(hex.EncodeToString(sum[:]))) == 1 {
			return Principal{User: u.Name, Admin: u.API == config.APIAdmin}, ""
		}
		return Principal{}, "unknown bearer token"
	}
	name, pw, ok := r.BasicAuth()
	if !ok {
		return Principal{}, "unsupported Authorization scheme (use Basic or Bearer)"
	}
	if r.TLS == nil && !fromLoopback(r) {
		return Principal{}, "Basic credentials over plain HTTP are refused; use HTTPS"
	}
	u := a.users[name]
	key := sha256.Sum256([]byte(name + "\x00" + pw))
	if u != nil && a.cached(key) {
		return Principal{User: u.Name, Admin: u.API == config.APIAdmin}, ""
	}
	var hash *access.PasswordHash // nil: the verifier's dummy check, as long as a real one
	if u != nil {
		hash = u.Password
	}
	good, err := a.verifier.Verify(r.Context(), hash, pw)
	if err != nil {
		return Principal{}, "password check: " + err.Error()
	}
	if !good || u == nil {
		return Principal{}, "bad user name or password"
	}
	a.remember(key)
	return Principal{User: u.Name, Admin: u.API == config.APIAdmin}, ""
}

func (a *authenticator) cached(key [sha256.Size]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.ok[key]
	return ok && time.Since(t) < basicCacheTTL
}

func (a *authenticator) remember(key [sha256.Size]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ok) >= 256 {
		clear(a.ok)
	}
	a.ok[key] = time.Now()
}

// certName names a client certificate: its first URI SAN (a SPIFFE ID), else its common name.
func certName(r *http.Request) string {
	c := r.TLS.VerifiedChains[0][0]
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return c.Subject.CommonName
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
