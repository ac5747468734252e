package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"
)

// API roles a user may hold in auth.users.*.api.
const (
	// APIRead may read the HTTP API, /metrics and pprof but change nothing.
	APIRead = "read"
	// APIAdmin may also change things (kick a session, reload the config).
	APIAdmin = "admin"
)

// DefaultAPIListen is where an api: section without listen: serves: loopback only, the port
// MediaMTX's API uses.
const DefaultAPIListen = "127.0.0.1:9997"

// API is the api: section, the HTTP listener for operations: /healthz, /readyz, /metrics,
// pprof and the REST API. It is off when the section is absent, as MediaMTX's API is: several
// meshgw processes on one host (a control and its nodes, tests) would otherwise fight over one
// port. The section without listen: serves on DefaultAPIListen.
type API struct {
	// Listen is api.listen, the TCP host:port of the listener; "" when the section is absent.
	// An address other than loopback is refused unless clients must authenticate: auth.users
	// holding an api: role, or api.client_ca.
	Listen string
	// Cert and Key are api.cert and api.key, PEM files: with them the listener speaks HTTPS.
	Cert, Key string
	// ClientCA is api.client_ca, a PEM bundle: clients presenting a certificate it verifies are
	// authenticated (as the admin role) without a password. Needs Cert and Key.
	ClientCA string
	// Pprof is api.pprof: serve net/http/pprof under /debug/pprof/ (authenticated like the API).
	// Default false.
	Pprof bool
	// MetricsAuth is api.metrics_auth: /metrics needs the same credentials as the API. Default
	// true; false lets Prometheus scrape without credentials (counters with bounded labels, as
	// most exporters serve them).
	MetricsAuth bool
}

// Enabled reports whether the api: section was given.
func (a API) Enabled() bool { return a.Listen != "" }

// TLS reports whether the listener speaks HTTPS.
func (a API) TLS() bool { return a.Cert != "" }

func (p *parser) api(c *Config, k, v *yaml.Node) {
	const path = "api"
	a := &c.API
	a.Listen, a.MetricsAuth = DefaultAPIListen, true
	m := p.section(path, v)
	if m == nil {
		return
	}
	p.fields(m, path, []field{
		{"listen", func(_, v *yaml.Node) { p.listen(&a.Listen, "api.listen", v, `"127.0.0.1:9997"`, false) }},
		{"cert", func(_, v *yaml.Node) { p.str(&a.Cert, "api.cert", v) }},
		{"key", func(_, v *yaml.Node) { p.str(&a.Key, "api.key", v) }},
		{"client_ca", func(_, v *yaml.Node) { p.str(&a.ClientCA, "api.client_ca", v) }},
		{"pprof", func(_, v *yaml.Node) { p.boolean(&a.Pprof, "api.pprof", v) }},
		{"metrics_auth", func(_, v *yaml.Node) { p.boolean(&a.MetricsAuth, "api.metrics_auth", v) }},
	})
	if (a.Cert == "") != (a.Key == "") {
		p.errorf(k, "api: cert and key go together (PEM files of the server certificate and its key)")
	}
	if a.ClientCA != "" && a.Cert == "" {
		p.errorf(k, "api.client_ca: client certificates need HTTPS; set api.cert and api.key too")
	}
}

// checkAPI applies the rules that need the whole file: a listener reachable from other hosts
// must ask for credentials.
func (p *parser) checkAPI(c *Config, k *yaml.Node) {
	a := c.API
	if k == nil || loopbackListen(a.Listen) || a.ClientCA != "" {
		return
	}
	if c.Auth.HasAPIUsers() {
		if !a.TLS() {
			p.errorf(k, "api.listen %q is reachable from other hosts and API users send passwords and tokens; set api.cert and api.key (HTTPS)", a.Listen)
		}
		return
	}
	// A node serves no API, only probes and metrics: with metrics_auth: false it has nothing to
	// protect (pprof stays behind credentials).
	if c.Node.IsNodeOnly() && !a.MetricsAuth && !a.Pprof {
		return
	}
	p.errorf(k, "api.listen %q is reachable from other hosts but nobody would need credentials; give an auth.users entry an api: role (read or admin) with HTTPS (api.cert, api.key), set api.client_ca, or listen on 127.0.0.1", a.Listen)
}

// loopbackListen reports whether host:port is bound to a loopback address only ("localhost"
// counts; an empty host means every interface).
func loopbackListen(s string) bool {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// HasAPIUsers reports whether some auth.users entry holds an api: role.
func (a *Auth) HasAPIUsers() bool {
	for _, u := range a.Users {
		if u.API != "" {
			return true
		}
	}
	return false
}

// apiToken reads auth.users.*.api_token_sha256: the hex SHA-256 of a bearer token. A plain hash
// suffices (no argon2id) because tokens are random, not chosen by people; make one with
// `head -c 32 /dev/urandom | base64` and `printf %s TOKEN | sha256sum`.
func (p *parser) apiToken(dst *string, path string, v *yaml.Node) {
	var s string
	if !p.str(&s, path, v) {
		return
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		p.errorf(v, "%s: want 64 hex digits (printf %%s TOKEN | sha256sum)", path)
		return
	}
	*dst = strings.ToLower(s)
}
