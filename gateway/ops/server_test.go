package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp/access"
)

// fixedSource serves one snapshot and readiness, as test input data.
type fixedSource struct {
	mu    sync.Mutex
	snap  Snapshot
	ready error
}

func (f *fixedSource) Snapshot() Snapshot { f.mu.Lock(); defer f.mu.Unlock(); return f.snap }
func (f *fixedSource) Ready() error       { f.mu.Lock(); defer f.mu.Unlock(); return f.ready }

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func start(t *testing.T, cfg Config) (*Server, *logBuf) {
	t.Helper()
	if cfg.API.Listen == "" {
		cfg.API.Listen = "127.0.0.1:0"
	}
	logs := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

func do(t *testing.T, c *http.Client, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProbes(t *testing.T) {
	src := &fixedSource{ready: errors.New("waiting for nodes")}
	s, _ := start(t, Config{Source: src, API: config.API{MetricsAuth: true}})
	c := &http.Client{}
	if code, body := do(t, c, "GET", s.URL()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q", code, body)
	}
	if code, body := do(t, c, "GET", s.URL()+"/readyz"); code != 503 || !strings.Contains(body, "waiting for nodes") {
		t.Errorf("readyz not ready: %d %q", code, body)
	}
	src.mu.Lock()
	src.ready = nil
	src.mu.Unlock()
	if code, _ := do(t, c, "GET", s.URL()+"/readyz"); code != 200 {
		t.Errorf("readyz ready: %d", code)
	}
	// pprof is off unless asked for
	if code, _ := do(t, c, "GET", s.URL()+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof without api.pprof: %d", code)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/v1/reload"); code != 501 {
		t.Errorf("reload without a hook: %d", code)
	}
}

func TestPprofAndReload(t *testing.T) {
	reloads := 0
	s, logs := start(t, Config{Source: &fixedSource{}, API: config.API{Pprof: true},
		Reload: func(context.Context) error {
			reloads++
			if reloads > 1 {
				return errors.New("t.yaml:3: bad")
			}
			return nil
		}})
	c := &http.Client{}
	if code, body := do(t, c, "GET", s.URL()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index %d", code)
	}
	if code, _ := do(t, c, "POST", s.URL()+"/v1/reload"); code != 204 {
		t.Errorf("reload: %d", code)
	}
	if code, body := do(t, c, "POST", s.URL()+"/v1/reload"); code != 422 || !strings.Contains(body, "t.yaml:3: bad") {
		t.Errorf("failed reload: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), `msg="api request" component=api method=POST path=/v1/reload`) {
		t.Errorf("mutation not logged:\n%s", logs)
	}
}

func TestAuth(t *testing.T) {
	hash, err := access.HashBcrypt("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ph, err := access.ParsePasswordHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	token := "tok-0123456789"
	sum := sha256.Sum256([]byte(token))
	users := []*access.User{
		{Name: "admin", Password: ph, API: config.APIAdmin},
		{Name: "viewer", Password: ph, API: config.APIRead, APITokenSHA256: hex.EncodeToString(sum[:])},
		{Name: "player", Password: ph}, // no api role
	}
	s, logs := start(t, Config{Source: &fixedSource{}, Users: users, API: config.API{MetricsAuth: true}})
	c := &http.Client{}
	basic := func(u, p string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", basic("viewer", "wrong"), 401},
		{"GET", "/metrics", basic("player", "s3cret"), 401},
		{"GET", "/metrics", basic("nobody", "s3cret"), 401},
		{"GET", "/metrics", basic("viewer", "s3cret"), 200},
		{"GET", "/metrics", "Bearer " + token, 200},
		{"GET", "/metrics", "Bearer nope", 401},
		{"GET", "/metrics", "Digest x", 401},
		{"POST", "/v1/reload", "Bearer " + token, 403},
		{"POST", "/v1/reload", basic("viewer", "s3cret"), 403},
		{"POST", "/v1/reload", basic("admin", "s3cret"), 501},
		{"POST", "/v1/reload", basic("admin", "s3cret"), 501}, // from the login cache
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		if code, body := do(t, c, tc.method, s.URL()+tc.path, hdr...); code != tc.want {
			t.Errorf("%s %s %q: %d %q, want %d", tc.method, tc.path, tc.auth, code, body, tc.want)
		}
	}
	l := logs.String()
	for _, want := range []string{"status=401", "reason=\"bad user name or password\"", "status=403 method=POST path=/v1/reload user=viewer",
		`msg="api request" component=api method=POST path=/v1/reload user=admin`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

func TestMetricsWithoutAuth(t *testing.T) {
	hash, _ := access.HashBcrypt("x")
	ph, _ := access.ParsePasswordHash(hash)
	s, _ := start(t, Config{Source: &fixedSource{}, Users: []*access.User{{Name: "a", Password: ph, API: config.APIRead}},
		API: config.API{MetricsAuth: false, Pprof: true}})
	c := &http.Client{}
	if code, body := do(t, c, "GET", s.URL()+"/metrics"); code != 200 || !strings.Contains(body, "meshgw_build_info") {
		t.Errorf("public metrics: %d %q", code, body)
	}
	if code, _ := do(t, c, "GET", s.URL()+"/debug/pprof/"); code != 401 {
		t.Errorf("pprof without credentials: %d", code)
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCert(t, nil, nil, "test CA", dir, "ca")
	newCert(t, caCert, caKey, "127.0.0.1", dir, "server")
	cliCert, _ := newCert(t, caCert, caKey, "prometheus", dir, "client")
	_ = cliCert
	s, logs := start(t, Config{Source: &fixedSource{}, API: config.API{Listen: "127.0.0.1:0",
		Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key"), ClientCA: filepath.Join(dir, "ca.crt"), MetricsAuth: true}})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("url %s", s.URL())
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer anon.CloseIdleConnections()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	defer withCert.CloseIdleConnections()
	if code, _ := do(t, anon, "GET", s.URL()+"/healthz"); code != 200 {
		t.Errorf("probe without a certificate: %d", code)
	}
	if code, _ := do(t, anon, "GET", s.URL()+"/metrics"); code != 401 {
		t.Errorf("metrics without a certificate: %d", code)
	}
	if code, _ := do(t, withCert, "GET", s.URL()+"/metrics"); code != 200 {
		t.Errorf("metrics with a certificate: %d", code)
	}
	if code, _ := do(t, withCert, "POST", s.URL()+"/v1/reload"); code != 501 {
		t.Errorf("reload with a certificate: %d", code)
	}
	if !strings.Contains(logs.String(), "user=prometheus") {
		t.Errorf("client certificate user not logged:\n%s", logs)
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := New(Config{Source: &fixedSource{}, API: config.API{Listen: ln.Addr().String()}}); err == nil || !strings.Contains(err.Error(), "api listen") {
		t.Errorf("busy port: %v", err)
	}
	if _, err := New(Config{Source: &fixedSource{}, API: config.API{Listen: "127.0.0.1:0", Cert: "/nonexistent.crt", Key: "/nonexistent.key"}}); err == nil || !strings.Contains(err.Error(), "api.cert") {
		t.Errorf("missing cert: %v", err)
	}
}

// newCert writes NAME.crt and NAME.key into dir: a CA when parent is nil, else a leaf signed by
// it, valid for 127.0.0.1 and as a client.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		signer, signKey = parent, parentKey
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".crt", "CERTIFICATE", der)
	write(name+".key", "EC PRIVATE KEY", kb)
	return cert, key
}
